// Memory growth over many calls, in a process of its own (run with
// --expose-gc by test/leak.test.ts). Prints one JSON object:
// - rss.warm: RSS (MiB) after WARM calls, collected; rss.end: after CALLS in
//   all; rss.disposed: after DISPOSED more calls in which every model, input
//   and result is disposed explicitly as soon as it is done with;
// - big: RSS before, with and after disposing 10 tensors of 40 MiB each
//   (above glibc's largest mmap threshold, so freeing them returns the pages);
// - calls: how each kind of call ended ({ kind: { resolved, aborted, ... } }).
"use strict";
const fs = require("fs");
const path = require("path");
const T = require(path.join(__dirname, "../../dist"));
const GOLDEN = path.join(__dirname, "..", "fixtures", "golden");

const CALLS = Number(process.env.LEAK_CALLS || 5000);
const WARM = Number(process.env.LEAK_WARM || 1000);
const DISPOSED = Number(process.env.LEAK_DISPOSED || 1000);

const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
const tick = () => new Promise((r) => setImmediate(r));
async function collect() {
  // Two rounds: finalizers of native wrappers run after the first.
  for (let i = 0; i < 3; i++) {
    global.gc();
    await tick();
  }
  await new Promise((r) => setTimeout(r, 50));
  global.gc();
  return rssMiB();
}
const input = (shape, seed) => T.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.37 + seed)), shape);

const tally = {};
function count(kind, how) {
  tally[kind] = tally[kind] || {};
  tally[kind][how] = (tally[kind][how] || 0) + 1;
}

// One call of kind i % 8; with `dispose`, frees what it made. The five
// kinds that resolve hold at least 16 KiB of input and result tensors each.
async function call(i, models, dispose) {
  const { cnn, mlp } = models;
  const kind = ["saliency", "ig", "ablation", "forward", "tensor", "ig-abort", "ig-preaborted", "ig-timeout"][i % 8];
  const made = [];
  const t = (shape) => {
    const x = input(shape, i);
    made.push(x);
    return x;
  };
  try {
    let r;
    switch (kind) {
      case "saliency": r = await new T.Saliency(cnn).attribute(t([32, 1, 8, 8]), { target: i % 3 }); break;
      case "ig": r = await new T.IntegratedGradients(mlp).attribute(t([256, 8]), { target: i % 4, nSteps: 8 }); break;
      case "ablation": r = await new T.FeatureAblation(mlp).attribute(t([256, 8]), { target: 1 }); break;
      case "forward": r = await cnn.forward(t([64, 1, 8, 8])); break;
      case "tensor": r = t([64, 64]); r.data(); r.toArray(); break;
      case "ig-abort": {
        const c = new AbortController();
        const p = new T.IntegratedGradients(cnn).attribute(t([2, 1, 8, 8]), { target: 0, nSteps: 400, internalBatchSize: 8, signal: c.signal });
        setTimeout(() => c.abort(), 1);
        r = await p;
        break;
      }
      case "ig-preaborted": r = await new T.IntegratedGradients(cnn).attribute(t([2, 1, 8, 8]), { target: 0, signal: AbortSignal.abort() }); break;
      case "ig-timeout": r = await new T.IntegratedGradients(cnn).attribute(t([2, 1, 8, 8]), { target: 0, nSteps: 400, internalBatchSize: 8, timeoutMs: 2 }); break;
    }
    count(kind, "resolved");
    if (dispose && r) r.dispose();
  } catch (e) {
    count(kind, e.code === "ERR_ABORTED" ? "aborted" : `${e.code}: ${e.message}`);
  } finally {
    if (dispose) for (const x of made) x.dispose();
  }
}

(async () => {
  const load = () => Promise.all([T.loadModel(path.join(GOLDEN, "cnn.pt")), T.loadModel(path.join(GOLDEN, "mlp.pt"))]).then(([cnn, mlp]) => ({ cnn, mlp }));
  let models = await load();
  const rss = {};
  const t0 = Date.now();
  for (let i = 0; i < CALLS; i++) {
    await call(i, models, false);
    if (i + 1 === WARM) rss.warm = await collect();
  }
  rss.end = await collect();
  const callsMs = Date.now() - t0;
  // Everything disposed explicitly from here on, models reloaded every 100 calls.
  for (let i = 0; i < DISPOSED; i++) {
    if (i % 100 === 0) {
      models.cnn.dispose();
      models.mlp.dispose();
      models = await load();
    }
    await call(i, models, true);
  }
  models.cnn.dispose();
  models.mlp.dispose();
  rss.disposed = await collect();
  // dispose() frees native memory at once, without waiting for a collection.
  const big = { before: rssMiB() };
  const data = new Float32Array(10 * 2 ** 20).fill(1); // one source array: only the tensors are counted ten times
  const held = Array.from({ length: 10 }, () => T.tensor(data, [data.length]));
  big.held = rssMiB();
  for (const x of held) x.dispose();
  big.after = rssMiB();
  console.log(JSON.stringify({ rss, big, calls: tally, callsMs, totalMs: Date.now() - t0 }));
})().catch((e) => {
  console.error(e && e.stack);
  process.exitCode = 1;
});
