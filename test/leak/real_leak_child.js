// Memory growth of every method family on real networks (test/fixtures/zoo,
// made by scripts/make_zoo.py), in a process of its own run with
// --expose-gc. Each round makes one call of every family on resnet18 and on
// the transformer; prints one JSON object: rss (MiB) after WARM rounds and
// after ROUNDS, and how each kind of call ended.
"use strict";
const fs = require("fs");
const path = require("path");
const T = require(path.join(__dirname, "../../dist"));
const ZOO = process.env.ZOO_DIR || path.join(__dirname, "..", "fixtures", "zoo");
const ROUNDS = Number(process.env.LEAK_ROUNDS || 60);
const WARM = Number(process.env.LEAK_WARM || 20);

const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
async function collect() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((r) => setImmediate(r));
  }
  return rssMiB();
}

const tally = {};
const count = (kind, how) => ((tally[kind] = tally[kind] || {}), (tally[kind][how] = (tally[kind][how] || 0) + 1));

async function run(kind, fn) {
  try {
    const r = await fn();
    count(kind, "resolved");
    if (r && typeof r.dispose === "function") r.dispose();
  } catch (e) {
    count(kind, `${e.code}: ${e.message}`.slice(0, 200));
  }
}

(async () => {
  const resnet = await T.loadModel(path.join(ZOO, "resnet18.pt"));
  // LibTorch 1.13 refuses the transformer (saved by 2.x: scaled_dot_product_attention).
  const modern = Number(T.buildInfo().libtorch.split(".")[0]) >= 2;
  const text = modern ? await T.loadModel(path.join(ZOO, "transformer.pt")) : null;
  const image = T.tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 32, 32]);
  const ids = T.tensor(BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7) % 100)), [1, 16]);
  const families = [
    ["resnet18 Saliency", () => new T.Saliency(resnet).attribute(image, { target: 3 })],
    ["resnet18 IntegratedGradients", () => new T.IntegratedGradients(resnet).attribute(image, { target: 3, nSteps: 8 })],
    ["resnet18 InputXGradient", () => new T.InputXGradient(resnet).attribute(image, { target: 3 })],
    ["resnet18 GradientShap", () => new T.GradientShap(resnet).attribute(image, { target: 3, baselines: T.tensor(new Float32Array(2 * 3 * 32 * 32), [2, 3, 32, 32]), nSamples: 4 })],
    ["resnet18 NoiseTunnel", () => new T.NoiseTunnel(new T.Saliency(resnet)).attribute(image, { target: 3, nSamples: 4 })],
    ["resnet18 DeepLift", () => new T.DeepLift(resnet).attribute(image, { target: 3 })],
    ["resnet18 GuidedBackprop", () => new T.GuidedBackprop(resnet).attribute(image, { target: 3 })],
    ["resnet18 LRP", () => new T.LRP(resnet).attribute(image, { target: 3 })],
    ["resnet18 LayerGradCam", () => new T.LayerGradCam(resnet, "layer4").attribute(image, { target: 3 })],
    ["resnet18 LayerActivation", () => new T.LayerActivation(resnet, "layer3").attribute(image)],
    ["resnet18 Occlusion", () => new T.Occlusion(resnet).attribute(image, { target: 3, slidingWindowShapes: [3, 16, 16], strides: [3, 16, 16] })],
    ["transformer LayerIntegratedGradients", () => new T.LayerIntegratedGradients(text, "embedding").attribute(ids, { target: 1, nSteps: 8 })],
    ["transformer FeatureAblation", () => new T.FeatureAblation(text).attribute(ids, { target: 1, baselines: 0 })],
    ["transformer LayerActivation", () => new T.LayerActivation(text, "embedding").attribute(ids)],
    ["transformer LayerGradientXActivation", () => new T.LayerGradientXActivation(text, "embedding").attribute(ids, { target: 1 })],
    // The attention, layer norm and softmax rules (graphs taken apart and rewritten).
    ["transformer LayerDeepLift", () => new T.LayerDeepLift(text, "embedding").attribute(ids, { target: 1 })],
    ["transformer LayerLRP", () => new T.LayerLRP(text, "embedding").attribute(ids, { target: 1 })],
  ];
  const only = process.env.LEAK_ONLY ? new RegExp(process.env.LEAK_ONLY) : null;
  const chosen = families.filter(([k]) => (!only || only.test(k)) && (modern || !k.startsWith("transformer")));
  const rss = { start: await collect(), series: [] };
  const t0 = Date.now();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [kind, fn] of chosen) await run(kind, fn);
    if (round + 1 === WARM) rss.warm = await collect();
    if ((round + 1) % Math.max(1, Math.floor(ROUNDS / 10)) === 0) rss.series.push(Math.round(await collect()));
  }
  rss.end = await collect();
  console.log(JSON.stringify({ rss, calls: tally, rounds: ROUNDS, ms: Date.now() - t0 }));
})().catch((e) => {
  console.error(e && e.stack);
  process.exitCode = 1;
});
