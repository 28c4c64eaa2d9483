// Scenario (d): a worker is terminated mid-job (a never-ending IG, and a Lime
// job waiting on its JavaScript callback; with BUSY_MS > 0 the worker's
// JavaScript thread is blocked, so callbacks wait), then a new worker starts
// and computes; the main thread uses the library after both, and the process
// ends on its own with exit code 0. argv: DELAY_MS BUSY_MS
"use strict";
const path = require("path");
const { Worker } = require("worker_threads");
const { T, mark, sleep } = require("./common");
const [delay, busyMs] = process.argv.slice(2).map(Number);

function spawn(workerData) {
  const w = new Worker(path.join(__dirname, "worker_job.js"), { workerData });
  const exited = new Promise((resolve) => w.on("exit", resolve));
  const message = new Promise((resolve, reject) => {
    w.on("message", (m) => (m && m.error ? reject(new Error(m.error)) : resolve(m)));
    w.on("error", reject);
  });
  return { w, exited, message };
}

(async () => {
  const doomed = spawn({ mode: "endless", busyMs });
  if ((await doomed.message) !== "started") throw new Error("the endless worker did not start");
  await sleep(delay);
  await doomed.w.terminate();
  await doomed.exited;
  mark("terminated");
  const fresh = spawn({ mode: "work", rounds: 1 });
  const r = await fresh.message;
  const expected = [0, 3, 6]; // |d(toy output 0)/dx| at [1, 2, 3]
  if (!r.saliency || r.saliency.some((v, i) => !(Math.abs(v - expected[i]) <= 1e-5 * 6)))
    throw new Error(`new worker's saliency ${r.saliency}, expected ${expected}`);
  const code = await fresh.exited;
  if (code !== 0) throw new Error(`new worker exited with ${code}`);
  mark("new worker finished");
  // And the main thread's own environment works after both.
  const toy = await T.loadModel(path.join(__dirname, "../fixtures/golden/toy.pt"));
  const s = Array.from((await new T.Saliency(toy).attribute(T.tensor([[1, 2, 3]]), { target: 0 })).data());
  if (s.some((v, i) => !(Math.abs(v - expected[i]) <= 1e-5 * 6))) throw new Error(`main saliency ${s}`);
  mark("main finished");
})().catch((e) => {
  mark(`error ${e && e.stack}`);
  process.exitCode = 1;
});
