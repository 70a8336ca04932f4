#!/bin/sh
# README.md's settings table is made from the settings table in src/config.c,
# which the binary prints with its hidden --settings-markdown flag.
#
#   tests/readme-settings.sh LEDGERQ_BIN README          fail, showing the difference,
#                                                        when README's table is not the binary's
#   tests/readme-settings.sh --write LEDGERQ_BIN README  replace README's table with the binary's
#
# A meson test (suite unit) runs the first; `ninja -C BUILD readme-settings` the second.
set -eu

write=false
if [ "${1:-}" = --write ]; then
  write=true
  shift
fi
if [ $# -ne 2 ]; then
  echo "usage: $0 [--write] LEDGERQ_BIN README" >&2
  exit 2
fi
bin=$1
readme=$2
begin='<!-- settings table:'
end='<!-- end of settings table -->'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" --settings-markdown >"$tmp/table"

# The lines between the two markers, which must come once each, in that order.
if ! awk -v b="$begin" -v e="$end" '
  index($0, b) == 1 { n++; inside = 1; next }
  $0 == e { if (!inside) n = 2; inside = 0; next }
  inside { print }
  END { exit !(n == 1 && !inside) }' "$readme" >"$tmp/current"; then
  echo "$readme: expected one settings table, between a line starting \"$begin\" and a line \"$end\"" >&2
  exit 1
fi

if $write; then
  awk -v b="$begin" -v e="$end" -v table="$tmp/table" '
    index($0, b) == 1 { print; while ((getline line < table) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$readme" >"$tmp/readme"
  # Written in place: the file keeps its mode.
  cat "$tmp/readme" >"$readme"
  exit 0
fi

if ! diff -u --label "$readme" --label "ledgerq --settings-markdown" "$tmp/current" "$tmp/table"; then
  echo "$readme's settings table is not the one in src/config.c; regenerate it with:" >&2
  echo "  ninja -C $(cd "$(dirname "$bin")" && pwd) readme-settings" >&2
  exit 1
fi
