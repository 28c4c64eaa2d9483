#!/usr/bin/env node
// npm run bench: times attribution calls and, in the same process, their
// floor: the same forward/backward passes of the bare model (native, no
// torchexplain machinery), timed in alternation with the attribution so that
// a noisy spell hits both. Prints a Markdown table (the README's figures).
"use strict";
const path = require("path");
const tx = require("../dist");
const { native } = require("../dist/native");

const MODELS = path.join(__dirname, "..", "models");

function filled(n, f) {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

// Path points of a zero baseline to x, step-major as IntegratedGradients lays them out.
function pathRows(x, shape, alphas) {
  const per = x.length;
  const out = new Float32Array(per * alphas.length);
  alphas.forEach((a, k) => {
    for (let i = 0; i < per; i++) out[k * per + i] = a * x[i];
  });
  return tx.tensor(out, [shape[0] * alphas.length, ...shape.slice(1)]);
}

// Seconds per call: the best of several batches of calls (this machine is
// shared and noisy; the minimum is the least disturbed estimate).
// Several functions timed in alternation, each as its fastest call over the
// rounds, so that a noisy spell on the machine hits them all alike. A
// function that returns a number has timed itself (the native floor): that
// number counts.
async function timeTogether(fns, { seconds = 1, rounds = 6, warmup = 3 } = {}) {
  for (const f of fns) for (let i = 0; i < warmup; i++) await f();
  const best = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++)
    for (const [k, f] of fns.entries()) {
      let calls = 0, elapsed = 0;
      const start = process.hrtime.bigint();
      while (calls < 2 || elapsed < seconds / rounds) {
        const t0 = process.hrtime.bigint();
        const v = await f();
        const own = typeof v === "number" ? v : Number(process.hrtime.bigint() - t0) / 1e9;
        best[k] = Math.min(best[k], own);
        calls++;
        elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      }
    }
  return best;
}

// One run of the floor: the bare model's passes over `rows` (native, no torchexplain).
function floorRun(model, rowsTensor, target, chunk = 0, backward = true) {
  return () => native.benchFloor(model.native, [rowsTensor.native], target, chunk, 1, backward);  // seconds per run
}

const fmt = (s) => (s >= 0.1 ? `${(s * 1e3).toFixed(0)} ms` : s >= 0.001 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(0)} µs`);

async function main() {
  const info = tx.buildInfo();
  console.log(`torchexplain benchmarks — LibTorch ${info.libtorch}, CPU, ${require("os").cpus().length} cores, node ${process.version}\n`);
  const rows = [];
  // Times an attribution and its floor in alternation; `others` are timed
  // alongside (for a note) and returned.
  const measure = async (name, fn, floor, { others = [], note = () => "", seconds = 2 } = {}) => {
    const [t, f, ...rest] = await timeTogether([fn, floor, ...others], { seconds });
    rows.push({ name, t, floor: f, note: note(t, ...rest) });
    console.error(`  ${name}: ${fmt(t)} (floor ${fmt(f)}, ${(t / f).toFixed(3)}x)`);
  };

  const conv = await tx.loadModel(path.join(MODELS, "bench_convnet.pt"));
  const mlp = await tx.loadModel(path.join(MODELS, "bench_mlp.pt"));
  const convShape = [8, 3, 32, 32];
  const convData = filled(8 * 3 * 32 * 32, (i) => Math.sin(i * 0.37));
  const convX = tx.tensor(convData, convShape);
  const steps = 50;
  const gl = gaussLegendreAlphas(steps);

  // IntegratedGradients on the conv net, whole and chunked.
  const ig = new tx.IntegratedGradients(conv);
  const convRows = pathRows(convData, convShape, gl);
  for (const chunk of [0, 100]) {
    const opts = { target: 3, nSteps: steps, ...(chunk ? { internalBatchSize: chunk } : {}) };
    await measure(`IntegratedGradients, conv net, batch 8 × 3×32×32, 50 steps${chunk ? `, internalBatchSize ${chunk}` : ""}`,
      () => ig.attribute(convX, opts), floorRun(conv, convRows, 3, chunk), { seconds: 4 });
  }

  // GradientShap and SmoothGrad on the conv net: 50 samples per example.
  const gs = new tx.GradientShap(conv);
  const baselines = tx.tensor(filled(4 * 3 * 32 * 32, (i) => Math.cos(i) * 0.1), [4, 3, 32, 32]);
  const sampleRows = pathRows(convData, convShape, new Array(50).fill(0.5));
  await measure("GradientShap, conv net, batch 8, 50 samples", () => gs.attribute(convX, { target: 3, baselines, nSamples: 50 }),
    floorRun(conv, sampleRows, 3), { seconds: 4 });
  const nt = new tx.NoiseTunnel(new tx.Saliency(conv));
  await measure("NoiseTunnel(Saliency), conv net, batch 8, 50 samples", () => nt.attribute(convX, { target: 3, nSamples: 50, stdevs: 0.1 }),
    floorRun(conv, sampleRows, 3), { seconds: 4 });

  // Occlusion on the conv net: 49 windows of 3×8×8, all in one batched pass ("auto").
  const occ = new tx.Occlusion(conv);
  const occOpts = { target: 3, slidingWindowShapes: [3, 8, 8], strides: [3, 4, 4], perturbationsPerEval: "auto" };
  const occRows = tx.tensor(filled(50 * 8 * 3 * 32 * 32, (i) => Math.sin(i * 0.11)), [50 * 8, 3, 32, 32]);
  await measure("Occlusion, conv net, batch 8, window 3×8×8, stride 3×4×4 (49 windows)", () => occ.attribute(convX, occOpts),
    floorRun(conv, occRows, 3, 0, false), { seconds: 4 });

  // Rule-based backprop on the conv net, against the plain gradient (Saliency)
  // of the same rows: DeepLift runs input and baseline rows together (16 rows).
  const sal = new tx.Saliency(conv);
  const pairs = tx.tensor(filled(16 * 3 * 32 * 32, (i) => Math.sin(i * 0.37)), [16, 3, 32, 32]);
  const dl = new tx.DeepLift(conv);
  await measure("DeepLift, conv net, batch 8 (16 rows with the baselines)", () => dl.attribute(convX, { target: 3, baselines: 0 }),
    floorRun(conv, pairs, 3), {
      others: [() => sal.attribute(pairs, { target: 3 })],
      note: (t, s) => `Saliency on the same 16 rows: ${fmt(s)} (DeepLift ${(t / s).toFixed(2)}×)`,
    });
  for (const [label, init] of [["epsilon", {}], ["epsilonPlus: z+ runs each convolution twice", { preset: "epsilonPlus" }]]) {
    const lrp = new tx.LRP(conv, init);
    await measure(`LRP (${label}), conv net, batch 8`, () => lrp.attribute(convX, { target: 3 }), floorRun(conv, convX, 3), {
      others: [() => sal.attribute(convX, { target: 3 })],
      note: (t, s) => `Saliency on the same batch: ${fmt(s)} (LRP ${(t / s).toFixed(2)}×)`,
    });
  }

  // The tiny MLP: per-call overhead dominates.
  const mlpData = filled(64, (i) => Math.sin(i));
  const mlpX = tx.tensor(mlpData, [1, 64]);
  const igM = new tx.IntegratedGradients(mlp);
  await measure("IntegratedGradients, tiny MLP, batch 1 × 64, 50 steps", () => igM.attribute(mlpX, { target: 1, nSteps: steps }),
    floorRun(mlp, pathRows(mlpData, [1, 64], gl), 1), { note: () => "Python Captum: about 4.6 ms on this machine" });

  // FeatureAblation on the tiny MLP: 64 features, one batched pass ("auto") plus the unperturbed one.
  const fa = new tx.FeatureAblation(mlp);
  const ablated = floorRun(mlp, tx.tensor(filled(64 * 64, Math.sin), [64, 64]), 1, 0, false), plain = floorRun(mlp, mlpX, 1, 0, false);
  await measure("FeatureAblation, tiny MLP, batch 1 × 64 features", () => fa.attribute(mlpX, { target: 1, perturbationsPerEval: "auto" }),
    () => ablated() + plain(), { note: () => "Python Captum: about 15 ms on this machine" });

  console.log("| benchmark | time per call | floor (bare model passes) | ratio |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const r of rows) console.log(`| ${r.name} | ${fmt(r.t)} | ${fmt(r.floor)} | ${(r.t / r.floor).toFixed(2)}× |${r.note ? ` ${r.note}` : ""}`);
}

// The same points the native Gauss-Legendre rule uses (Newton on P_n).
function gaussLegendreAlphas(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    for (let it = 0; it < 100; it++) {
      let p0 = 1, p1 = x;
      for (let k = 2; k <= n; k++) [p0, p1] = [p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k];
      const dp = (n * (x * p1 - p0)) / (x * x - 1);
      const dx = p1 / dp;
      x -= dx;
      if (Math.abs(dx) < 1e-15) break;
    }
    out.push(0.5 * (1 + x));
  }
  return out.sort((a, b) => a - b);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
