// The throughput rows of npm run bench: 64 single-image requests sent at once
// (Promise.all), as a service receives them, against a Python service that
// answers them one Captum call each (bench/reference.py, timed in the same
// alternation). Reports requests per second and the p50/p99 latency.
"use strict";
const path = require("path");

const N = 64;
const MODELS = path.join(__dirname, "..", "models");

// Rows: [name, make(tx, models) -> (i) => Promise, Captum's call spec].
function throughputWork(tx, models) {
  const img = (i) => tx.tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, j) => Math.sin(j * 0.37 + i)), [1, 3, 32, 32]);
  const images = Array.from({ length: N }, (_, i) => img(i));
  const conv = models["bench_convnet.pt"], res = models["bench_resnet.pt"];
  const sal = new tx.Saliency(conv), ig = new tx.IntegratedGradients(conv), cam = new tx.LayerGradCam(res, "layer3");
  const service = (cls, file, kwargs, extra = {}) => ({ service: { cls, model: path.join(MODELS, file), count: N, kwargs, ...extra } });
  return [
    [`${N} concurrent requests: Saliency, conv net, 1 image each`, (i) => sal.attribute(images[i], { target: i % 10 }), service("Saliency", "bench_convnet.pt", {})],
    [`${N} concurrent requests: IG 32 steps, conv net, 1 image each`, (i) => ig.attribute(images[i], { target: i % 10, nSteps: 32 }), service("IntegratedGradients", "bench_convnet.pt", { n_steps: 32 })],
    [`${N} concurrent requests: LayerGradCam, residual net, layer3, 1 image each`, (i) => cam.attribute(images[i], { target: i % 10 }), service("LayerGradCam", "bench_resnet.pt", {}, { layer: "layer3" })],
  ];
}

// One round: every request sent at once; the round's time and each request's latency.
async function round(send) {
  const t0 = process.hrtime.bigint();
  const latencies = await Promise.all(Array.from({ length: N }, (_, i) => send(i).then((r) => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    (Array.isArray(r) ? r : [r]).forEach((t) => t && t.dispose && t.dispose());
    return ms;
  })));
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, latencies };
}

const percentile = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

module.exports = { throughputWork, round, percentile, N };
