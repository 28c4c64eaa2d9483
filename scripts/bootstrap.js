#!/usr/bin/env node
// Brings a checkout to a runnable state, doing only what is missing:
// LibTorch (2.x by default: pip's torch in a venv, .torch/, unless LIBTORCH,
// Torch_DIR or TORCHEXPLAIN_LIBTORCH=debian picks another), npm packages, the
// native addon (rebuilt from scratch when the LibTorch chosen changes) and
// the TypeScript build.
// Quick when nothing is missing. `--native-tests` also runs the C++ tests.
"use strict";
const { execSync, spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { findLibTorch, versionOf, NotFound, VENV } = require("./libtorch");

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

const hasCommands = (...names) => spawnSync("sh", ["-c", names.map((n) => `command -v ${n}`).join(" && ")], { stdio: "ignore" }).status === 0;
const hasApt = () => hasCommands("apt-get");
const DEBIAN_LIBTORCH = "libtorch-dev cmake g++ ninja-build";
const sudo = () => (process.getuid && process.getuid() === 0 ? "" : "sudo ");

function aptInstall(what) {
  log(`installing ${what} with apt-get`);
  sh(`${sudo()}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo()}apt-get install -y -qq ${what}`);
}

// pip's torch (CPU wheels where the index has them) in the checkout's venv.
// TORCHEXPLAIN_TORCH replaces the requirement, e.g. "torch==2.13.0
// --index-url https://download.pytorch.org/whl/cpu" for the CPU-only wheel.
function makeVenv() {
  const requirement = process.env.TORCHEXPLAIN_TORCH || "torch==2.13.0";
  const python = process.env.PYTHON || "python3";
  log(`LibTorch 2.x: pip install ${requirement} into ${path.relative(root, VENV)}/`);
  if (!fs.existsSync(path.join(VENV, "bin", "python"))) sh(`${python} -m venv ${JSON.stringify(VENV)}`);
  sh(`${JSON.stringify(path.join(VENV, "bin", "python"))} -m pip install --disable-pip-version-check --retries 1 -q ${requirement}`);
}

function ensureLibTorch() {
  const env = process.env;
  const asked = env.LIBTORCH || env.Torch_DIR;
  const debian = env.TORCHEXPLAIN_LIBTORCH === "debian";
  let found = null;
  try {
    found = findLibTorch();
  } catch (e) {
    if (!(e instanceof NotFound) || asked) throw e;
  }
  if (found && (asked || debian || found.from !== "libtorch-dev")) return found;
  if (debian) {
    if (!hasApt()) throw new Error("TORCHEXPLAIN_LIBTORCH=debian needs apt-get to install libtorch-dev");
    aptInstall(DEBIAN_LIBTORCH);
    return findLibTorch();
  }
  if (!hasCommands("cmake", "g++") && hasApt()) aptInstall("cmake g++ ninja-build python3-venv");
  try {
    makeVenv();
    return findLibTorch();
  } catch (e) {
    // No pip index reachable: Debian's 1.13 still builds and runs the project.
    if (found) {
      log(`could not install pip's torch (${e.message}); building against ${found.dir} instead`);
      return found;
    }
    if (!hasApt()) throw e;
    log(`could not install pip's torch (${e.message}); falling back to Debian's libtorch-dev`);
    aptInstall(DEBIAN_LIBTORCH);
    return findLibTorch();
  }
}

function ensureNodeModules() {
  if (fs.existsSync(path.join(root, "node_modules", ".bin", "cmake-js")) && fs.existsSync(path.join(root, "node_modules", "typescript")))
    return;
  sh("npm ci --no-audit --no-fund");
}

// The Torch_DIR an existing build/ was configured with.
function builtAgainst() {
  const cache = path.join(root, "build", "CMakeCache.txt");
  if (!fs.existsSync(cache)) return null;
  const m = /^Torch_DIR:[A-Z]+=(.*)$/m.exec(fs.readFileSync(cache, "utf8"));
  return m ? path.resolve(m[1]) : null;
}

function ensureNative(libtorch) {
  const addon = "build/Release/torchexplain.node";
  const before = builtAgainst();
  if (before && before !== libtorch.dir) {
    // Objects, precompiled headers and the cached Torch_DIR belong to the other one.
    log(`LibTorch changed (${before} -> ${libtorch.dir}): rebuilding from scratch`);
    fs.rmSync(path.join(root, "build"), { recursive: true, force: true });
  } else if (newest(["native", "CMakeLists.txt"]) <= mtime(addon) && coreTestBinary()) return;
  log(`building against LibTorch ${versionOf(libtorch) || ""} from ${libtorch.from}`);
  const jobs = Math.max(1, os.cpus().length);
  sh(`npx cmake-js build --out build -p ${jobs} --CDTorch_DIR=${JSON.stringify(libtorch.dir)}`);
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

// The real-architecture test models (scripts/make_zoo.py), made with the
// venv's torch plus torchvision and transformers, for `npm test` only.
const ZOO_PACKAGES = process.env.TORCHEXPLAIN_ZOO_PACKAGES || "torchvision==0.28.0 transformers==5.18.0";
function ensureZoo() {
  const zoo = path.join(root, "test", "fixtures", "zoo");
  // Remade when scripts/make_zoo.py changes (the references were made from its modules).
  const script = fs.readFileSync(path.join(root, "scripts", "make_zoo.py"));
  const stamp = require("crypto").createHash("sha256").update(script).digest("hex");
  const stampFile = path.join(zoo, ".made-by");
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === stamp) return;
  const python = fs.existsSync(path.join(VENV, "bin", "python")) ? path.join(VENV, "bin", "python") : process.env.PYTHON || "python3";
  const has = (mod) => spawnSync(python, ["-c", `import ${mod}`], { stdio: "ignore" }).status === 0;
  if (!has("torch")) return log("no Python torch for the zoo: the zoo tests will fail (set PYTHON or let this script make .torch/)");
  if (!has("torchvision") || !has("transformers")) sh(`${JSON.stringify(python)} -m pip install --disable-pip-version-check --retries 1 -q ${ZOO_PACKAGES}`);
  sh(`${JSON.stringify(python)} scripts/make_zoo.py`);
  fs.writeFileSync(stampFile, stamp);
}

function main() {
  const libtorch = ensureLibTorch();
  ensureNodeModules();
  const tests = process.argv.includes("--native-tests");
  ensureNative(libtorch);
  ensureTypeScript();
  if (process.env.npm_lifecycle_event === "pretest") ensureZoo();
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
