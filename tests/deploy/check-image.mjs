// Checks of deploy/Dockerfile and .dockerignore, without a Docker engine:
//
//   - the runtime stage installs exactly the Debian packages that provide the
//     shared libraries the built binary links (objdump -p NEEDED, resolved with
//     ldd, mapped to packages with dpkg -S), less those debian:12-slim already
//     has (debian12-slim-packages.txt): one missing, or one not needed, fails;
//   - the build stage installs the -dev package of each of those libraries;
//   - the runtime stage runs as a numeric non-root user, ENTRYPOINT ["ledgerq"],
//     CMD ["worker"];
//   - (unless --no-context-build) the build stage's commands, run here on the
//     files that .dockerignore lets into the build context, build a binary that
//     links the same libraries.
//
// usage: node check-image.mjs --bin PATH --dockerfile FILE --dockerignore FILE
//                             --base-packages FILE --root DIR [--no-context-build]
// Prints one "PASS ..." or "FAIL ..." line per check; exits 1 if any failed.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const argv = process.argv.slice(2);
const args = {};
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--no-context-build") args.noContextBuild = true;
  else if (argv[i].startsWith("--")) args[argv[i].slice(2)] = argv[++i];
}
for (const need of ["bin", "dockerfile", "dockerignore", "base-packages", "root"]) {
  if (!args[need]) {
    console.error(`usage: node check-image.mjs --bin PATH --dockerfile FILE --dockerignore FILE --base-packages FILE --root DIR [--no-context-build] (missing --${need})`);
    process.exit(2);
  }
}

let failures = 0;
function report(ok, what, detail) {
  if (ok) {
    console.log(`PASS ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
    for (const line of [].concat(detail ?? [])) console.log(`     ${line}`);
  }
}
const note = (what) => console.log(`NOTE ${what}`);

function run(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

// ---------------------------------------------------------------- Dockerfile

// Stages of a Dockerfile: {name, from, instructions: [{op, args}]}, with line
// continuations joined, comments dropped and ${ARG} defaults substituted in FROM.
function parseDockerfile(text) {
  const logical = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    if (!cur && /^\s*#/.test(raw)) continue;
    if (cur && /^\s*#/.test(raw)) continue; // comment lines inside a continuation
    const line = raw.replace(/\s+$/, "");
    if (line.endsWith("\\")) {
      cur += line.slice(0, -1) + " ";
      continue;
    }
    cur += line;
    if (cur.trim()) logical.push(cur.trim());
    cur = "";
  }
  if (cur.trim()) logical.push(cur.trim());

  const globalArgs = {};
  const stages = [];
  for (const l of logical) {
    const m = /^(\w+)\s*(.*)$/.exec(l);
    const op = m[1].toUpperCase();
    const rest = m[2];
    if (op === "ARG" && stages.length === 0) {
      const [k, v] = rest.split("=");
      globalArgs[k.trim()] = (v ?? "").trim();
      continue;
    }
    if (op === "FROM") {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const from = f[1].replace(/\$\{?(\w+)\}?/g, (_, k) => globalArgs[k] ?? "");
      stages.push({ name: f[2] ?? String(stages.length), from, instructions: [] });
      continue;
    }
    if (stages.length) stages[stages.length - 1].instructions.push({ op, args: rest });
  }
  return stages;
}

// The packages that `apt-get install` lines of a stage install.
function aptPackages(stage) {
  const pkgs = [];
  for (const ins of stage.instructions) {
    if (ins.op !== "RUN") continue;
    for (const cmd of ins.args.split(/&&|\|\||;|\|/)) {
      const words = cmd.trim().split(/\s+/).filter((w) => !/^[A-Z_]+=/.test(w)); // drop VAR=value prefixes
      const at = words.findIndex((w, i) => /^(apt-get|apt)$/.test(w) && words.slice(i + 1).includes("install"));
      if (at < 0) continue;
      const inst = words.indexOf("install", at);
      for (const w of words.slice(inst + 1)) if (!w.startsWith("-")) pkgs.push(w.replace(/[=:].*$/, ""));
    }
  }
  return pkgs;
}

// ---------------------------------------------------------------- the binary

function needed(bin) {
  const out = run("objdump", ["-p", bin]);
  if (out.status !== 0) throw new Error(`objdump -p ${bin}: ${out.stderr.trim()}`);
  return [...out.stdout.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((m) => m[1]);
}

// soname -> path, as the dynamic loader resolves it.
function lddPaths(bin) {
  const out = run("ldd", [bin]);
  const paths = {};
  for (const m of out.stdout.matchAll(/^\s*(\S+)\s+=>\s+(\/\S+)/gm)) paths[m[1]] = m[2];
  return paths;
}

// The packages owning a file, trying the spellings /usr-merge allows; with
// follow, also the file a symbolic link leads to.
function owners(file, follow = true) {
  const candidates = new Set([file]);
  if (follow) {
    try {
      candidates.add(fs.realpathSync(file));
    } catch {
      /* a dangling path: try the others */
    }
  }
  for (const c of [...candidates]) {
    if (c.startsWith("/usr/lib/")) candidates.add(c.slice(4));
    else if (c.startsWith("/lib/")) candidates.add(`/usr${c}`);
  }
  for (const c of candidates) {
    const r = run("dpkg", ["-S", c]);
    if (r.status !== 0) continue;
    const pkgs = new Set();
    for (const line of r.stdout.split("\n")) {
      const m = /^([^:]+(?::[a-z0-9]+)?(?:, [^:]+(?::[a-z0-9]+)?)*): \//.exec(line);
      if (!m || line.startsWith("diversion")) continue;
      for (const p of m[1].split(", ")) pkgs.add(p.replace(/:[a-z0-9]+$/, ""));
    }
    if (pkgs.size) return [...pkgs];
  }
  return [];
}

// Sanitizer runtimes come with a -Db_sanitize build (CI's second run); a
// release image never has them.
const SANITIZER = /^lib(asan|ubsan|lsan|tsan|hwasan)\.so/;

function libraryPackages(bin) {
  const paths = lddPaths(bin);
  const libs = [];
  const problems = [];
  for (const soname of needed(bin)) {
    if (SANITIZER.test(soname)) {
      libs.push({ soname, sanitizer: true });
      continue;
    }
    const file = paths[soname];
    if (!file) {
      problems.push(`${soname}: ldd does not resolve it`);
      continue;
    }
    const pkgs = owners(file);
    if (pkgs.length !== 1) {
      problems.push(`${soname} (${file}): owned by ${pkgs.length ? pkgs.join(", ") : "no package"}`);
      continue;
    }
    // The unversioned link the linker used (-lpq -> libpq.so) belongs to the -dev package.
    const devLink = path.join(path.dirname(file), soname.replace(/\.so(\..*)?$/, ".so"));
    libs.push({ soname, file, pkg: pkgs[0], devPkgs: owners(devLink, false), devLink });
  }
  return { libs, problems };
}

// ---------------------------------------------------------------- .dockerignore

function globToRegex(glob) {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
        if (glob[i + 1] === "/") i++;
      } else re += "[^/]*";
    } else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

// Docker's rules: patterns are relative to the context root; a pattern matches
// a path or any of its parent folders; the last matching pattern decides, and
// a leading "!" re-includes.
function dockerignore(file) {
  const rules = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const include = l.startsWith("!");
      const p = path.posix.normalize((include ? l.slice(1) : l).replace(/^\/+/, "")).replace(/\/+$/, "");
      return { include, pattern: p, re: globToRegex(p) };
    });
  const excluded = (rel) => {
    const parts = rel.split("/");
    let out = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join("/"))) {
          out = !r.include;
          break;
        }
      }
    }
    return out;
  };
  // A folder can be skipped when it is excluded and no "!" pattern reaches into it.
  const prunable = (rel) =>
    excluded(rel) &&
    !rules.some((r) => {
      if (!r.include) return false;
      const literal = r.pattern.split(/[*?[]/)[0];
      return literal.startsWith(`${rel}/`) || `${rel}/`.startsWith(literal) || literal === rel;
    });
  return { excluded, prunable };
}

function contextFiles(root, ignore) {
  const files = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!ignore.prunable(r)) walk(r);
      } else if (!ignore.excluded(r)) files.push(r);
    }
  };
  walk("");
  return files;
}

// ---------------------------------------------------------------- checks

function main() {
  const stages = parseDockerfile(fs.readFileSync(args.dockerfile, "utf8"));
  const runtime = stages[stages.length - 1];
  const build = stages.find((s) => s.name === "build") ?? stages[0];
  const base = new Set(
    fs.readFileSync(args["base-packages"], "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")),
  );

  report(stages.length >= 2 && runtime !== build, `Dockerfile is multi-stage (${stages.map((s) => `${s.name}: ${s.from}`).join("; ")})`);
  report(
    /^debian:(12|bookworm)-slim(@sha256:[a-f0-9]{64})?$/.test(runtime.from),
    `the runtime stage is based on debian:12-slim (${runtime.from})`,
    "tests/deploy/debian12-slim-packages.txt describes debian:12-slim: update it with the base image",
  );

  const last = (op) => runtime.instructions.filter((i) => i.op === op).pop()?.args;
  const user = last("USER");
  report(user && /^[1-9][0-9]*(:[0-9]+)?$/.test(user) && !/:0$/.test(user), `the image runs as a numeric non-root user (USER ${user})`);
  report(last("ENTRYPOINT") === '["ledgerq"]', `ENTRYPOINT ["ledgerq"] (${last("ENTRYPOINT")})`);
  report(last("CMD") === '["worker"]', `CMD ["worker"] (${last("CMD")})`);

  // The runtime packages against the libraries the binary links.
  const bin = path.resolve(args.bin);
  const { libs, problems } = libraryPackages(bin);
  report(problems.length === 0, `each library ${bin} links maps to one Debian package`, problems);
  const sanitized = libs.filter((l) => l.sanitizer);
  if (sanitized.length) note(`${bin} is a sanitizer build: ${sanitized.map((l) => l.soname).join(", ")} left out (never in a release image)`);
  const wanted = new Map();
  for (const l of libs) if (l.pkg && !base.has(l.pkg)) wanted.set(l.pkg, l);
  const provided = libs.filter((l) => l.pkg && base.has(l.pkg)).map((l) => `${l.soname} (${l.pkg})`);
  const installed = aptPackages(runtime);
  const missing = [...wanted.keys()].filter((p) => !installed.includes(p));
  const extra = installed.filter((p) => !wanted.has(p));
  const dupes = installed.filter((p, i) => installed.indexOf(p) !== i);
  report(
    missing.length === 0 && extra.length === 0 && dupes.length === 0,
    `the runtime stage installs exactly the packages of the linked libraries: ${[...wanted.keys()].sort().join(" ")}` +
      (provided.length ? ` (the base image provides ${provided.join(", ")})` : ""),
    [
      ...missing.map((p) => `missing: ${p} (provides ${wanted.get(p).soname}, which the binary links)`),
      ...extra.map((p) => `not needed: ${p} (the binary links no library of it${base.has(p) ? "; debian:12-slim has it anyway" : ""})`),
      ...dupes.map((p) => `listed twice: ${p}`),
      `the binary links: ${libs.map((l) => `${l.soname}${l.pkg ? ` (${l.pkg})` : ""}`).join(", ")}`,
      `the runtime stage installs: ${installed.join(" ") || "nothing"}`,
    ],
  );

  // The build stage can link the same libraries.
  const buildPkgs = aptPackages(build);
  const devMissing = [];
  for (const l of wanted.values()) {
    if (!l.devPkgs.length) devMissing.push(`${l.soname}: no package owns ${l.devLink} here`);
    else if (!l.devPkgs.some((p) => buildPkgs.includes(p))) devMissing.push(`${l.soname}: the build stage lacks ${l.devPkgs.join(" or ")}`);
  }
  report(
    devMissing.length === 0,
    `the build stage installs the -dev package of each: ${[...wanted.values()].map((l) => l.devPkgs.join("|")).sort().join(" ")}`,
    devMissing,
  );

  if (args.noContextBuild) {
    note("the context build is skipped (--no-context-build)");
  } else if (sanitized.length) {
    note("the context build is skipped for a sanitizer build (the plain run does it)");
  } else {
    contextBuild(build, runtime, libs);
  }
  console.log(failures ? `image checks: ${failures} failed` : "image checks: all passed");
  process.exit(failures ? 1 : 0);
}

// Runs the build stage's commands on the files .dockerignore lets into the
// build context, as `docker build` would (minus the image layers): catches a
// source the context lacks or a build command that no longer works.
function contextBuild(build, runtime, libs) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ledgerq-image-"));
  try {
    const ignore = dockerignore(args.dockerignore);
    const files = contextFiles(path.resolve(args.root), ignore);
    const workdir = build.instructions.filter((i) => i.op === "WORKDIR").pop()?.args ?? "/";
    const scratch = (p) => path.join(tmp, "fs", p);
    const ctx = scratch(workdir);
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(ctx, f)), { recursive: true });
      fs.copyFileSync(path.join(args.root, f), path.join(ctx, f));
    }
    // Absolute paths of the build stage outside the system's folders (/build,
    // /out) are moved under the scratch folder.
    const system = /^\/(usr|etc|bin|sbin|lib|lib64|var|tmp|dev|proc|sys|opt|run|home|root)(\/|$)/;
    const relocate = (s) =>
      s.replace(/(^|[\s="'])(\/[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*)/g, (m, pre, p) => (system.test(p) ? m : `${pre}${scratch(p)}`));
    const commands = build.instructions
      .filter((i) => i.op === "RUN" && !/apt-get|apt\s/.test(i.args))
      .map((i) => relocate(i.args));
    const t0 = Date.now();
    let ok = true;
    let out = "";
    for (const c of commands) {
      const r = run("bash", ["-euo", "pipefail", "-c", c], { cwd: ctx });
      out += r.stdout + r.stderr;
      if (r.status !== 0) {
        ok = false;
        break;
      }
    }
    const copy = runtime.instructions.find((i) => i.op === "COPY" && /--from=/.test(i.args));
    const src = copy && copy.args.split(/\s+/).filter((w) => !w.startsWith("--"))[0];
    const built = src && scratch(src);
    ok = ok && built && fs.existsSync(built);
    const same = ok && JSON.stringify(needed(built).sort()) === JSON.stringify(libs.filter((l) => !l.sanitizer).map((l) => l.soname).sort());
    report(
      ok && same,
      `the build stage builds ${src} from the .dockerignore'd context (${files.length} files, ${((Date.now() - t0) / 1000).toFixed(0)}s) and it links the same libraries`,
      ok ? [`it links ${needed(built).join(", ")}`] : out.trim().split("\n").slice(-25),
    );
    if (ok) buildDependencies(path.join(tmp, "fs"), build);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Every pkg-config dependency meson found (check included, which only the
// tests use) comes from a package the build stage installs: the host has them
// all, a fresh debian:12-slim does not.
function buildDependencies(scratchRoot, build) {
  const find = (dir, depth) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isFile() && e.name === "intro-dependencies.json" && path.basename(dir) === "meson-info") return p;
      if (e.isDirectory() && depth > 0) {
        const r = find(p, depth - 1);
        if (r) return r;
      }
    }
    return null;
  };
  const info = find(scratchRoot, 4);
  if (!info) {
    report(false, "the build stage's meson dependencies", "no meson-info/intro-dependencies.json in the build folder");
    return;
  }
  const buildPkgs = aptPackages(build);
  const deps = [];
  const problems = [];
  for (const d of JSON.parse(fs.readFileSync(info, "utf8"))) {
    const pc = run("pkg-config", ["--path", d.name]);
    if (pc.status !== 0) continue; // threads, m: no pkg-config file, part of libc6-dev
    const pkgs = owners(pc.stdout.trim(), false);
    deps.push(`${d.name} (${pkgs.join("|") || "?"})`);
    if (!pkgs.some((p) => buildPkgs.includes(p))) problems.push(`${d.name}: ${pc.stdout.trim()} comes from ${pkgs.join(" or ") || "no package"}, which the build stage does not install`);
  }
  report(problems.length === 0, `the build stage installs the package of each pkg-config dependency meson found: ${deps.join(", ")}`, problems);
}

try {
  main();
} catch (e) {
  console.log(`FAIL image checks crashed: ${e.stack ?? e}`);
  process.exit(1);
}
