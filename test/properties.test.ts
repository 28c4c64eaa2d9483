// Properties that hold whatever the model: completeness, limits of sampling
// estimators, and invariance of results to chunking and worker devices.
import * as path from "path";
import {
  GradientShap, InputXGradient, IntegratedGradients, loadModel, manualSeed, Model, NoiseTunnel, Saliency, Tensor, tensor,
} from "../lib";
import { expectClose, GOLDEN, MODELS, maxAbsDiff, values } from "./helpers";

let cnn: Model, mlp: Model, multi: Model, digits: Model;
let x: Tensor;
beforeAll(async () => {
  [cnn, mlp, multi, digits] = await Promise.all(
    ["cnn.pt", "mlp.pt", "multi.pt"].map((f) => loadModel(path.join(GOLDEN, f))).concat([loadModel(path.join(MODELS, "digits_cnn.pt"))]),
  );
  manualSeed(7);
  x = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 1.7) * 0.8), [3, 1, 8, 8]);
});

const maxAbs = (t: Tensor) => Math.max(...values(t).map(Math.abs));
const rowSums = (t: Tensor) => {
  const v = values(t), n = t.shape[0], per = v.length / n;
  return Array.from({ length: n }, (_, i) => v.slice(i * per, (i + 1) * per).reduce((a, b) => a + b, 0));
};

describe("IntegratedGradients", () => {
  test("completeness: attributions sum to F(x) - F(baseline), and the delta says by how much they miss", async () => {
    const ig = new IntegratedGradients(digits);
    const target = [0, 3, 7];
    const { attributions, delta } = await ig.attribute(x, { target, nSteps: 512, returnConvergenceDelta: true });
    const fx = values(await digits.forward(x)), f0 = values(await digits.forward(tensor(new Float32Array(3 * 64), [3, 1, 8, 8])));
    const sums = rowSums(attributions);
    const d = values(delta);
    target.forEach((t, i) => {
      const gap = fx[i * 10 + t] - f0[i * 10 + t];
      expect(Math.abs(sums[i] - gap - d[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(gap)));
      expect(Math.abs(d[i])).toBeLessThan(0.01 * Math.max(1, Math.abs(gap)));
    });
  });

  test("quadrature error shrinks as nSteps grows", async () => {
    const ig = new IntegratedGradients(digits);
    const err = async (nSteps: number) =>
      maxAbs((await ig.attribute(x, { target: 1, nSteps, method: "riemann_trapezoid", returnConvergenceDelta: true })).delta);
    expect(await err(256)).toBeLessThan((await err(8)) / 4);
  });

  test("internalBatchSize changes nothing", async () => {
    const ig = new IntegratedGradients(cnn);
    const full = await ig.attribute(x, { target: [1, 0, 2], nSteps: 20 });
    for (const internalBatchSize of [1, 7, 59, 1000])
      expect(maxAbsDiff(await ig.attribute(x, { target: [1, 0, 2], nSteps: 20, internalBatchSize }), full)).toBeLessThan(1e-5);
  });

  test("two CPU replicas give the single-device result", async () => {
    const ig = new IntegratedGradients(cnn);
    const one = await ig.attribute(x, { target: 2, nSteps: 30 });
    const two = await ig.attribute(x, { target: 2, nSteps: 30, devices: ["cpu", "cpu"] });
    const twoChunked = await ig.attribute(x, { target: 2, nSteps: 30, devices: ["cpu", "cpu"], internalBatchSize: 13 });
    expect(maxAbsDiff(two, one)).toBeLessThan(1e-5);
    expect(maxAbsDiff(twoChunked, one)).toBeLessThan(1e-5);
  });

  test("target forms agree: number, per-example list, length-1 list, tensor", async () => {
    const ig = new IntegratedGradients(cnn);
    const a = await ig.attribute(x, { target: 1, nSteps: 10 });
    for (const target of [[1, 1, 1], [1], tensor([1, 1, 1], [3], "int64"), [[1], [1], [1]]])
      expectClose(await ig.attribute(x, { target, nSteps: 10 }), a);
  });

  test("multiplyByInputs: false gives the path-averaged gradient", async () => {
    const local = await new IntegratedGradients(cnn, { multiplyByInputs: false }).attribute(x, { target: 0, nSteps: 16 });
    const global = await new IntegratedGradients(cnn).attribute(x, { target: 0, nSteps: 16 });
    const l = values(local), g = values(global), xv = values(x);
    expect(Math.max(...l.map((v, i) => Math.abs(v * xv[i] - g[i])))).toBeLessThan(1e-5);
  });
});

describe("GradientShap", () => {
  test("with one baseline, no noise and many samples it approaches IntegratedGradients", async () => {
    manualSeed(1);
    const baseline = tensor(new Float32Array(64).fill(0.1), [1, 1, 8, 8]);
    const ig = await new IntegratedGradients(digits).attribute(x, { target: 4, baselines: baseline, nSteps: 64 });
    const err = async (nSamples: number) =>
      maxAbsDiff(await new GradientShap(digits).attribute(x, { target: 4, baselines: baseline, nSamples, internalBatchSize: 4096 }), ig);
    const coarse = await err(20), fine = await err(4000);
    expect(fine).toBeLessThan(0.05 * maxAbs(ig));
    expect(fine).toBeLessThan(coarse);
  });

  test("convergence delta per drawn sample, and attributions that don't depend on chunking or replicas", async () => {
    const gs = new GradientShap(cnn);
    const baselines = tensor(Float32Array.from({ length: 5 * 64 }, (_, i) => Math.cos(i) * 0.1), [5, 1, 8, 8]);
    const opts = { target: [0, 1, 2], baselines, nSamples: 6, stdevs: 0.05 };
    manualSeed(3);
    const { attributions, delta } = await gs.attribute(x, { ...opts, returnConvergenceDelta: true });
    expect(delta.shape).toEqual([18]);
    expect(attributions.shape).toEqual([3, 1, 8, 8]);
    manualSeed(3);
    const plain = await gs.attribute(x, opts);
    manualSeed(3);
    const chunked = await gs.attribute(x, { ...opts, internalBatchSize: 5, devices: ["cpu", "cpu"] });
    expect(maxAbsDiff(plain, attributions)).toBeLessThan(1e-5);
    expect(maxAbsDiff(chunked, plain)).toBeLessThan(1e-5);
  });
});

describe("NoiseTunnel", () => {
  test("stdevs 0 equals the wrapped method, for every smoothing type", async () => {
    const base = new IntegratedGradients(cnn);
    const ref = await base.attribute(x, { target: [2, 1, 0], nSteps: 12 });
    const nt = new NoiseTunnel(base);
    const mean = await nt.attribute(x, { target: [2, 1, 0], nSteps: 12, stdevs: 0, nSamples: 4 });
    const sq = await nt.attribute(x, { target: [2, 1, 0], nSteps: 12, stdevs: 0, nSamples: 4, ntType: "smoothgrad_sq" });
    const varg = await nt.attribute(x, { target: [2, 1, 0], nSteps: 12, stdevs: 0, nSamples: 4, ntType: "vargrad", ntSamplesBatchSize: 3 });
    expect(maxAbsDiff(mean, ref)).toBeLessThan(1e-5);
    const r = values(ref);
    expect(Math.max(...values(sq).map((v, i) => Math.abs(v - r[i] * r[i])))).toBeLessThan(1e-5 * Math.max(1, maxAbs(ref) ** 2));
    expect(maxAbs(varg)).toBeLessThan(1e-5 * Math.max(1, maxAbs(ref) ** 2));
    const sal = await new Saliency(cnn).attribute(x, { target: 1 });
    expect(maxAbsDiff(await new NoiseTunnel(new Saliency(cnn)).attribute(x, { target: 1, stdevs: 0 }), sal)).toBeLessThan(1e-6);
  });

  test("SmoothGrad averages Saliency over noisy copies; chunking and partitions change nothing", async () => {
    const nt = new NoiseTunnel(new Saliency(cnn));
    manualSeed(11);
    const a = await nt.attribute(x, { target: 0, stdevs: 0.2, nSamples: 8 });
    manualSeed(11);
    const b = await nt.attribute(x, { target: 0, stdevs: 0.2, nSamples: 8, internalBatchSize: 3 });
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a, await new Saliency(cnn).attribute(x, { target: 0 }))).toBeGreaterThan(1e-4);
  });

  test("with several inputs, extra forward args, and a delta per noisy sample", async () => {
    const a = tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]), b = tensor([[1, 2, 3], [4, 5, 6]]);
    const nt = new NoiseTunnel(new IntegratedGradients(multi));
    const { attributions, delta } = await nt.attribute([a, b], {
      target: 1, additionalForwardArgs: [0.5], stdevs: [0.1, 0.2], nSamples: 3, returnConvergenceDelta: true, baselines: [0, tensor([[0, 0, 0], [1, 1, 1]])],
    });
    expect(attributions.map((t) => t.shape)).toEqual([[2, 4], [2, 3]]);
    expect(delta.shape).toEqual([6]);
  });

  test("drawBaselineFromDistrib draws each copy's baseline from the distribution", async () => {
    const nt = new NoiseTunnel(new IntegratedGradients(mlp));
    const inputs = tensor(Float32Array.from({ length: 16 }, (_, i) => i / 16), [2, 8]);
    const baselines = tensor(Float32Array.from({ length: 40 }, (_, i) => (i % 7) / 7), [5, 8]);
    const r = await nt.attribute(inputs, { target: 0, baselines, drawBaselineFromDistrib: true, stdevs: 0, nSamples: 5, nSteps: 8 });
    expect(r.shape).toEqual([2, 8]);
  });
});

describe("InputXGradient", () => {
  test("equals input times signed saliency", async () => {
    const ixg = await new InputXGradient(cnn).attribute(x, { target: 1 });
    const g = values(await new Saliency(cnn).attribute(x, { target: 1, abs: false })), xv = values(x);
    expect(Math.max(...values(ixg).map((v, i) => Math.abs(v - g[i] * xv[i])))).toBeLessThan(1e-6);
  });
});
