#!/usr/bin/env node
// Brings a checkout to a runnable state, doing only what is missing:
// LibTorch (Debian's libtorch-dev via apt-get, unless LIBTORCH or Torch_DIR
// points at another), npm packages, the native addon and the TypeScript build.
// Quick when nothing is missing. `--native-tests` also runs the C++ tests.
"use strict";
const { execSync, spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { findLibTorch, NotFound } = require("./libtorch");

const root = path.join(__dirname, "..");
const quiet = process.argv.includes("--quiet");
const log = (msg) => quiet || console.error(`[torchexplain] ${msg}`);

function sh(cmd, opts = {}) {
  log(`$ ${cmd}`);
  const r = spawnSync(cmd, { shell: true, stdio: "inherit", cwd: root, ...opts });
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${cmd}`);
}

function newest(paths) {
  let t = 0;
  const visit = (p) => {
    if (!fs.existsSync(p)) return;
    const s = fs.statSync(p);
    if (s.isDirectory()) fs.readdirSync(p).forEach((f) => visit(path.join(p, f)));
    else t = Math.max(t, s.mtimeMs);
  };
  paths.forEach((p) => visit(path.join(root, p)));
  return t;
}
const mtime = (p) => (fs.existsSync(path.join(root, p)) ? fs.statSync(path.join(root, p)).mtimeMs : 0);

function ensureLibTorch() {
  let missing;
  try {
    return findLibTorch();
  } catch (e) {
    missing = e;
  }
  // Debian's package is installed for you only where no other LibTorch was asked for.
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
  if (!(missing instanceof NotFound) || process.env.LIBTORCH || process.env.Torch_DIR || !hasApt) throw missing;
  const sudo = process.getuid && process.getuid() === 0 ? "" : "sudo ";
  log("LibTorch not found: installing Debian's libtorch-dev");
  sh(`${sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y -qq libtorch-dev cmake g++ ninja-build`);
}

function ensureNodeModules() {
  if (fs.existsSync(path.join(root, "node_modules", ".bin", "cmake-js")) && fs.existsSync(path.join(root, "node_modules", "typescript")))
    return;
  sh("npm ci --no-audit --no-fund");
}

function ensureNative() {
  const addon = "build/Release/torchexplain.node";
  if (newest(["native", "CMakeLists.txt"]) <= mtime(addon) && coreTestBinary()) return;
  const jobs = Math.max(1, os.cpus().length);
  sh(`npx cmake-js build --out build -p ${jobs}`);
}

function ensureTypeScript() {
  if (newest(["lib", "tsconfig.json"]) <= mtime("dist/index.js")) return;
  sh("npx tsc -p tsconfig.json");
}

function coreTestBinary() {
  for (const p of ["build/torchexplain_core_tests", "build/Release/torchexplain_core_tests"])
    if (fs.existsSync(path.join(root, p))) return path.join(root, p);
  return null;
}

function main() {
  ensureLibTorch();
  ensureNodeModules();
  const tests = process.argv.includes("--native-tests");
  ensureNative();
  ensureTypeScript();
  if (tests) {
    const bin = coreTestBinary();
    if (!bin) throw new Error("the C++ core tests were not built");
    sh(`${bin} ${path.join(root, "test", "fixtures", "golden")}`);
  }
}

module.exports = { coreTestBinary };
if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`[torchexplain] ${e.message}`);
    process.exit(1);
  }
}
