// Speed settings never change results: automatic chunk sizes (and the plan
// remembered from an earlier call), explicit chunk sizes, intra-op threads,
// request workers, perturbations batched per pass, and the memory layout.
import * as path from "path";
import {
  configure, DeepLift, FeatureAblation, GuidedBackprop, IntegratedGradients, KernelShap, LayerGradCam, loadModel, LRP, manualSeed,
  MemoryFormat, Model, NoiseTunnel, Occlusion, Saliency, ShapleyValueSampling, tensor, Tensor,
} from "../lib";
import { expectClose, MODELS, values } from "./helpers";

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

describe("memory layout", () => {
  const FIXTURES = path.join(__dirname, "fixtures", "models");
  const load = (file: string, memoryFormat?: MemoryFormat) => loadModel(file, memoryFormat ? { memoryFormat } : {});

  test("channels-last and contiguous give the same attributions (gradients, rules, layers, perturbations)", async () => {
    for (const file of [path.join(MODELS, "bench_convnet.pt"), path.join(FIXTURES, "resnet_scripted.pt")]) {
      const last = await load(file, "channelsLast"), plain = await load(file, "contiguous");
      expect([last.memoryFormat, plain.memoryFormat]).toEqual(["channelsLast", "contiguous"]);
      const x = file.includes("resnet")
        ? tensor(Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i * 0.71)), [4, 1, 8, 8])
        : img(3);
      const layer = file.includes("resnet") ? "block1" : "conv2";
      const runs: Array<(m: Model) => Promise<Tensor>> = [
        (m) => new IntegratedGradients(m).attribute(x, { target: 1, nSteps: 16 }),
        (m) => new DeepLift(m).attribute(x, { target: 1 }),
        (m) => new LRP(m).attribute(x, { target: 1 }),
        (m) => new GuidedBackprop(m).attribute(x, { target: 1 }),
        (m) => new LayerGradCam(m, layer).attribute(x, { target: 1 }),
        (m) => new Occlusion(m).attribute(x, { target: 1, slidingWindowShapes: [1, 4, 4], strides: [1, 4, 4] }),
        async (m) => {
          manualSeed(3);
          return new NoiseTunnel(new Saliency(m)).attribute(x, { target: 1, nSamples: 4, stdevs: 0.1 });
        },
      ];
      for (const run of runs) close(await run(last), await run(plain));
    }
  });

  test("auto chooses on the first call with images and keeps results equal to contiguous", async () => {
    const file = path.join(MODELS, "bench_convnet.pt");
    const auto = await load(file), plain = await load(file, "contiguous");
    expect(auto.memoryFormat).toBe("auto");
    const x = img(2);
    const a = await new IntegratedGradients(auto).attribute(x, { target: 0, nSteps: 8 });
    expect(["channelsLast", "contiguous"]).toContain(auto.memoryFormat);
    close(a, await new IntegratedGradients(plain).attribute(x, { target: 0, nSteps: 8 }));
    // Models without 4-d weights have nothing to choose.
    expect(mlp.memoryFormat).toBe("contiguous");
  });

  test("a model that flattens with view runs contiguous under auto, and explains why under channelsLast", async () => {
    const file = path.join(FIXTURES, "view_model.pt");
    const x = tensor(Float32Array.from({ length: 2 * 3 * 64 }, (_, i) => Math.cos(i * 0.3)), [2, 3, 8, 8]);
    const auto = await load(file), plain = await load(file, "contiguous");
    const a = await new IntegratedGradients(auto).attribute(x, { target: 2, nSteps: 8 });
    expect(auto.memoryFormat).toBe("contiguous");
    close(a, await new IntegratedGradients(plain).attribute(x, { target: 2, nSteps: 8 }));
    const last = await load(file, "channelsLast");
    await expect(new Saliency(last).attribute(x, { target: 0 })).rejects.toMatchObject({
      code: "ERR_MODEL_FORWARD",
      message: expect.stringContaining("memoryFormat: 'contiguous'"),
    });
  });

  test("an unknown memoryFormat is rejected, naming the option", async () => {
    await expect(loadModel(path.join(MODELS, "bench_mlp.pt"), { memoryFormat: "nhwc" as MemoryFormat })).rejects.toThrow(
      /memoryFormat: expected 'auto', 'channelsLast' or 'contiguous', got 'nhwc'/,
    );
  });
});

test("forward-only passes (run by a frozen copy optimised for inference) agree with forward()", async () => {
  // One feature covering everything, ablated to 0: each element's attribution is F(x) - F(0).
  for (const [model, x] of [[conv, img(3)], [mlp, tensor(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.cos(i)), [2, 64])]] as const) {
    const mask = tensor(new Int32Array(x.shape.slice(1).reduce((a, b) => a * b, 1)), [1, ...x.shape.slice(1)], "int64");
    const a = await new FeatureAblation(model).attribute(x, { target: 2, featureMask: mask });
    const fx = await model.forward(x), f0 = await model.forward(tensor(new Float32Array(x.data().length), x.shape));
    const got = values(a), out = values(fx), zero = values(f0), per = got.length / x.shape[0], k = fx.shape[1];
    const expected = got.map((_, i) => out[Math.floor(i / per) * k + 2] - zero[Math.floor(i / per) * k + 2]);
    expectClose(got, expected, { rtol: 1e-4 });
  }
});
