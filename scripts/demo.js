#!/usr/bin/env node
// npm run demo: the bundled digits CNN explains a few held-out digits.
// Shows each 8x8 image beside its IntegratedGradients, SmoothGrad, DeepLift and
// GuidedGradCam maps.
"use strict";
const path = require("path");
const tx = require("../dist");

const MODELS = path.join(__dirname, "..", "models");
const SHADES = " .:-=+*#%@";

function softmax(row) {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// One character per pixel: the input's ink, or an attribution's sign and size.
const ink = (v) => SHADES[Math.min(9, Math.max(0, Math.round(v * 9)))];
function signed(v, scale) {
  const r = v / scale;
  if (r > 0.5) return "#";
  if (r > 0.15) return "+";
  if (r < -0.5) return "=";
  if (r < -0.15) return "-";
  return "·";
}

async function main() {
  const samples = require(path.join(MODELS, "digits_samples.json"));
  const model = await tx.loadModel(path.join(MODELS, "digits_cnn.pt"));
  const info = tx.buildInfo();
  console.log(`torchexplain demo: digits_cnn.pt (sklearn digits, held-out accuracy ${samples.accuracy}), LibTorch ${info.libtorch}, ${model.device}`);
  console.log(`layers: ${model.layers().join(", ")}\n`);

  const [n, , h, w] = samples.shape;
  const images = tx.tensor(Float32Array.from(samples.images), samples.shape);
  const logits = (await model.forward(images)).toArray();
  const predicted = logits.map((row) => row.indexOf(Math.max(...row)));

  const t0 = process.hrtime.bigint();
  const ig = new tx.IntegratedGradients(model);
  const { attributions, delta } = await ig.attribute(images, { target: predicted, baselines: 0, nSteps: 64, returnConvergenceDelta: true });
  const t1 = process.hrtime.bigint();
  tx.manualSeed(0);
  const smooth = await new tx.NoiseTunnel(new tx.Saliency(model)).attribute(images, { target: predicted, nSamples: 32, stdevs: 0.15, abs: false });
  const t2 = process.hrtime.bigint();
  const deeplift = await new tx.DeepLift(model).attribute(images, { target: predicted, baselines: 0 });
  const t3 = process.hrtime.bigint();
  const gradcam = await new tx.GuidedGradCam(model, "conv2").attribute(images, { target: predicted });
  const t4 = process.hrtime.bigint();

  const x = images.data(), a = attributions.data(), s = smooth.data(), d = delta.data();
  const dl = deeplift.data(), gc = gradcam.data();
  for (let i = 0; i < n; i++) {
    const p = softmax(logits[i]);
    const off = i * h * w;
    const slice = (arr) => Array.from(arr.subarray(off, off + h * w));
    const scale = (arr) => Math.max(...slice(arr).map(Math.abs)) || 1;
    const [aScale, sScale, dScale, gScale] = [a, s, dl, gc].map(scale);
    const igSum = slice(a).reduce((u, v) => u + v, 0);
    console.log(`sample ${i}: label ${samples.labels[i]}, predicted ${predicted[i]} (p=${p[predicted[i]].toFixed(2)})` +
      `   IG sum ${igSum.toFixed(3)} = F(x) - F(0) ${(igSum - d[i]).toFixed(3)} (delta ${d[i].toExponential(1)})`);
    console.log("  input       IntegratedGradients   SmoothGrad    DeepLift      GuidedGradCam");
    for (let r = 0; r < h; r++) {
      const row = (f) => Array.from({ length: w }, (_, c) => f(off + r * w + c)).join("");
      console.log(`  ${row((k) => ink(x[k]))}    ${row((k) => signed(a[k], aScale))}              ${row((k) => signed(s[k], sScale))}` +
        `      ${row((k) => signed(dl[k], dScale))}      ${row((k) => signed(gc[k], gScale))}`);
    }
    console.log("");
  }
  console.log("legend: # strong for the prediction, + for, · neutral, - against, = strong against");
  console.log(`IntegratedGradients (${n} images, 64 steps): ${(Number(t1 - t0) / 1e6).toFixed(1)} ms; ` +
    `SmoothGrad (32 noisy copies): ${(Number(t2 - t1) / 1e6).toFixed(1)} ms; ` +
    `DeepLift: ${(Number(t3 - t2) / 1e6).toFixed(1)} ms; GuidedGradCam (conv2): ${(Number(t4 - t3) / 1e6).toFixed(1)} ms`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
