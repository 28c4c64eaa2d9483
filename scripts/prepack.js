#!/usr/bin/env node
// npm pack's first step: the TypeScript compiled afresh into dist/. In a clone
// without the dev dependencies (a fresh one, before npm ci) it says what to run,
// rather than failing with "tsc: not found".
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const root = path.join(__dirname, "..");
let tsc;
try {
  tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
} catch {
  console.error("torchexplain: npm pack compiles the TypeScript with the dev dependencies, which are not installed here: run npm ci first");
  process.exit(1);
}
fs.rmSync(path.join(root, "dist"), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json")], { stdio: "inherit" });
process.exit(r.status ?? 1);
