// Run under a 3 GB address-space limit (ulimit -v) by test/limits.test.ts:
// 50 `devices` need a thread each (256 MiB stacks), which cannot all start.
// The request must be rejected cleanly, and the process stay usable.
"use strict";
const path = require("path");
const T = require(path.join(__dirname, "../../dist"));
(async () => {
  const model = await T.loadModel(path.join(__dirname, "..", "fixtures", "golden", "mlp.pt"));
  const x = T.tensor(Float32Array.from({ length: 64 * 8 }, (_, i) => Math.sin(i)), [64, 8]);
  const out = {};
  // A process that has served requests: its worker's OpenMP team exists. (A
  // team that must be created after the address space is exhausted makes
  // libgomp end the process: LibTorch's, not ours to catch.)
  // Both pool workers (two requests at once) have served one.
  await Promise.all([0, 1].map(() => new T.IntegratedGradients(model).attribute(x, { target: 0, nSteps: 2000, internalBatchSize: 64 })));
  try {
    await new T.IntegratedGradients(model).attribute(x, { target: 0, nSteps: 50, internalBatchSize: 64, devices: Array(50).fill("cpu") });
    out.first = "resolved";
  } catch (e) {
    out.first = { code: e.code, message: e.message };
  }
  // Still usable: the same request on one device.
  const r = await new T.IntegratedGradients(model).attribute(x, { target: 0, nSteps: 50 });
  out.after = r.shape;
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e && e.stack);
  process.exitCode = 1;
});
