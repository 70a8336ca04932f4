#!/usr/bin/env bash
# Build the release before this one from its commit, for the upgrade tests and
# the side-by-side benchmark (docs/upgrades.md):
#
#   deploy/local/previous-release.sh [BUILD_DIR]
#
# Reads deploy/releases.txt (VERSION COMMIT DATE lines), takes the last release
# whose version is not the one meson.build sets, exports that commit from this
# clone's git history into BUILD_DIR/VERSION/src (default BUILD_DIR: build-prev
# at the repository root), builds its `ledgerq` there, and prints two lines:
#   LEDGERQ_PREV_RELEASE=VERSION
#   LEDGERQ_PREV_BIN=/abs/path/to/ledgerq
# LEDGERQ_PREV_BUILDTYPE (optional) sets meson's buildtype, e.g. release for the
# side-by-side benchmark; unset, the release's own default (debugoptimized). A
# build with it set goes to BUILD_DIR/VERSION-BUILDTYPE instead, so that it never
# replaces the default one.
# A build already there that prints the right --version is reused. Needs git,
# meson and ninja (deploy/local/stack.sh install-deps) and the full history (a
# clone made with --depth lacks the commit: it then fails saying so).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${1:-$ROOT/build-prev}"
PROG="previous-release.sh"

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

current="$(sed -n "s/^ *version: '\([^']*\)',*$/\1/p" "$ROOT/meson.build" | head -n 1)"
[[ -n "$current" ]] || die "no version: '...' line in $ROOT/meson.build"
line="$(grep -v '^[[:space:]]*\(#\|$\)' "$ROOT/deploy/releases.txt" |
	awk -v cur="$current" '$1 != cur' | tail -n 1)"
read -r version commit _ <<<"$line" || true
[[ -n "${commit:-}" ]] || die "deploy/releases.txt names no release other than $current"

buildtype="${LEDGERQ_PREV_BUILDTYPE:-}"
setup_args=()
dir="$BUILD_DIR/$version"
if [[ -n "$buildtype" ]]; then
	[[ "$buildtype" =~ ^[a-z]+$ ]] || die "LEDGERQ_PREV_BUILDTYPE=\"$buildtype\" is not a meson buildtype"
	setup_args=("-Dbuildtype=$buildtype")
	dir="$BUILD_DIR/$version-$buildtype"
fi
bin="$dir/build/ledgerq"
if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "ledgerq $version" ]]; then
	printf 'LEDGERQ_PREV_RELEASE=%s\nLEDGERQ_PREV_BIN=%s\n' "$version" "$bin"
	exit 0
fi

# The clone may belong to another user than the one running this (CI as root).
git_() { git -c safe.directory="$ROOT" -C "$ROOT" "$@"; }
git_ cat-file -e "$commit^{commit}" 2>/dev/null ||
	die "release $version's commit $commit is not in this clone's history: the upgrade tests need a full clone (not --depth)"

rm -rf "$dir"
mkdir -p "$dir/src"
git_ archive "$commit" | tar -x -C "$dir/src"
meson setup "${setup_args[@]}" "$dir/build" "$dir/src" >"$dir/setup.log" 2>&1 ||
	die "could not configure release $version (see $dir/setup.log)"
ninja -C "$dir/build" ledgerq >"$dir/build.log" 2>&1 ||
	die "could not build release $version (see $dir/build.log)"
[[ "$("$bin" --version)" == "ledgerq $version" ]] ||
	die "$bin says \"$("$bin" --version)\", not ledgerq $version"
printf 'LEDGERQ_PREV_RELEASE=%s\nLEDGERQ_PREV_BIN=%s\n' "$version" "$bin"
