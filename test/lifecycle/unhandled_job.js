// Scenario (e): long jobs nobody awaits (an IG of a second or so, and a Lime
// job with a JavaScript callback) are still running when the script's code
// ends with process.exitCode = 0; the process must wait for them and exit
// with 0, no signal. "exitcode-first" sets the exit code before starting them.
"use strict";
const { T, load, input, mark } = require("./common");
const mode = process.argv[2] || "plain";

(async () => {
  if (mode === "exitcode-first") process.exitCode = 0;
  const conv = await load("models/bench_convnet.pt"), mlp = await load("mlp.pt");
  new T.IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 3, nSteps: 200, internalBatchSize: 4 }).then(() => mark("ig done"));
  new T.Lime(mlp).attribute(input([2, 8]), { target: 0, nSamples: 100, similarityFunc: () => 1 }).then(() => mark("lime done"));
  process.exitCode = 0;
  mark("end of script");
})();
