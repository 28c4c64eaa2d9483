// Speed settings never change results: automatic chunk sizes (and the plan
// remembered from an earlier call), explicit chunk sizes, intra-op threads,
// request workers, and perturbations batched per pass.
import * as path from "path";
import {
  configure, FeatureAblation, IntegratedGradients, KernelShap, loadModel, manualSeed, Model, NoiseTunnel, Occlusion, Saliency,
  ShapleyValueSampling, tensor, Tensor,
} from "../lib";
import { expectClose, MODELS } from "./helpers";

let conv: Model, mlp: Model, lin: Model;
const img = (n: number) => tensor(Float32Array.from({ length: n * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)), [n, 3, 32, 32]);
beforeAll(async () => {
  conv = await loadModel(path.join(MODELS, "bench_convnet.pt"));
  mlp = await loadModel(path.join(MODELS, "bench_mlp.pt"));
  lin = await loadModel(path.join(MODELS, "linear_sum.pt"));
});
afterAll(() => configure({ workers: 2, threads: require("os").cpus().length }));

// float32 sums taken in another order differ in the last bits.
const close = (a: Tensor, b: Tensor) => expectClose(a, b, { rtol: 1e-4 });

test("IntegratedGradients: automatic chunks (first call and remembered plan) = explicit chunks = one pass", async () => {
  const x = img(4), ig = new IntegratedGradients(conv);
  const first = await ig.attribute(x, { target: 2, nSteps: 64 });
  const again = await ig.attribute(x, { target: 2, nSteps: 64 });
  const one = await ig.attribute(x, { target: 2, nSteps: 64, internalBatchSize: 256 });
  const seven = await ig.attribute(x, { target: 2, nSteps: 64, internalBatchSize: 7 });
  close(first, one);
  close(again, one);
  close(seven, one);
});

test("results do not depend on intra-op threads or on the number of workers", async () => {
  const x = img(2), ig = new IntegratedGradients(conv);
  configure({ threads: 1, workers: 1 });
  const single = await ig.attribute(x, { target: 1, nSteps: 20 });
  configure({ threads: 2, workers: 3 });
  const [a, b] = await Promise.all([ig.attribute(x, { target: 1, nSteps: 20 }), new Saliency(conv).attribute(x, { target: 1 })]);
  close(a, single);
  configure({ threads: 1, workers: 1 });
  close(await new Saliency(conv).attribute(x, { target: 1 }), b);
});

test("perturbation methods: batched perturbations (default), one per pass, and explicit counts agree", async () => {
  const x = img(3);
  const mask = tensor(Int32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.floor((i % 1024) / 128)), [1, 3, 32, 32], "int64");
  const fa = new FeatureAblation(conv);
  const auto = await fa.attribute(x, { target: 0, featureMask: mask });
  close(await fa.attribute(x, { target: 0, featureMask: mask, perturbationsPerEval: 1 }), auto);
  close(await fa.attribute(x, { target: 0, featureMask: mask, perturbationsPerEval: 3 }), auto);
  const occ = new Occlusion(conv);
  const o = { target: 0, slidingWindowShapes: [3, 8, 8], strides: [3, 8, 8] };
  close(await occ.attribute(x, o), await occ.attribute(x, { ...o, perturbationsPerEval: 1 }));
  const m = tensor(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), [1, 64]);
  const groups = tensor(Int32Array.from({ length: 64 }, (_, i) => i % 8), [1, 64], "int64");
  const run = (k: number, perEval?: number) => {
    const o = { target: 1, featureMask: groups, ...(perEval ? { perturbationsPerEval: perEval } : {}) };
    return k === 0 ? new ShapleyValueSampling(mlp).attribute(m, o) : new KernelShap(mlp).attribute(m, o);
  };
  for (const k of [0, 1]) {
    manualSeed(7);
    const batched = await run(k);
    manualSeed(7);
    close(await run(k, 1), batched);
  }
});

test("a model returning one value per batch keeps one perturbation per pass", async () => {
  const x = tensor([[1, 2, 3, 4, 5, 6], [0.5, -1, 2, 0, 1, -2]]);
  const a = await new FeatureAblation(lin).attribute(x);
  close(a, await new FeatureAblation(lin).attribute(x, { perturbationsPerEval: 1 }));
});

test("NoiseTunnel: noise drawn in sample batches equals one batch (no noise: stdevs 0)", async () => {
  const x = img(2), nt = new NoiseTunnel(new IntegratedGradients(conv));
  const all = await nt.attribute(x, { target: 0, nSamples: 4, stdevs: 0, nSteps: 8 });
  close(await nt.attribute(x, { target: 0, nSamples: 4, stdevs: 0, nSteps: 8, ntSamplesBatchSize: 1 }), all);
});
