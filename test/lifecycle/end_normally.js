// Scenario (a): a Lime call with a JavaScript similarityFunc and attributions
// with onProgress; the script ends on its own, after they finish ("after")
// or while they are still running ("while": nothing awaits them, and the
// requests in flight keep the process alive until they settle).
// Prints "lime", "ablation", "ig" as each finishes, "end" when main's code ends.
"use strict";
const { T, load, input, mark } = require("./common");
const mode = process.argv[2] || "after";

(async () => {
  const mlp = await load("mlp.pt"), cnn = await load("cnn.pt");
  const x = input([3, 8]), img = input([2, 1, 8, 8]);
  let similarity = 0, progress = 0, igProgress = 0;
  const jobs = [
    new T.Lime(mlp)
      .attribute(x, { target: 1, nSamples: 80, similarityFunc: (orig, pert, z) => (similarity++, z.shape.length === 2 ? 1 : 0) })
      .then((r) => mark(`lime ${r.shape} calls=${similarity}`)),
    new T.FeatureAblation(cnn)
      .attribute(img, { target: 0, onProgress: (done, total) => (progress = Math.max(progress, done / total)) })
      .then((r) => mark(`ablation ${r.shape} progress=${progress}`)),
    new T.IntegratedGradients(cnn)
      .attribute(img, { target: 2, nSteps: 300, internalBatchSize: 8, onProgress: () => igProgress++ })
      .then((r) => mark(`ig ${r.shape}`)),
  ];
  if (mode === "after") await Promise.all(jobs);
  mark("end");
})().catch((e) => {
  mark(`error ${e && e.stack}`);
  process.exitCode = 1;
});
