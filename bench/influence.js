// The influence rows of npm run bench: TracInCP and TracInCPFast on 10,000
// training examples (3x16x16 images, a small CNN, 3 checkpoints; made on first
// use by scripts/make_influence.py --bench with BENCH_PYTHON into build/),
// scoring 8 test examples. Captum's side runs the same classes on the same
// files, in its fastest configuration (per-example gradients by batch for
// linear and convolution layers, batches of the same size).
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const DIR = path.join(__dirname, "..", "build", "influence_bench");
const BATCH = 500;

function benchData(python) {
  if (fs.existsSync(path.join(DIR, "cnn_2.pt"))) return true;
  const r = spawnSync(python, [path.join(__dirname, "..", "scripts", "make_influence.py"), "--bench", DIR], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`  (no influence rows: ${python} could not make the bench set: ${(r.stderr || "").trim().split("\n").pop()})`);
    return false;
  }
  return true;
}

// Rows: [name, run, passes (the floor: forward and backward over every training
// and test row at each checkpoint), Captum's call, timing]; `models` receives the
// checkpoints (the engine floor runs them).
async function influenceWork(tx, python, models) {
  if (!benchData(python)) return [];
  const file = (f) => path.join(DIR, f);
  const ckpts = [0, 1, 2].map((i) => file(`cnn_${i}.pt`));
  for (const c of ckpts) models[path.basename(c)] = await tx.loadModel(c, { memoryFormat: "contiguous" });
  const model = models["cnn_2.pt"];
  const train = { inputs: await tx.loadNpy(file("train_x.npy")), labels: await tx.loadNpy(file("train_y.npy")) };
  const test = { inputs: await tx.loadNpy(file("test_x.npy")), labels: await tx.loadNpy(file("test_y.npy")) };
  const passes = ckpts.flatMap((c) => [
    { model: c, rows: [train.inputs], target: 0, chunk: BATCH, backward: true },
    { model: c, rows: [test.inputs], target: 0, chunk: 0, backward: true },
  ]);
  const call = (cls, extra = {}) => ({ influence: { cls, dir: DIR, batchSize: BATCH, ...extra } });
  const slow = { rounds: 3, warmup: 1 };
  const tracin = new tx.TracInCP(model, train, ckpts, { batchSize: BATCH });
  const fast = new tx.TracInCPFast(model, "fc", train, ckpts, { batchSize: BATCH });
  return [
    ["TracInCP, CNN 3×16×16, 10,000 training examples, 3 checkpoints, 8 test examples, every parameter", () => tracin.influence(test).then((t) => t.dispose()),
      passes, call("TracInCP"), slow],
    ["TracInCP, as above, the 5 proponents of each test example", () => tracin.influence(test, { k: 5 }).then((r) => (r.indices.dispose(), r.influenceScores.dispose())),
      passes, call("TracInCP", { k: 5 }), slow],
    ["TracInCPFast, as above, final layer", () => fast.influence(test).then((t) => t.dispose()), passes, call("TracInCPFast"), slow],
    ["TracInCP self-influence, 10,000 training examples, 3 checkpoints", () => tracin.selfInfluence().then((t) => t.dispose()),
      passes.filter((p) => p.rows[0] === train.inputs), call("TracInCP", { method: "self_influence" }), slow],
  ];
}

module.exports = { influenceWork };
