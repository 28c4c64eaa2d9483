// Rule-based backprop (DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution,
// LRP): conservation, agreement between model forms, rule selection, errors.
import * as path from "path";
import {
  BatchOptions, Deconvolution, DeepLift, DeepLiftShap, GuidedBackprop, IntegratedGradients, loadModel, LRP, Model, Saliency, Tensor,
  tensor,
} from "../lib";
import { GOLDEN, MODELS, maxAbsDiff, values } from "./helpers";

const FIXTURES = path.join(__dirname, "fixtures", "models");
let cumsum: Model, quotient: Model;
let resnet: Model, traced: Model, shared: Model, twice: Model, digits: Model, expModel: Model, product: Model, cnn: Model;
let x: Tensor, v: Tensor;

const image = (n: number, phase: number) =>
  tensor(Float32Array.from({ length: n * 64 }, (_, i) => Math.sin(i * 1.3 + phase) * 0.9), [n, 1, 8, 8]);
const rowSums = (t: Tensor) => {
  const d = values(t), n = t.shape[0], per = d.length / n;
  return Array.from({ length: n }, (_, i) => d.slice(i * per, (i + 1) * per).reduce((a, b) => a + b, 0));
};
const scale = (t: Tensor) => Math.max(1, ...values(t).map(Math.abs));

beforeAll(async () => {
  [resnet, traced, shared, twice, expModel, product, cumsum, quotient] = await Promise.all(
    ["resnet_scripted.pt", "resnet_traced.pt", "relu_shared.pt", "relu_twice.pt", "exp_model.pt", "product_model.pt", "cumsum_model.pt", "quotient_model.pt"].map((f) =>
      loadModel(path.join(FIXTURES, f)),
    ),
  );
  digits = await loadModel(path.join(MODELS, "digits_cnn.pt"));
  cnn = await loadModel(path.join(GOLDEN, "cnn.pt"));
  x = image(3, 0);
  v = tensor(Float32Array.from({ length: 4 * 6 }, (_, i) => Math.cos(i * 0.7) * 1.5), [4, 6]);
});

describe("DeepLift", () => {
  test("summation to delta: attributions sum to F(x) - F(baseline) through relu, max pooling, batch norm and residual additions", async () => {
    const baselines = image(3, 2);
    for (const model of [resnet, digits]) {
      const dl = new DeepLift(model, { captumCompatible: false });
      const { attributions, delta } = await dl.attribute(x, { baselines, target: [0, 1, 2], returnConvergenceDelta: true });
      const fx = values(await model.forward(x)), fb = values(await model.forward(baselines));
      const width = fx.length / 3;
      rowSums(attributions).forEach((s, i) => {
        const gap = fx[i * width + i] - fb[i * width + i];
        expect(Math.abs(s - gap)).toBeLessThan(1e-4 * Math.max(1, Math.abs(gap)));
      });
      values(delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(1e-4));
    }
  });

  test("Captum-compatible results differ from the exact chain only where a nonlinearity feeds another", async () => {
    const baselines = image(3, 2), options = { baselines, target: [0, 1, 2], returnConvergenceDelta: true as const };
    // resnet: every ReLU feeds a convolution or an addition; digits: relu1 feeds the max pooling.
    const [a, b] = [await new DeepLift(resnet).attribute(x, options), await new DeepLift(resnet, { captumCompatible: false }).attribute(x, options)];
    expect(maxAbsDiff(a.attributions, b.attributions)).toBeLessThan(1e-7);
    const compat = await new DeepLift(digits).attribute(x, options);
    expect(Math.max(...values(compat.delta).map(Math.abs))).toBeGreaterThan(0.1);
  });

  test("equals IntegratedGradients on a model without nonlinearities", async () => {
    const linear = await loadModel(path.join(MODELS, "linear.pt"));
    const dl = await new DeepLift(linear).attribute(v, { target: 1, baselines: 0.3 });
    const ig = await new IntegratedGradients(linear).attribute(v, { target: 1, baselines: 0.3 });
    expect(maxAbsDiff(dl, ig)).toBeLessThan(1e-5);
  });

  test("multiplyByInputs: false gives the multipliers, which times (x - baseline) are the attributions", async () => {
    const baselines = image(3, 2);
    const multipliers = await new DeepLift(resnet, { multiplyByInputs: false }).attribute(x, { baselines, target: 2 });
    const attributions = await new DeepLift(resnet).attribute(x, { baselines, target: 2 });
    const m = values(multipliers), xb = values(x), bb = values(baselines);
    const expected = tensor(Float32Array.from(m, (mi, i) => mi * (xb[i] - bb[i])), x.shape);
    expect(maxAbsDiff(attributions, expected)).toBeLessThan(1e-5);
  });

  test("a model calling one ReLU module twice gives what the same model with two ReLU modules gives", async () => {
    const algorithms: ((m: Model) => { attribute(x: Tensor, o: { target: number }): Promise<Tensor> })[] = [
      (m) => new DeepLift(m), (m) => new GuidedBackprop(m), (m) => new Deconvolution(m), (m) => new LRP(m),
    ];
    for (const make of algorithms) {
      const a = await make(shared).attribute(v, { target: 2 });
      const b = await make(twice).attribute(v, { target: 2 });
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    }
  });
});

describe("chunking and workers", () => {
  test("internalBatchSize and worker replicas leave DeepLift and LRP unchanged (pairs are never split)", async () => {
    const baselines = image(3, 2);
    const whole = await new DeepLift(resnet).attribute(x, { baselines, target: [0, 1, 2] });
    const chunkings: BatchOptions[] = [{ internalBatchSize: 2 }, { internalBatchSize: 3 }, { devices: ["cpu", "cpu"] }];
    for (const opts of chunkings)
      expect(maxAbsDiff(await new DeepLift(resnet).attribute(x, { baselines, target: [0, 1, 2], ...opts }), whole)).toBeLessThan(1e-6);
    const lrp = await new LRP(resnet).attribute(x, { target: 1 });
    expect(maxAbsDiff(await new LRP(resnet).attribute(x, { target: 1, internalBatchSize: 1 }), lrp)).toBeLessThan(1e-6);
  });
});

describe("DeepLiftShap", () => {
  test("is the mean of DeepLift over the reference samples, with one delta per (example, reference) pair", async () => {
    const refs = image(4, 5);
    const { attributions, delta } = await new DeepLiftShap(resnet).attribute(x, { baselines: refs, target: 1, returnConvergenceDelta: true });
    expect(delta.shape).toEqual([12]);
    values(delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(1e-4));
    const r = values(refs);
    const sum = new Float64Array(3 * 64);
    for (let k = 0; k < 4; k++) {
      const one = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => r[k * 64 + (i % 64)]), [3, 1, 8, 8]);
      values(await new DeepLift(resnet).attribute(x, { baselines: one, target: 1 })).forEach((a, i) => (sum[i] += a / 4));
    }
    expect(maxAbsDiff(attributions, tensor(Float32Array.from(sum), [3, 1, 8, 8]))).toBeLessThan(1e-5);
  });
});

describe("one model, scripted or traced", () => {
  test("gives the same attributions with every rule-based method", async () => {
    const runs: [string, (m: Model) => Promise<Tensor>][] = [
      ["DeepLift", (m) => new DeepLift(m).attribute(x, { baselines: image(3, 2), target: 1 })],
      ["GuidedBackprop", (m) => new GuidedBackprop(m).attribute(x, { target: 1 })],
      ["Deconvolution", (m) => new Deconvolution(m).attribute(x, { target: 1 })],
      ["LRP", (m) => new LRP(m).attribute(x, { target: 1 })],
      ["LRP epsilonPlus, folded", (m) => new LRP(m, { preset: "epsilonPlus", foldBatchNorm: true }).attribute(x, { target: 1 })],
      ["LRP epsilonGammaBox", (m) => new LRP(m, { preset: "epsilonGammaBox", low: -1, high: 1 }).attribute(x, { target: 1 })],
    ];
    for (const [name, run] of runs) {
      const a = await run(resnet), b = await run(traced);
      expect({ name, close: maxAbsDiff(a, b) < 1e-5 * scale(a) }).toEqual({ name, close: true });
    }
  });
});

describe("GuidedBackprop and Deconvolution", () => {
  test("differ from the plain gradient only through the ReLUs", async () => {
    const linear = await loadModel(path.join(MODELS, "linear.pt"));
    const grad = await new Saliency(linear).attribute(v, { target: 0, abs: false });
    expect(maxAbsDiff(await new GuidedBackprop(linear).attribute(v, { target: 0 }), grad)).toBeLessThan(1e-7);
    expect(maxAbsDiff(await new Deconvolution(linear).attribute(v, { target: 0 }), grad)).toBeLessThan(1e-7);
    const guided = values(await new GuidedBackprop(digits).attribute(x, { target: 3 }));
    const plain = values(await new Saliency(digits).attribute(x, { target: 3, abs: false }));
    expect(guided.some((g, i) => Math.abs(g - plain[i]) > 1e-6)).toBe(true);
  });
});

describe("LRP", () => {
  test("conserves relevance where the rules do: z-box on the input layer, alpha1beta0 without biases, batch norm folded", async () => {
    const rule = { rule: "alpha1beta0", setBiasToZero: true } as const;
    // The input has both signs: z-box is the conserving rule there.
    const rules = { conv: { rule: "zbox", low: -1, high: 1 } as const, block1: rule, block2: rule, Linear: rule };
    const folded = await new LRP(resnet, { rules, foldBatchNorm: true }).attribute(x, { target: 0, returnConvergenceDelta: true });
    values(folded.delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(1e-4));
    // Unfolded, the batch norm's shift absorbs relevance: the fold is what conserves.
    const unfolded = await new LRP(resnet, { rules }).attribute(x, { target: 0, returnConvergenceDelta: true });
    expect(Math.max(...values(unfolded.delta).map(Math.abs))).toBeGreaterThan(1e-3);
  });

  test("each rule matches its formula (references from scripts/make_references.py)", async () => {
    const ref = JSON.parse(require("fs").readFileSync(path.join(__dirname, "fixtures", "references", "lrp_rules_mlp.json"), "utf8"));
    const model = await loadModel(path.join(GOLDEN, "mlp.pt"));
    const input = tensor(ref.input.data, ref.input.shape);
    for (const c of ref.cases) {
      const r = values(await new LRP(model, { rules: c.rules }).attribute(input, { target: c.target }));
      const scale = Math.max(1, ...c.expected.map(Math.abs));
      const worst = Math.max(...r.map((v, i) => Math.abs(v - c.expected[i])));
      expect({ name: c.name, close: worst <= 1e-4 * scale }).toEqual({ name: c.name, close: true });
    }
  });

  test("the delta is output - sum of relevances", async () => {
    const { attributions, delta } = await new LRP(resnet).attribute(x, { target: 2, returnConvergenceDelta: true });
    const out = values(await resnet.forward(x));
    rowSums(attributions).forEach((s, i) => expect(Math.abs(out[i * 3 + 2] - s - values(delta)[i])).toBeLessThan(1e-4));
  });

  test("folding batch norm leaves the model's output unchanged", async () => {
    const { attributions, delta } = await new LRP(resnet, { foldBatchNorm: true }).attribute(x, { target: 0, returnConvergenceDelta: true });
    const out = values(await resnet.forward(x));
    rowSums(attributions).forEach((s, i) => expect(Math.abs(out[i * 3] - s - values(delta)[i])).toBeLessThan(1e-4));
  });

  test("rules by layer name, layer type and op: a name covers the layers inside it and beats a type", async () => {
    const base = await new LRP(resnet).attribute(x, { target: 1 });
    const byBlock = await new LRP(resnet, { rules: { block1: "gamma" } }).attribute(x, { target: 1 });
    const byConvName = await new LRP(resnet, { rules: { "block1.conv": { rule: "gamma" } } }).attribute(x, { target: 1 });
    expect(maxAbsDiff(byBlock, base)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(byBlock, byConvName)).toBeLessThan(1e-7);
    const byType = await new LRP(resnet, { rules: { Conv2d: "gamma" } }).attribute(x, { target: 1 });
    const byOp = await new LRP(resnet, { rules: { conv2d: "gamma" } }).attribute(x, { target: 1 });
    expect(maxAbsDiff(byType, byOp)).toBeLessThan(1e-7);
    const typeButNotBlock = await new LRP(resnet, { rules: { Conv2d: "gamma", block1: "epsilon" } }).attribute(x, { target: 1 });
    expect(maxAbsDiff(typeButNotBlock, byType)).toBeGreaterThan(1e-4);
    const zplus = await new LRP(resnet, { preset: "epsilonPlus" }).attribute(x, { target: 1 });
    const zplusByType = await new LRP(resnet, { rules: { Conv2d: "zplus" } }).attribute(x, { target: 1 });
    expect(maxAbsDiff(zplus, zplusByType)).toBeLessThan(1e-7);
  });

  test("z-box bounds may be tensors", async () => {
    const asNumbers = await new LRP(resnet, { preset: "epsilonGammaBox", low: -1, high: 1 }).attribute(x, { target: 1 });
    const asTensors = await new LRP(resnet, {
      preset: "epsilonGammaBox",
      low: tensor(new Float32Array(64).fill(-1), [1, 8, 8]),
      high: tensor(new Float32Array(64).fill(1), [1, 8, 8]),
    }).attribute(x, { target: 1 });
    expect(maxAbsDiff(asNumbers, asTensors)).toBeLessThan(1e-6);
    values(asNumbers).forEach((a) => expect(Number.isFinite(a)).toBe(true));
  });
});

describe("bad input", () => {
  test("an op without a rule is an error naming the op and where it is", async () => {
    await expect(new DeepLift(cumsum).attribute(v, { target: 0 })).rejects.toThrow(/DeepLift has no rule for aten::cumsum in forward\(\) itself, model code: torch\.cumsum/);
    await expect(new LRP(cumsum).attribute(v, { target: 0 })).rejects.toThrow(/LRP has no rule for aten::cumsum/);
    await expect(new DeepLift(quotient).attribute(v, { target: 0 })).rejects.toThrow(/DeepLift has no rule for aten::div .*a quotient of two input-dependent tensors/);
    await expect(new LRP(quotient).attribute(v, { target: 0 })).rejects.toThrow(/LRP has no rule for aten::div/);
    // Guided backprop changes ReLUs only: any other op keeps its gradient.
    await expect(new GuidedBackprop(cumsum).attribute(v, { target: 0 })).resolves.toBeInstanceOf(Tensor);
  });

  test("elementwise functions (exp) and products of two input-dependent tensors keep summation to delta", async () => {
    const baselines = tensor(Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 0.5), [4, 6]);
    for (const model of [expModel, product]) {
      const { attributions, delta } = await new DeepLift(model).attribute(v, { baselines, target: 1, returnConvergenceDelta: true });
      const fx = values(await model.forward(v)), fb = values(await model.forward(baselines));
      const sums = rowSums(attributions);
      for (let i = 0; i < 4; i++) {
        const gap = fx[i * 3 + 1] - fb[i * 3 + 1];
        expect(Math.abs(sums[i] - gap)).toBeLessThan(1e-5 * Math.max(1, Math.abs(gap)));
        expect(Math.abs(values(delta)[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(gap)));
      }
    }
    // LRP's uniform rule: each factor of x * x takes half of the product's
    // relevance, so x gets all of it: what is missing is fc's bias alone, the
    // same for every row.
    const lrp = await new LRP(product).attribute(v, { target: 1, returnConvergenceDelta: true });
    const d = values(lrp.delta);
    for (const di of d) expect(Math.abs(di - d[0])).toBeLessThan(1e-5);
  });

  test("LRP options are checked", async () => {
    await expect(new LRP(resnet, { rules: { conv9: "gamma" } }).attribute(x, { target: 0 })).rejects.toThrow(
      /rules: 'conv9' names no layer, layer type or op .*layers: conv, bn, relu, block1, block1.conv/,
    );
    await expect(new LRP(resnet, { rules: { conv: "gama" as never } }).attribute(x, { target: 0 })).rejects.toThrow(
      /rules\['conv'\]: unknown rule 'gama' \(known: epsilon, gamma, alpha1beta0, zplus, zbox, identity\)/,
    );
    await expect(new LRP(resnet, { preset: "epsilonGammaBox" }).attribute(x, { target: 0 })).rejects.toThrow(/zbox rule needs 'low'/);
    await expect(new LRP(resnet, { rules: { fc: "zbox" } }).attribute(x, { target: 0 })).rejects.toThrow(/zbox rule needs 'low'/);
    await expect(new LRP(resnet, { rules: { relu: "zbox" as never }, preset: "nope" as never }).attribute(x, { target: 0 })).rejects.toThrow(/preset/);
    await expect(new LRP(cnn).attribute(x)).rejects.toThrow(/target/);
    await expect(new LRP(cnn, { rules: { fc: "identity" } }).attribute(x, { target: 0 })).rejects.toThrow(
      /LRP's identity rule needs a layer whose output has its input's shape; aten::linear in 'fc' \(Linear\), model code: torch.linear maps \[3, 32\] to \[3, 10\]/,
    );
  });

  test("DeepLiftShap needs a distribution of references", async () => {
    await expect(new DeepLiftShap(resnet).attribute(x, {} as never)).rejects.toThrow(/baselines: DeepLiftShap needs a baseline distribution/);
  });
});
