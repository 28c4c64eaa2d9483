// Shared by the lifecycle scripts (each runs as its own process, started by
// test/lifecycle.test.ts): the compiled library, its fixtures and inputs.
"use strict";
const path = require("path");

const ROOT = path.join(__dirname, "..", "..");
const T = require(path.join(ROOT, "dist"));
const GOLDEN = path.join(ROOT, "test", "fixtures", "golden");
const MODELS = path.join(ROOT, "models");

const load = (file) => T.loadModel(file.includes("/") ? path.join(ROOT, file) : path.join(GOLDEN, file));

/** A deterministic float32 tensor of the given shape. */
function input(shape, seed = 0) {
  const n = shape.reduce((a, b) => a * b, 1);
  return T.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + seed) * 0.9), shape);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A synchronous line on stdout: the parent reads how far the script got even when it dies. */
function mark(line) {
  require("fs").writeSync(1, line + "\n");
}

/**
 * Starts a job that runs far longer than any test: IG with 100000 steps on
 * the 3x32x32 conv net in chunks of 4 rows (a few ms each), so that it is
 * mid-computation when the script stops it. Resolves, once the model is
 * loaded and the job started, to the job's Promise (in an object, so that
 * awaiting this does not wait for the job).
 */
async function startEndlessIG(options = {}) {
  const conv = await load("models/bench_convnet.pt");
  const x = input([1, 3, 32, 32]);
  return { job: new T.IntegratedGradients(conv).attribute(x, { target: 0, nSteps: 100000, internalBatchSize: 4, ...options }) };
}

/**
 * Starts a Lime job with many samples whose similarityFunc is JavaScript
 * (40000 calls, a few seconds): its compute thread waits for the JavaScript
 * thread to answer each one. Resolves once the first call came, so that the
 * job is in its callback phase.
 */
async function startEndlessLime(similarityFunc = () => 1) {
  const mlp = await load("mlp.pt");
  let first;
  const called = new Promise((resolve) => (first = resolve));
  const job = new T.Lime(mlp).attribute(input([2, 8]), {
    target: 0,
    nSamples: 20000,
    similarityFunc: (...args) => (first(), similarityFunc(...args)),
  });
  await Promise.race([called, job]);
  return { job };
}

/** Blocks the JavaScript thread (callbacks from compute threads queue up meanwhile). */
function busy(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

module.exports = { T, ROOT, GOLDEN, MODELS, load, input, sleep, mark, busy, startEndlessIG, startEndlessLime };
