// Runs in its own process for test/limits.test.ts (so that the memory
// measured is this request's alone). argv[2]:
// - "rss": after loading the 3x32x32 conv net and a warm-up, runs IG with
//   100000 steps and no internalBatchSize, so that chunks are sized from the
//   memory budget (TORCHEXPLAIN_MEMORY_BUDGET, or BUDGET_MIB as the
//   memoryBudget option), until timeoutMs (TIMEOUT_MS) cancels it; prints
//   { baseMiB, hwmMiB, rssMiB, elapsedMs, code, message } as JSON.
// - "env-default": with TORCHEXPLAIN_MEMORY_BUDGET set tiny, an IG without the
//   option must be rejected; with memoryBudget it must resolve.
"use strict";
const fs = require("fs");
const path = require("path");
const T = require(path.join(__dirname, "../../dist"));
const ROOT = path.join(__dirname, "..", "..");

function status(key) {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync("/proc/self/status", "utf8"));
  return Number(m[1]) / 1024;
}
const input = (shape) => T.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.37) * 0.9), shape);

async function rss() {
  const conv = await T.loadModel(path.join(ROOT, "models", "bench_convnet.pt"));
  const x = input([1, 3, 32, 32]);
  await conv.forward(x);
  await new T.IntegratedGradients(conv).attribute(x, { target: 0, nSteps: 16, internalBatchSize: 8 });
  const baseMiB = status("VmRSS");
  const options = { target: 0, nSteps: 100000, timeoutMs: Number(process.env.TIMEOUT_MS || 4000) };
  if (process.env.BUDGET_MIB) options.memoryBudget = Number(process.env.BUDGET_MIB) * 2 ** 20;
  const t0 = Date.now();
  let code = "resolved", message = "";
  try {
    await new T.IntegratedGradients(conv).attribute(x, options);
  } catch (e) {
    code = e.code;
    message = e.message;
  }
  return { baseMiB, hwmMiB: status("VmHWM"), rssMiB: status("VmRSS"), elapsedMs: Date.now() - t0, code, message };
}

async function envDefault() {
  const cnn = await T.loadModel(path.join(ROOT, "test", "fixtures", "golden", "cnn.pt"));
  const x = input([2, 1, 8, 8]);
  const out = {};
  try {
    await new T.IntegratedGradients(cnn).attribute(x, { target: 0, nSteps: 50 });
    out.withoutOption = { code: "resolved" };
  } catch (e) {
    out.withoutOption = { code: e.code, message: e.message };
  }
  try {
    const r = await new T.IntegratedGradients(cnn).attribute(x, { target: 0, nSteps: 50, memoryBudget: 2 ** 30 });
    out.withOption = { code: "resolved", shape: r.shape };
  } catch (e) {
    out.withOption = { code: e.code, message: e.message };
  }
  return out;
}

(process.argv[2] === "rss" ? rss() : envDefault()).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    console.error(e && e.stack);
    process.exitCode = 1;
  },
);
