// Deletion/insertion curves, faithfulness correlation and sparseness: exact
// values on a linear model (whose attributions are known), the orderings
// the definitions promise, and the errors.
import * as path from "path";
import { deletionCurve, faithfulnessCorrelation, insertionCurve, loadModel, Model, sparseness, Tensor, tensor, TorchExplainError } from "../lib";
import { expectClose, GOLDEN, MODELS, values } from "./helpers";

let linear: Model, mlp: Model;
let W: number[][], bias: number[];
beforeAll(async () => {
  [linear, mlp] = await Promise.all([loadModel(path.join(MODELS, "linear.pt")), loadModel(path.join(GOLDEN, "mlp.pt"))]);
  const eye = tensor(Array.from({ length: 7 * 6 }, (_, i) => (i < 36 && i % 7 === 0 ? 1 : 0)), [7, 6]);
  const out = values(await linear.forward(eye));
  bias = [0, 1, 2].map((c) => out[18 + c]);
  W = [0, 1, 2].map((c) => Array.from({ length: 6 }, (_, j) => out[j * 3 + c] - bias[c]));
});

const xs = [[0.5, -1.2, 0.3, 0.8, 2.0, -0.4], [1.0, 0.1, -0.7, 0.2, 0.0, 0.9], [-0.3, 0.6, 1.1, -0.9, 0.4, 0.2], [0.7, 0.7, -0.2, 1.4, -1.0, 0.3]];
const TARGET = 1;
// Exact attributions for baseline 0: each feature's term of the target output.
const exact = () => tensor(xs.map((r) => r.map((v, j) => v * W[TARGET][j])));
const rowsOf = (t: Tensor) => {
  const v = values(t), per = v.length / t.shape[0];
  return Array.from({ length: t.shape[0] }, (_, i) => v.slice(i * per, (i + 1) * per));
};
// A fixed shuffle of each example's attributions: a ranking unrelated to the model.
function shuffled(t: Tensor, seed: number): Tensor {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return tensor(rowsOf(t).map((r) => {
    const a = r.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }));
}

describe("deletion and insertion curves", () => {
  test("on a linear model each point is f(x) minus the deleted terms; the perfect ranking lies below every other", async () => {
    const x = tensor(xs), attr = exact();
    const steps = 6; // one feature per step
    const perfect = await deletionCurve(linear, x, attr, { target: TARGET, steps });
    expect(perfect.fractions).toEqual([0, 1, 2, 3, 4, 5, 6].map((k) => k / 6));
    expect(perfect.scores.shape).toEqual([4, 7]);
    expect(perfect.auc.shape).toEqual([4]);
    const fx = rowsOf(await linear.forward(x)).map((r) => r[TARGET]);
    const terms = rowsOf(attr);
    rowsOf(perfect.scores).forEach((curve, b) => {
      const sorted = terms[b].slice().sort((p, q) => q - p);
      const byHand = sorted.map((_, k) => fx[b] - sorted.slice(0, k).reduce((a, v) => a + v, 0)).concat([bias[TARGET]]);
      expectClose(curve, byHand, { atol: 1e-5 });
      // Trapezoid area over fractions k/6.
      const area = byHand.slice(0, -1).reduce((a, v, k) => a + (v + byHand[k + 1]) / 12, 0);
      expectClose(values(perfect.auc)[b], area, { atol: 1e-5 });
    });
    // Deleting the k largest terms removes the most any k features can: every other ranking stays above, point by point.
    let strictlyLower = 0;
    for (const seed of [1, 2, 3]) {
      const random = await deletionCurve(linear, x, shuffled(attr, seed), { target: TARGET, steps });
      const pr = rowsOf(perfect.scores), rr = rowsOf(random.scores);
      pr.forEach((curve, b) => curve.forEach((v, k) => expect(v).toBeLessThanOrEqual(rr[b][k] + 1e-5)));
      values(perfect.auc).forEach((a, b) => {
        expect(a).toBeLessThanOrEqual(values(random.auc)[b] + 1e-6);
        if (a < values(random.auc)[b] - 1e-3) strictlyLower++;
      });
    }
    expect(strictlyLower).toBeGreaterThan(6); // of 12 (example, shuffle) pairs
    // Least-relevant-first reverses it: the perfect ranking then stays highest.
    const lrf = await deletionCurve(linear, x, attr, { target: TARGET, steps, order: "least-relevant-first" });
    const lrfRandom = await deletionCurve(linear, x, shuffled(attr, 1), { target: TARGET, steps, order: "least-relevant-first" });
    rowsOf(lrf.scores).forEach((curve, b) => curve.forEach((v, k) => expect(v).toBeGreaterThanOrEqual(rowsOf(lrfRandom.scores)[b][k] - 1e-5)));
  });

  test("insertion: starts at the baseline, ends at the input, and the perfect ranking rises fastest", async () => {
    const x = tensor(xs);
    const baselines = tensor([[0.1, -0.2, 0.3, 0.0, 0.5, 0.2]]);
    // With a non-zero baseline the exact terms are (x - b) * w.
    const terms = tensor(xs.map((r) => r.map((v, j) => (v - values(baselines)[j]) * W[TARGET][j])));
    const perfect = await insertionCurve(linear, x, terms, { target: TARGET, steps: 6, baselines });
    const fb = values(await linear.forward(baselines))[TARGET];
    const fx = rowsOf(await linear.forward(x)).map((r) => r[TARGET]);
    rowsOf(perfect.scores).forEach((curve, b) => {
      expect(curve[0]).toBeCloseTo(fb, 5);
      expect(curve[6]).toBeCloseTo(fx[b], 5);
    });
    const random = await insertionCurve(linear, x, shuffled(terms, 5), { target: TARGET, steps: 6, baselines });
    rowsOf(perfect.scores).forEach((curve, b) => curve.forEach((v, k) => expect(v).toBeGreaterThanOrEqual(rowsOf(random.scores)[b][k] - 1e-5)));
    expect(values(perfect.auc).reduce((a, v) => a + v, 0)).toBeGreaterThan(values(random.auc).reduce((a, v) => a + v, 0) + 1e-3);
  });

  test("several inputs are ranked together; steps that do not divide the features round the counts; forward args pass through", async () => {
    const multi = await loadModel(path.join(GOLDEN, "multi.pt")); // forward(a [N,4], b [N,3], scale: float)
    const a = tensor([[0.3, -0.5, 0.9, 0.1], [1.2, 0.4, -0.3, 0.6]]), b = tensor([[0.2, 0.7, -0.4], [-0.1, 0.5, 0.8]]);
    const attrA = tensor([[0.5, -0.1, 0.9, 0.0], [0.2, 0.3, -0.4, 0.1]]), attrB = tensor([[0.7, 0.2, -0.3], [0.6, -0.2, 0.05]]);
    const steps = 3; // 7 features: counts round(7k/3) = 0, 2, 5, 7
    const r = await deletionCurve(multi, [a, b], [attrA, attrB], { target: 1, steps, baselines: [0.1, -0.2], additionalForwardArgs: [2.0] });
    expect(r.scores.shape).toEqual([2, 4]);
    const counts = [0, 2, 5, 7];
    const joint = [0, 1].map((e) => [...rowsOf(attrA)[e], ...rowsOf(attrB)[e]]);
    const xa = rowsOf(a), xb = rowsOf(b);
    for (let e = 0; e < 2; e++) {
      const ranked = joint[e].map((v, i) => [v, i]).sort((p, q) => q[0] - p[0]).map(([, i]) => i);
      for (const [k, count] of counts.entries()) {
        const gone = new Set(ranked.slice(0, count));
        const pa = tensor([xa[e].map((v, i) => (gone.has(i) ? 0.1 : v))]), pb = tensor([xb[e].map((v, i) => (gone.has(4 + i) ? -0.2 : v))]);
        const expected = values(await multi.forward([pa, pb], [2.0]))[1];
        expect(rowsOf(r.scores)[e][k]).toBeCloseTo(expected, 5);
      }
    }
  });

  test("batchSize does not change the curve; softmax scores are probabilities", async () => {
    const x = tensor(Array.from({ length: 3 * 8 }, (_, i) => Math.cos(i * 0.9)), [3, 8]);
    const attr = tensor(Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i * 1.7)), [3, 8]);
    const calls: number[] = [];
    const counted = (inp: Tensor | Tensor[], args?: unknown[]) => {
      calls.push((inp as Tensor).shape[0]);
      return mlp.forward(inp, args as never);
    };
    const whole = await deletionCurve(counted, x, attr, { target: [0, 1, 2], steps: 5 });
    expect(calls).toEqual([18]); // 3 examples x 6 points, one pass
    calls.length = 0;
    const chunked = await deletionCurve(counted, x, attr, { target: [0, 1, 2], steps: 5, batchSize: 4 });
    expect(calls).toEqual([4, 4, 4, 4, 2]);
    expectClose(chunked.scores, whole.scores);
    expectClose(chunked.auc, whole.auc);
    const probs = await deletionCurve(mlp, x, attr, { target: 0, steps: 5, softmax: true });
    const logits = rowsOf(await mlp.forward(x));
    // The first point is the softmax of the untouched input.
    rowsOf(probs.scores).forEach((curve, b) => {
      const z = logits[b].reduce((a, v) => a + Math.exp(v), 0);
      expect(curve[0]).toBeCloseTo(Math.exp(logits[b][0]) / z, 5);
      curve.forEach((p) => expect(p >= 0 && p <= 1).toBe(true));
    });
  });

  test("bad input", async () => {
    const x = tensor(xs);
    await expect(deletionCurve(linear, x, tensor([[1, 2, 3]]), { target: 0 })).rejects.toMatchObject({
      code: "ERR_BAD_SHAPE", message: "attributions[0]: shape [1,3] does not match input 0 of shape [4,6]",
    });
    await expect(deletionCurve(linear, x, exact(), { target: 0, order: "random" as never })).rejects.toThrow('order: expected "most-relevant-first" or "least-relevant-first", got random');
    await expect(deletionCurve(linear, x, exact(), { target: 0, steps: 0 })).rejects.toThrow("steps: expected an integer >= 1, got 0");
    await expect(deletionCurve(linear, x, exact(), { target: 7 })).rejects.toMatchObject({ code: "ERR_BAD_TARGET" });
    await expect(insertionCurve(linear, x, exact(), { target: 0, baselines: tensor([[1, 2]]) })).rejects.toThrow(/^baselines\[0\]: shape \[1,2\] does not match input 0 of shape \[4,6\]/);
    await expect(deletionCurve(linear, x, exact(), { target: 0, step: 3 } as never)).rejects.toThrow(/^deletionCurve: unknown option step/);
  });
});

describe("faithfulness correlation", () => {
  test("exact attributions of a linear model correlate perfectly; shuffled ones do not; a seed repeats the draw", async () => {
    const x = tensor(xs);
    const r = await faithfulnessCorrelation(linear, x, exact(), { target: TARGET, nSamples: 30, subsetSize: 2, seed: 11 });
    expect(r.shape).toEqual([4]);
    values(r).forEach((c) => expect(c).toBeGreaterThan(0.99999));
    const random = values(await faithfulnessCorrelation(linear, x, shuffled(exact(), 9), { target: TARGET, nSamples: 30, subsetSize: 2, seed: 11 }));
    expect(Math.max(...random)).toBeLessThan(0.99);
    expect(random.reduce((a, v) => a + v, 0) / 4).toBeLessThan(0.9);
    const again = await faithfulnessCorrelation(linear, x, shuffled(exact(), 9), { target: TARGET, nSamples: 30, subsetSize: 2, seed: 11 });
    expectClose(again, random);
  });

  test("bad input", async () => {
    const x = tensor(xs);
    await expect(faithfulnessCorrelation(linear, x, exact(), { target: 0, subsetSize: 7 })).rejects.toThrow("subsetSize: 7 exceeds the 6 features of an example");
    await expect(faithfulnessCorrelation(linear, x, exact(), { target: 0, nSamples: 1 })).rejects.toThrow("nSamples: a correlation needs at least 2 samples");
    const e = await faithfulnessCorrelation(linear, x, [exact(), exact()], { target: 0 }).catch((err) => err);
    expect(e).toBeInstanceOf(TorchExplainError);
    expect(e.message).toBe("attributions: 2 tensors for 1 inputs");
  });
});

describe("sparseness", () => {
  test("Gini index: (n-1)/n for one non-zero value, 0 for equal ones, the formula on a known vector", () => {
    const n = 8;
    const g = values(sparseness(tensor([
      Array.from({ length: n }, (_, i) => (i === 3 ? -2.5 : 0)),
      Array.from({ length: n }, () => 0.7),
      Array.from({ length: n }, (_, i) => (i % 2 ? -0.7 : 0.7)), // signs do not matter
      [4, 1, 3, 2, 0, 0, 0, 0],
    ])));
    expectClose(g[0], (n - 1) / n, { atol: 1e-6 });
    expectClose(g[1], 0, { atol: 1e-6 });
    expectClose(g[2], 0, { atol: 1e-6 });
    // Sorted: 0,0,0,0,1,2,3,4; sum((2k - n - 1) c_k) / (n * sum c) with k from 1.
    const c = [0, 0, 0, 0, 1, 2, 3, 4];
    const byHand = c.reduce((a, v, k) => a + (2 * (k + 1) - n - 1) * v, 0) / (n * 10);
    expectClose(g[3], byHand, { atol: 1e-6 });
    expect(byHand).toBeCloseTo(0.625, 10);
  });

  test("several inputs count as one vector per example; an all-zero example is 0", () => {
    const a = tensor([[0, 0, 5], [0, 0, 0]]), b = tensor([[[0, 0]], [[0, 0]]]);
    expectClose(sparseness([a, b]), [4 / 5, 0], { atol: 1e-6 });
    expect(() => sparseness([a, tensor([[1, 2]])])).toThrow("attributions[1]: shape [1,2]; every tensor needs the same batch dimension");
  });
});

describe("native and JavaScript scoring agree", () => {
  // A loaded Model is scored natively (MaskedScores); a function standing in
  // for it gets its batches built in JavaScript. Same rows, same scores.
  test("deletion, insertion and faithfulness on the golden CNN, per-example targets and baselines", async () => {
    const cnn = await loadModel(path.join(GOLDEN, "cnn.pt"));
    const x = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 0.61)), [3, 1, 8, 8]);
    const attr = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i * 1.7)), [3, 1, 8, 8]);
    const baselines = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => 0.1 * Math.sin(i)), [3, 1, 8, 8]);
    const asFunction = (inputs: Tensor | Tensor[]) => cnn.forward(inputs);
    const common = { target: [0, 2, 1], baselines, steps: 7, batchSize: 10 };
    for (const fn of [deletionCurve, insertionCurve]) {
      const a = await fn(cnn, x, attr, { ...common, softmax: true });
      const b = await fn(asFunction, x, attr, { ...common, softmax: true });
      expectClose(values(a.scores), values(b.scores));
      expectClose(values(a.auc), values(b.auc));
    }
    const fa = await faithfulnessCorrelation(cnn, x, attr, { target: [0, 2, 1], baselines, nSamples: 12, subsetSize: 9, seed: 5 });
    const fb = await faithfulnessCorrelation(asFunction, x, attr, { target: [0, 2, 1], baselines, nSamples: 12, subsetSize: 9, seed: 5 });
    expectClose(values(fa), values(fb));
  });
});
