// A worker_threads script: workerData.mode is
// - "work": a few attributions on small models (the same ones in every
//   worker), whose values it posts back as { name: number[] };
// - "endless": starts a never-ending IG and a Lime job with a JavaScript
//   callback, posts "started", and (workerData.busyMs) blocks its own
//   JavaScript thread for a while so that callbacks wait; the parent then
//   terminates it or exits the process.
"use strict";
const { parentPort, workerData } = require("worker_threads");
const { T, load, input, busy, sleep, startEndlessIG, startEndlessLime } = require("./common");

async function work() {
  const toy = await load("toy.pt"), mlp = await load("mlp.pt"), cnn = await load("cnn.pt");
  const x = input([2, 8]), img = input([2, 1, 8, 8]);
  const out = {};
  const keep = (name, t) => (out[name] = Array.from(t.data()));
  let progress = 0, similarity = 0;
  const jobs = [];
  for (let round = 0; round < (workerData.rounds ?? 3); round++) {
    jobs.push(
      new T.Saliency(toy).attribute(T.tensor([[1, 2, 3]]), { target: 0 }).then((t) => keep("saliency", t)),
      new T.IntegratedGradients(cnn).attribute(img, { target: 1, nSteps: 64, internalBatchSize: 16 }).then((t) => keep("ig", t)),
      new T.FeatureAblation(mlp).attribute(x, { target: 2, onProgress: () => progress++ }).then((t) => keep("ablation", t)),
      new T.Lime(mlp).attribute(x, { target: 0, nSamples: 30, similarityFunc: () => (similarity++, 1) }).then((t) => (out.limeShape = t.shape)),
      mlp.forward(x).then((t) => keep("forward", t)),
    );
  }
  await Promise.all(jobs);
  if (progress < 1) throw new Error("onProgress was never called");
  if (similarity < 30) throw new Error(`similarityFunc was called ${similarity} times, expected at least 30`);
  return out;
}

async function endless() {
  const ig = await startEndlessIG();
  const lime = await startEndlessLime();
  // Their rejections (at termination) must not be unhandled.
  ig.job.catch(() => {});
  lime.job.catch(() => {});
  await sleep(20);
  parentPort.postMessage("started");
  if (workerData.busyMs) busy(workerData.busyMs);
}

(workerData.mode === "endless" ? endless() : work()).then(
  (r) => r && parentPort.postMessage(r),
  (e) => parentPort.postMessage({ error: String(e && e.stack) }),
);
