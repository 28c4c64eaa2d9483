// Properties of the perturbation family, and its error messages.
import * as path from "path";
import {
  FeatureAblation, FeaturePermutation, KernelShap, Lime, loadModel, manualSeed, Model, Occlusion, ShapleyValues, ShapleyValueSampling, Tensor, tensor,
} from "../lib";
import { expectClose, GOLDEN, MODELS, maxAbsDiff, STRUCTURAL_ZERO, values } from "./helpers";

let toy: Model, multi: Model, text: Model, digits: Model, mlp: Model;
beforeAll(async () => {
  [toy, multi, text, digits, mlp] = await Promise.all(
    ["toy.pt", "multi.pt", "text.pt", "mlp.pt"].map((f) => loadModel(path.join(GOLDEN, f))).concat([loadModel(path.join(MODELS, "digits_cnn.pt"))]),
  ).then(([a, b, c, d, e]) => [a, b, c, e, d]);
});

const image = () => tensor(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.abs(Math.sin(i * 0.7))), [2, 1, 8, 8]);
// 16 features: 2x2 blocks of the 8x8 image.
const blocks = () => tensor(Array.from({ length: 64 }, (_, i) => Math.floor(Math.floor(i / 8) / 2) * 4 + Math.floor((i % 8) / 2)), [1, 1, 8, 8], "int64");
const rowSums = (t: Tensor) => {
  const v = values(t), n = t.shape[0], per = v.length / n;
  return Array.from({ length: n }, (_, i) => v.slice(i * per, (i + 1) * per).reduce((a, b) => a + b, 0));
};

describe("Shapley values", () => {
  test("efficiency: exact values sum to F(x) - F(baseline) per example", async () => {
    const x = tensor([[0.3, -0.2, 0.9], [1.5, 0.4, -0.7]]);
    const phi = await new ShapleyValues(toy).attribute(x, { target: 1, baselines: 0.1 });
    const fx = values(await toy.forward(x)), fb = values(await toy.forward(tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1]])));
    rowSums(phi).forEach((s, i) => expect(Math.abs(s - (fx[i * 2 + 1] - fb[i * 2 + 1]))).toBeLessThan(1e-5));
  });

  test("sampling converges to the exact values (features grouped across the image)", async () => {
    const x = image();
    const exact = await new ShapleyValues(digits).attribute(x, { target: 3, featureMask: blocks(), perturbationsPerEval: "auto" });
    manualSeed(0);
    const sampling = new ShapleyValueSampling(digits);
    const few = await sampling.attribute(x, { target: 3, featureMask: blocks(), nSamples: 5, perturbationsPerEval: "auto" });
    const many = await sampling.attribute(x, { target: 3, featureMask: blocks(), nSamples: 1500, perturbationsPerEval: "auto" });
    const scale = Math.max(...values(exact).map(Math.abs));
    expect(maxAbsDiff(many, exact)).toBeLessThan(0.05 * scale);
    expect(maxAbsDiff(many, exact)).toBeLessThan(maxAbsDiff(few, exact));
    // Every sampled order telescopes from F(baseline) to F(x): efficiency holds exactly.
    rowSums(few).forEach((s, i) => expect(Math.abs(s - rowSums(exact)[i])).toBeLessThan(1e-4 * Math.max(1, scale)));
  });

  test("features spanning inputs", async () => {
    const a = tensor([[0.1, 0.2, 0.3, 0.4]]), b = tensor([[1, 2, 3]]);
    const featureMask = [tensor([[0, 1, 2, 0]], undefined, "int64"), tensor([[1, 2, 0]], undefined, "int64")];
    const [pa, pb] = await new ShapleyValues(multi).attribute([a, b], { target: 0, additionalForwardArgs: [0.5], featureMask });
    const va = values(pa), vb = values(pb);
    expect(va[0]).toBeCloseTo(va[3], 6); // one feature, one value, in both inputs
    expect(va[0]).toBeCloseTo(vb[2], 6);
    expect(va[1]).toBeCloseTo(vb[0], 6);
  });
});

describe("a feature the model ignores gets zero", () => {
  // digits_cnn ignores nothing, so use the toy model with an input the first layer zeroes out:
  // the MLP's 8 features all matter, but a feature equal to its baseline changes nothing.
  test("ablation, permutation and Shapley methods", async () => {
    const x = tensor([[0.5, 0.0, -0.3, 0.8, 0.1, 0.0, 0.4, -0.6], [0.2, 0.0, 0.7, -0.1, 0.9, 0.0, -0.4, 0.3]]);
    // Features 1 and 5 equal the baseline (0) in every example: ablating or shuffling them changes nothing.
    const zeroAt = (t: Tensor) => { const v = values(t); return [v[1], v[5], v[9], v[13]]; };
    for (const attr of [
      await new FeatureAblation(mlp).attribute(x, { target: 1 }),
      await new FeaturePermutation(mlp).attribute(x, { target: 1 }),
      await new ShapleyValueSampling(mlp).attribute(x, { target: 1, nSamples: 10 }),
      await new ShapleyValues(mlp).attribute(x, { target: 1 }),
    ]) {
      for (const v of zeroAt(attr)) expect(Math.abs(v)).toBeLessThan(1e-6);
      expect(Math.max(...values(attr).map(Math.abs))).toBeGreaterThan(1e-3);
    }
  });
});

describe("FeatureAblation", () => {
  test("perturbationsPerEval and 'auto' change nothing", async () => {
    const x = image();
    const fa = new FeatureAblation(digits);
    const one = await fa.attribute(x, { target: [1, 2], featureMask: blocks() });
    for (const perturbationsPerEval of [3, 16, "auto" as const])
      expect(maxAbsDiff(await fa.attribute(x, { target: [1, 2], featureMask: blocks(), perturbationsPerEval }), one)).toBeLessThan(1e-5);
  });

  test("integer token inputs with a token baseline", async () => {
    const tokens = tensor([[3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9, 7]], undefined, "int64");
    const attr = await new FeatureAblation(text).attribute(tokens, { target: 1, baselines: 0 });
    expect(attr.shape).toEqual([2, 7]);
    expect(attr.dtype).toBe("float32");
  });

  test("a per-example mask and per-example targets", async () => {
    const x = tensor([[0.5, 0.2, -0.3, 0.8, 0.1, 0.3, 0.4, -0.6], [0.2, 0.1, 0.7, -0.1, 0.9, 0.5, -0.4, 0.3]]);
    const featureMask = tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 0, 1, 2, 3]], undefined, "int64");
    const attr = values(await new FeatureAblation(mlp).attribute(x, { target: [0, 2], featureMask }));
    expectClose(attr[0], attr[1]);
    expectClose(attr[8], attr[12]);
  });
});

describe("Occlusion", () => {
  test("a window of one element is FeatureAblation", async () => {
    const x = image();
    const occ = await new Occlusion(digits).attribute(x, { target: 0, slidingWindowShapes: [1, 1, 1], perturbationsPerEval: 64 });
    const abl = await new FeatureAblation(digits).attribute(x, { target: 0, perturbationsPerEval: 64 });
    expect(maxAbsDiff(occ, abl)).toBeLessThan(1e-5);
  });
});

describe("bad input", () => {
  const x = tensor([[0.3, -0.2, 0.9], [1.5, 0.4, -0.7]]);
  test("a mask that does not broadcast", async () => {
    await expect(new FeatureAblation(toy).attribute(x, { target: 0, featureMask: tensor([[0, 1]], undefined, "int64") })).rejects.toThrow(
      "featureMask: shape [1, 2] does not broadcast to input 0 of shape [2, 3]",
    );
  });
  test("mask ids that are not contiguous from 0", async () => {
    await expect(new ShapleyValues(toy).attribute(x, { target: 0, featureMask: tensor([[0, 2, 2]], undefined, "int64") })).rejects.toThrow(
      "featureMask: feature ids must be contiguous from 0: id 1 is missing",
    );
    await expect(new FeatureAblation(toy).attribute(x, { target: 0, featureMask: tensor([[0.5, 1, 2]]) })).rejects.toThrow(
      "featureMask: expected an integer tensor, got float32",
    );
  });
  test("a window larger than the input", async () => {
    await expect(new Occlusion(toy).attribute(x, { target: 0, slidingWindowShapes: [4] })).rejects.toThrow(
      /slidingWindowShapes: window \[4\] is larger than input 0's example shape \[3\]/,
    );
    await expect(new Occlusion(toy).attribute(x, { target: 0, slidingWindowShapes: [1, 1] })).rejects.toThrow(/slidingWindowShapes: expected 1 sizes/);
  });
  test("nSamples < 1, perturbationsPerEval < 1", async () => {
    await expect(new ShapleyValueSampling(toy).attribute(x, { target: 0, nSamples: 0 })).rejects.toThrow("nSamples: expected an integer >= 1, got 0");
    await expect(new FeatureAblation(toy).attribute(x, { target: 0, perturbationsPerEval: 0 })).rejects.toThrow(
      "perturbationsPerEval: expected an integer >= 1, got 0",
    );
    await expect(new FeatureAblation(toy).attribute(x, { target: 0, perturbationsPerEval: "many" as never })).rejects.toThrow(
      /perturbationsPerEval: expected an integer >= 1 or "auto"/,
    );
  });
  test("permutation needs a batch", async () => {
    await expect(new FeaturePermutation(toy).attribute(tensor([[1, 2, 3]]), { target: 0 })).rejects.toThrow(/needs at least 2 examples/);
  });
  test("too many features for exact Shapley values", async () => {
    await expect(new ShapleyValues(digits).attribute(image(), { target: 0 })).rejects.toThrow(/64 features is too many/);
  });
});

describe("progress", () => {
  test("onProgress reports (done, total), ends at the total, and a throwing callback breaks nothing", async () => {
    const calls: [number, number][] = [];
    const x = image();
    const attr = await new FeatureAblation(digits).attribute(x, { target: 0, onProgress: (d, t) => calls.push([d, t]) });
    await new Promise((r) => setTimeout(r, 50)); // the last report may land just after the result
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls[calls.length - 1]).toEqual([64, 64]);
    calls.forEach(([d, t], i) => {
      expect(t).toBe(64);
      if (i) expect(d).toBeGreaterThan(calls[i - 1][0]);
    });
    const again = await new FeatureAblation(digits).attribute(x, { target: 0, onProgress: () => { throw new Error("boom"); }, showProgress: true });
    expectClose(again, attr);
  });
});

describe("Lime and KernelShap", () => {
  test("KernelShap with thousands of samples approaches exact Shapley values", async () => {
    const x = image();
    manualSeed(5);
    const exact = await new ShapleyValues(digits).attribute(x, { target: 3, featureMask: blocks(), perturbationsPerEval: "auto" });
    const ks = new KernelShap(digits);
    const few = await ks.attribute(x, { target: 3, featureMask: blocks(), nSamples: 30, perturbationsPerEval: "auto" });
    const many = await ks.attribute(x, { target: 3, featureMask: blocks(), nSamples: 4000, perturbationsPerEval: "auto" });
    const scale = Math.max(...values(exact).map(Math.abs));
    expect(maxAbsDiff(many, exact)).toBeLessThan(0.1 * scale);
    expect(maxAbsDiff(many, exact)).toBeLessThan(maxAbsDiff(few, exact));
  });

  test("Lime's least-squares surrogate is exact on a linear model", async () => {
    const linear = await loadModel(path.join(MODELS, "linear.pt"));
    const x = tensor([[0.5, -1.2, 0.3, 0.8, 2.0, -0.4], [1.0, 0.1, -0.7, 0.2, 0.0, 0.9]]);
    const featureMask = tensor([[0, 0, 1, 2, 2, 3]], undefined, "int64");
    const lime = await new Lime(linear).attribute(x, { target: 2, interpretableModel: "linear", featureMask, nSamples: 40, baselines: 0.1 });
    // For a linear model a feature's contribution is what ablating it removes.
    const ablation = await new FeatureAblation(linear).attribute(x, { target: 2, featureMask, baselines: 0.1 });
    expect(maxAbsDiff(lime, ablation)).toBeLessThan(1e-4);
  });

  test("Lime's lasso gives zero (to float precision) to a feature the model ignores; shapes follow returnInputShape", async () => {
    // Features 1 and 5 equal their baseline (0): no coalition changes the output through them.
    const x = tensor([[0.5, 0.0, -0.3, 0.8, 0.1, 0.0, 0.4, -0.6]]);
    manualSeed(2);
    const attr = values(await new Lime(mlp).attribute(x, { target: 1, nSamples: 300, perturbationsPerEval: "auto" }));
    expectClose([attr[1], attr[5]], 0, { atol: STRUCTURAL_ZERO });
    expect(Math.max(...attr.map(Math.abs))).toBeGreaterThan(1e-3);
    const ridge = await new Lime(mlp).attribute(x, { target: 1, nSamples: 50, interpretableModel: "ridge", distanceMode: "euclidean" });
    expect(ridge.shape).toEqual([1, 8]);
    const flat = await new Lime(toy).attribute(tensor([[0.3, 0.2, 0.9], [0.1, 0.5, 0.2]]), {
      target: 1, nSamples: 100, returnInputShape: false, featureMask: tensor([[0, 1, 1]], undefined, "int64"),
    });
    expect(flat.shape).toEqual([2, 2]);
  });

  test("bad options", async () => {
    const x = tensor([[0.3, 0.2, 0.9]]);
    await expect(new Lime(toy).attribute(x, { target: 1, nSamples: 0 })).rejects.toThrow("nSamples: expected an integer >= 1, got 0");
    await expect(new Lime(toy).attribute(x, { target: 1, interpretableModel: "tree" as never })).rejects.toThrow(/interpretableModel: expected one of lasso, ridge, linear/);
    await expect(new Lime(toy).attribute(x, { target: 1, kernelWidth: 0 })).rejects.toThrow("kernelWidth: expected a positive number, got 0");
  });
});

describe("Lime with JavaScript callbacks", () => {
  test("perturbFunc and similarityFunc replace the defaults", async () => {
    const linear = await loadModel(path.join(MODELS, "linear.pt"));
    const x = tensor([[0.5, -1.2, 0.3, 0.8, 2.0, -0.4]]);
    const featureMask = tensor([[0, 0, 1, 2, 2, 3]], undefined, "int64");
    let sampled = 0, weighed = 0;
    // Every coalition with exactly one feature missing, then all present: a designed experiment.
    const designs = [[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]];
    const lime = await new Lime(linear).attribute(x, {
      target: 0, featureMask, nSamples: 6, interpretableModel: "linear",
      perturbFunc: (inputs) => {
        expect(inputs[0].shape).toEqual([1, 6]);
        return designs[sampled++];
      },
      similarityFunc: (original, perturbed, z) => {
        expect(original[0].shape).toEqual([1, 6]);
        expect(perturbed[0].shape).toEqual([1, 6]);
        expect(z.shape).toEqual([1, 4]);
        weighed++;
        return 1;
      },
    });
    expect([sampled, weighed]).toEqual([6, 6]);
    const ablation = await new FeatureAblation(linear).attribute(x, { target: 0, featureMask });
    expect(maxAbsDiff(lime, ablation)).toBeLessThan(1e-4);
  });

  test("a callback that throws or returns the wrong thing is a rejected Promise", async () => {
    const x = tensor([[0.3, 0.2, 0.9]]);
    await expect(new Lime(toy).attribute(x, { target: 1, perturbFunc: () => { throw new Error("no samples today"); } })).rejects.toThrow(
      /perturbFunc threw: .*no samples today/,
    );
    await expect(new Lime(toy).attribute(x, { target: 1, perturbFunc: () => [1, 0] })).rejects.toThrow(
      /perturbFunc: expected a tensor of 3 zeros and ones/,
    );
    await expect(new Lime(toy).attribute(x, { target: 1, similarityFunc: () => "near" as never })).rejects.toThrow(
      "similarityFunc: expected a number, got string",
    );
  });
});

describe("aggregate mode: a model that returns one value per batch", () => {
  test("FeatureAblation and Shapley values attribute the batch's value, with a batch dimension of 1", async () => {
    const linear = await loadModel(path.join(MODELS, "linear.pt"));
    const summed = await loadModel(path.join(MODELS, "linear_sum.pt"));
    const x = tensor([[0.5, -1.2, 0.3, 0.8, 2.0, -0.4], [1.0, 0.1, -0.7, 0.2, 0.0, 0.9], [0.3, 0.3, 0.3, -0.3, -0.3, -0.3]]);
    const perExample = values(await new FeatureAblation(linear).attribute(x, { target: 0 }));
    const expected = Array.from({ length: 6 }, (_, e) => perExample[e] + perExample[6 + e] + perExample[12 + e]);
    for (const attr of [await new FeatureAblation(summed).attribute(x), await new ShapleyValues(summed).attribute(x)]) {
      expect(attr.shape).toEqual([1, 6]);
      values(attr).forEach((v, e) => expect(v).toBeCloseTo(expected[e], 5));
    }
    await expect(new FeatureAblation(summed).attribute(x, { perturbationsPerEval: 2 })).rejects.toThrow(
      "perturbationsPerEval: must be 1 when the model returns one value per batch",
    );
  });
});
