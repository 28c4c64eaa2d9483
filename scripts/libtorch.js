#!/usr/bin/env node
// Finds the LibTorch that the addon builds against, in one place for every
// build: the install script and CMakeLists.txt take its CMake folder
// (Torch_DIR), binding.gyp the compiler and linker flags it derives.
//
//   node scripts/libtorch.js cmake-dir      the folder holding TorchConfig.cmake
//   node scripts/libtorch.js include-dirs   } for binding.gyp, shell-quoted
//   node scripts/libtorch.js defines        } (gyp splits them as a shell would)
//   node scripts/libtorch.js libraries      }
//
//   node scripts/libtorch.js describe       which one, its version, and why
//
// Search order: Torch_DIR, LIBTORCH (an unpacked LibTorch distribution, CPU
// or CUDA), TORCHEXPLAIN_LIBTORCH=debian (Debian's libtorch-dev), then
// LibTorch 2.x first: the checkout's own venv (.torch/, made by
// scripts/bootstrap.js), a pip-installed torch found through $PYTHON or
// python3, and Debian's libtorch-dev (1.13) last. Exits 1 with how to get
// LibTorch when none is found.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const CONFIG = "TorchConfig.cmake";
const hasConfig = (dir) => !!dir && fs.existsSync(path.join(dir, CONFIG));

const HOW_TO_GET_IT = `torchexplain builds its native addon against LibTorch (C++ PyTorch) at install time. Get one of:
  - Debian/Ubuntu:  sudo apt-get install libtorch-dev cmake g++
  - pip:            pip install torch   (found through python3, or the interpreter in $PYTHON)
  - a LibTorch distribution (CPU or CUDA) from https://pytorch.org/get-started/locally/,
    unpacked, then:  LIBTORCH=/path/to/libtorch npm install torchexplain
or set Torch_DIR to the folder holding ${CONFIG}.`;

class NotFound extends Error {}

// Debian's multiarch folder for this machine.
function debianDir() {
  const triplet = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" }[process.arch];
  return triplet ? `/usr/lib/${triplet}/cmake/Torch` : null;
}

// The venv scripts/bootstrap.js makes in a checkout for pip's torch.
const VENV = path.join(__dirname, "..", ".torch");
const venvPython = () => path.join(VENV, "bin", "python");

// A pip-installed torch ships its CMake files; Debian's python3-torch does not.
function pipDir(python = process.env.PYTHON || "python3") {
  const r = spawnSync(python, ["-c", "import torch.utils; print(torch.utils.cmake_prefix_path)"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
    timeout: 60000,
  });
  return r.status === 0 ? path.join(r.stdout.trim(), "Torch") : null;
}

/** The LibTorch to build against: { dir (holding TorchConfig.cmake), from }. */
function findLibTorch() {
  const env = process.env;
  if (env.Torch_DIR) {
    if (!hasConfig(env.Torch_DIR)) throw new NotFound(`Torch_DIR=${env.Torch_DIR} has no ${CONFIG}.\n\n${HOW_TO_GET_IT}`);
    return { dir: path.resolve(env.Torch_DIR), from: "Torch_DIR" };
  }
  if (env.LIBTORCH) {
    const dir = path.resolve(env.LIBTORCH, "share", "cmake", "Torch");
    if (!hasConfig(dir)) throw new NotFound(`LIBTORCH=${env.LIBTORCH} is not an unpacked LibTorch (no share/cmake/Torch/${CONFIG}).\n\n${HOW_TO_GET_IT}`);
    return { dir, from: "LIBTORCH" };
  }
  const debian = debianDir();
  if (env.TORCHEXPLAIN_LIBTORCH === "debian") {
    if (!hasConfig(debian)) throw new NotFound(`TORCHEXPLAIN_LIBTORCH=debian, but Debian's libtorch-dev is not installed (no ${debian}/${CONFIG}).\n\n${HOW_TO_GET_IT}`);
    return { dir: debian, from: "libtorch-dev (TORCHEXPLAIN_LIBTORCH=debian)" };
  }
  if (fs.existsSync(venvPython())) {
    const venv = pipDir(venvPython());
    if (hasConfig(venv)) return { dir: venv, from: "pip torch in .torch/" };
  }
  const pip = pipDir();
  if (hasConfig(pip)) return { dir: pip, from: `pip torch (${process.env.PYTHON || "python3"})` };
  if (hasConfig(debian)) return { dir: debian, from: "libtorch-dev" };
  throw new NotFound(`LibTorch not found.\n\n${HOW_TO_GET_IT}`);
}

// The folder above `dir` (or `dir` itself) for which `test` holds.
function upwards(dir, test) {
  for (let d = dir; ; d = path.dirname(d)) {
    if (test(d)) return d;
    if (path.dirname(d) === d) return null;
  }
}

/** The version a LibTorch installation declares, e.g. "2.13.0" (null if unknown). */
function versionOf({ dir }) {
  try {
    const text = fs.readFileSync(path.join(dir, "TorchConfigVersion.cmake"), "utf8");
    return /PACKAGE_VERSION "([^"]+)"/.exec(text)[1];
  } catch {
    return null;
  }
}

/**
 * What a build outside CMake needs, from the layout the CMake files sit in
 * (LibTorch's own, pip's and Debian's all keep include/torch above them and
 * the libraries in lib/ or beside cmake/).
 */
function gypFlags({ dir }) {
  const prefix = upwards(dir, (d) => fs.existsSync(path.join(d, "include", "torch", "script.h")));
  const so = process.platform === "darwin" ? "dylib" : "so";
  const has = (d, lib) => fs.existsSync(path.join(d, `lib${lib}.${so}`));
  const libDir = [prefix && path.join(prefix, "lib"), upwards(dir, (d) => has(d, "torch"))].find((d) => d && has(d, "torch"));
  if (!prefix || !libDir) throw new NotFound(`LibTorch at ${dir}: headers or libraries not found around it.\n\n${HOW_TO_GET_IT}`);
  // Builds with the old libstdc++ ABI (some pip wheels) need dependents to match.
  const abi = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(fs.readFileSync(path.join(dir, CONFIG), "utf8"));
  const libs = ["torch", "torch_cpu", "c10", "torch_cuda", "c10_cuda"].filter((l) => has(libDir, l));
  return {
    "include-dirs": [path.join(prefix, "include"), path.join(prefix, "include", "torch", "csrc", "api", "include")],
    defines: abi ? [`_GLIBCXX_USE_CXX11_ABI=${abi[1]}`] : [],
    // The addon finds LibTorch where it was at build time.
    libraries: [`-L${libDir}`, `-Wl,-rpath,${libDir}`, ...libs.map((l) => `-l${l}`)],
  };
}

const quote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

module.exports = { findLibTorch, gypFlags, versionOf, NotFound, HOW_TO_GET_IT, VENV };

if (require.main === module) {
  const what = process.argv[2];
  try {
    const found = findLibTorch();
    if (what === "cmake-dir") {
      console.log(found.dir);
      console.error(`torchexplain: building against LibTorch ${versionOf(found) || "(version unknown)"} from ${found.from}: ${found.dir}`);
    } else if (what === "describe") console.log(`LibTorch ${versionOf(found) || "(version unknown)"} from ${found.from}: ${found.dir}`);
    else if (["include-dirs", "defines", "libraries"].includes(what)) console.log(gypFlags(found)[what].map(quote).join(" "));
    else throw new Error(`usage: libtorch.js cmake-dir|describe|include-dirs|defines|libraries (got '${what}')`);
  } catch (e) {
    console.error(e instanceof NotFound ? `torchexplain: ${e.message}` : e.message);
    process.exit(1);
  }
}
