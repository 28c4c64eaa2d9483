// Part of scripts/gpu-check: attributions split over `devices` (the
// arguments: cuda:0 cuda:1 ..., or cpu cpu) equal the same calls on the CPU.
// The addon is TORCHEXPLAIN_ADDON's. On CUDA, cuDNN convolutions run in
// TF32 by default (as in PyTorch), hence the looser bound there.
"use strict";
const fs = require("fs");
const path = require("path");
const tx = require("../dist");

const devices = process.argv.slice(2);
const cuda = devices.some((d) => d.startsWith("cuda"));
const tolerance = cuda ? 2e-3 : 1e-5;
const root = path.join(__dirname, "..");
const image = (n, c = 1, s = 8) => tx.tensor(Float32Array.from({ length: n * c * s * s }, (_, i) => Math.sin(i * 0.37)), [n, c, s, s]);

async function main() {
  const cnn = await tx.loadModel(path.join(root, "test", "fixtures", "golden", "cnn.pt"));
  const cases = [
    ["IntegratedGradients, cnn", () => new tx.IntegratedGradients(cnn), image(6), { target: 1, nSteps: 32 }],
    ["DeepLift, cnn", () => new tx.DeepLift(cnn), image(6), { target: 1 }],
    ["LRP, cnn", () => new tx.LRP(cnn), image(6), { target: 1 }],
    ["Occlusion, cnn", () => new tx.Occlusion(cnn), image(6), { target: 1, slidingWindowShapes: [1, 2, 2] }],
    ["LayerGradCam, cnn", () => new tx.LayerGradCam(cnn, "conv2"), image(6), { target: 1 }],
  ];
  const resnet = path.join(root, "test", "fixtures", "zoo", "resnet18.pt");
  if (fs.existsSync(resnet)) {
    const m = await tx.loadModel(resnet);
    cases.push(["IntegratedGradients, resnet18", () => new tx.IntegratedGradients(m), image(4, 3, 32), { target: 3, nSteps: 16 }]);
    cases.push(["DeepLift, resnet18", () => new tx.DeepLift(m), image(4, 3, 32), { target: 3 }]);
  }
  let failed = 0;
  for (const [name, make, x, options] of cases) {
    const want = (await make().attribute(x, options)).data();
    const got = (await make().attribute(x, { ...options, devices })).data();
    let worst = 0, scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    const ok = worst <= tolerance * Math.max(scale, 1e-6);
    if (!ok) failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${name}: devices [${devices.join(", ")}] vs cpu, max difference ${(worst / Math.max(scale, 1e-30)).toExponential(1)} of the largest value (bound ${tolerance})`);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
