#!/usr/bin/env node
// npm's install step for the package: builds the native addon with cmake-js
// against the LibTorch that scripts/libtorch.js finds, offline (Node-API
// headers come from the node-api-headers package), in a temporary folder so
// that only build/Release/torchexplain.node stays in the package.
//
// Skipped when an addon is already there that loads and was built against the
// LibTorch found now, unless asked to rebuild (`npm rebuild torchexplain`, or
// `--build-from-source` as prebuilt-addon tools spell it), and when npm runs
// it in a git checkout: there `npm ci` only installs the tools, and
// scripts/bootstrap.js builds for development (npm test).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn, spawnSync } = require("child_process");
const { findLibTorch, NotFound } = require("./libtorch");

const root = path.join(__dirname, "..");
const addon = path.join(root, "build", "Release", "torchexplain.node");
const log = (msg) => console.error(`[torchexplain] ${msg}`);

// npm hides an install script's output unless --foreground-scripts; on a
// terminal the build's progress goes straight to it, so a 2-minute build is
// not a silent one. null where there is no terminal (CI) or the output shows.
function terminal() {
  if (process.stderr.isTTY) return null;
  try {
    return fs.openSync("/dev/tty", "w");
  } catch {
    return null;
  }
}

// The LibTorch version the CMake files describe ("1.13.0"), or null.
function libtorchVersion(dir) {
  try {
    return /PACKAGE_VERSION "([^"]+)"/.exec(fs.readFileSync(path.join(dir, "TorchConfigVersion.cmake"), "utf8"))[1];
  } catch {
    return null;
  }
}

// The addon's own report, loaded in a child so that a bad one cannot take this process down.
function loadedInfo(file) {
  const r = spawnSync(process.execPath, ["-e", `console.log(JSON.stringify(require(${JSON.stringify(file)}).info()))`], { encoding: "utf8" });
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

async function build(torch) {
  if (spawnSync("cmake", ["--version"], { stdio: "ignore" }).status !== 0)
    throw new NotFound("CMake not found: it builds the native addon (Debian/Ubuntu: sudo apt-get install cmake g++; or pip install cmake).");
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-build-"));
  const started = Date.now();
  try {
    const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
    const jobs = String(os.availableParallelism ? os.availableParallelism() : os.cpus().length);
    log(`building the native addon against LibTorch ${libtorchVersion(torch.dir) ?? ""} (${torch.from}: ${torch.dir}), ${jobs} jobs`);
    const args = [cmakeJs, "build", "--out", out, "--parallel", jobs, "--target", "torchexplain_node",
      `--CDTorch_DIR=${torch.dir}`, "--CDTORCHEXPLAIN_TESTS=OFF"];
    const tty = terminal();
    const tick = () => tty !== null && fs.writeSync(tty, `\r[torchexplain] building the native addon (1-3 minutes): ${Math.round((Date.now() - started) / 1000)} s `);
    tick();
    const timer = setInterval(tick, 1000);
    const status = await new Promise((resolve) => spawn(process.execPath, args, { cwd: root, stdio: "inherit" }).on("close", (code, signal) => resolve(code ?? signal)));
    clearInterval(timer);
    if (tty !== null) {
      fs.writeSync(tty, status === 0 ? `\r[torchexplain] built the native addon in ${Math.round((Date.now() - started) / 1000)} s        \n` : "\n");
      fs.closeSync(tty);
    }
    if (status !== 0) throw new Error(`the native build failed (cmake-js exited with ${status}); its output is above`);
    fs.mkdirSync(path.dirname(addon), { recursive: true });
    fs.copyFileSync(path.join(out, "Release", "torchexplain.node"), addon);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  if (!loadedInfo(addon)) throw new Error(`the built addon does not load: node -e "require('${addon}')" shows why`);
  log(`built ${path.relative(root, addon)} in ${Math.round((Date.now() - started) / 1000)} s`);
}

async function main() {
  const env = process.env;
  if (env.npm_lifecycle_event === "install" && fs.existsSync(path.join(root, ".git"))) {
    log("git checkout: not building here (npm test and npm run demo build into build/ through scripts/bootstrap.js)");
    return;
  }
  let torch = null, missing = null;
  try {
    torch = findLibTorch();
  } catch (e) {
    if (!(e instanceof NotFound)) throw e;
    missing = e;
  }
  const rebuild = env.npm_command === "rebuild" || env.npm_config_build_from_source === "true";
  if (fs.existsSync(addon) && !rebuild) {
    const info = loadedInfo(addon);
    // An addon that loads is kept unless the LibTorch found now is another version.
    if (info && (!torch || info.libtorch === libtorchVersion(torch.dir))) {
      log(`using the addon already built (LibTorch ${info.libtorch}); npm rebuild torchexplain rebuilds it`);
      return;
    }
  }
  if (missing) throw missing;
  await build(torch);
}

main().catch((e) => {
  console.error(e instanceof NotFound ? `torchexplain: ${e.message}` : `[torchexplain] ${e.message}`);
  process.exit(1);
});
