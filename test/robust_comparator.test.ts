// AttackComparator and MinParamPerturbation: their statistics against the
// same numbers computed by hand, their searches against brute force, and
// their errors.
import * as path from "path";
import { AttackComparator, FGSM, loadModel, MinParamPerturbation, Model, Tensor, tensor, TorchExplainError } from "../lib";
import { paramGrid, pyFloorDiv } from "../lib/robust/min_param_perturbation";
import { expectClose, GOLDEN, MODELS, values } from "./helpers";

let linear: Model, mlp: Model;
let W: number[][]; // linear.pt's weights, [3][6]
beforeAll(async () => {
  [linear, mlp] = await Promise.all([loadModel(path.join(MODELS, "linear.pt")), loadModel(path.join(GOLDEN, "mlp.pt"))]);
  // f(e_j) - f(0) is column j of the weight matrix.
  const eye = tensor(Array.from({ length: 7 * 6 }, (_, i) => (i < 36 && i % 7 === 0 ? 1 : 0)), [7, 6]);
  const out = values(await linear.forward(eye));
  W = [0, 1, 2].map((c) => Array.from({ length: 6 }, (_, j) => out[j * 3 + c] - out[18 + c]));
});

const X = () => tensor([[0.5, -1.2, 0.3, 0.8, 2.0, -0.4], [1.0, 0.1, -0.7, 0.2, 0.0, 0.9], [-0.3, 0.6, 1.1, -0.9, 0.4, 0.2]]);
const add = (x: Tensor, v: number) => tensor(Float32Array.from(values(x), (a) => a + v), x.shape);
const rowsOf = (t: Tensor) => {
  const v = values(t), per = v.length / t.shape[0];
  return Array.from({ length: t.shape[0] }, (_, i) => v.slice(i * per, (i + 1) * per));
};
const argmax = (r: number[]) => r.reduce((best, v, i) => (v > r[best] ? i : best), 0);

// A seeded generator for attacks with randomness the test can replay.
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Metric: [per-example target output (Tensor), batch accuracy (number)]. */
async function metricByHand(model: Model, x: Tensor, target: number[]) {
  const rows = rowsOf(await model.forward(x));
  return { perExample: rows.map((r, i) => r[target[i]]), accuracy: rows.filter((r, i) => argmax(r) === target[i]).length / rows.length };
}
const metric = (out: Tensor, target: unknown) => {
  const t = target as number[];
  const rows = rowsOf(out);
  return [tensor(rows.map((r, i) => r[t[i]])), rows.filter((r, i) => argmax(r) === t[i]).length / rows.length] as [Tensor, number];
};
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

describe("AttackComparator", () => {
  test("results and summary are the means (and min/max over attempts) of the metric on the same perturbed inputs, however batched", async () => {
    const target = [0, 2, 1];
    for (const perturbationsPerEval of [1, 3, 10]) {
      const seen: Tensor[] = [];
      let forwardCalls = 0;
      const counted = (x: Tensor | Tensor[], args?: unknown[]) => {
        forwardCalls++;
        return linear.forward(x, args as never);
      };
      const cmp = new AttackComparator(counted, { metric });
      const rand = lcg(7);
      cmp.addAttack((x: Tensor, kw) => add(x, kw.value as number), { name: "shift", attackKwargs: { value: 0.5 } });
      cmp.addAttack(
        (x: Tensor) => {
          const y = tensor(Float32Array.from(values(x), (a) => a + (rand() - 0.5)), x.shape);
          seen.push(y);
          return y;
        },
        { name: "noise", numAttempts: 3 },
      );
      const batches = [X(), add(X(), -0.25)];
      const results = [];
      for (const x of batches) results.push(await cmp.evaluate(x, { target, perturbationsPerEval }));
      // 5 evaluated copies per call: 1 original, 1 shift, 3 noise.
      expect(forwardCalls).toBe(2 * Math.ceil(5 / perturbationsPerEval));

      const summaryByHand: Record<string, number[][]> = {};
      const note = (key: string, perExample: number[], acc: number) => {
        (summaryByHand[key] ??= []).push([mean(perExample), acc]);
      };
      for (const [b, x] of batches.entries()) {
        const r = results[b] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        const original = await metricByHand(linear, x, target);
        expectClose(r.Original[0], original.perExample);
        expect(r.Original[1]).toBeCloseTo(original.accuracy, 10);
        note("Original", original.perExample, original.accuracy);

        const shifted = await metricByHand(linear, add(x, 0.5), target);
        expect(Object.keys(r.shift)).toEqual(["mean"]);
        expectClose(r.shift.mean[0], shifted.perExample);
        expect(r.shift.mean[1]).toBeCloseTo(shifted.accuracy, 10);
        note("shift", shifted.perExample, shifted.accuracy);

        const attempts = await Promise.all(seen.slice(3 * b, 3 * b + 3).map((y) => metricByHand(linear, y, target)));
        const per = (f: (v: number[]) => number) => [0, 1, 2].map((i) => f(attempts.map((a) => a.perExample[i])));
        expect(Object.keys(r.noise).sort()).toEqual(["max", "mean", "min"]);
        expectClose(r.noise.mean[0], per(mean));
        expectClose(r.noise.min[0], per((v) => Math.min(...v)));
        expectClose(r.noise.max[0], per((v) => Math.max(...v)));
        const accs = attempts.map((a) => a.accuracy);
        expect(r.noise.mean[1]).toBeCloseTo(mean(accs), 10);
        expect(r.noise.min[1]).toBe(Math.min(...accs));
        expect(r.noise.max[1]).toBe(Math.max(...accs));
        note("noise Mean Attempt", per(mean), mean(accs));
        note("noise Min Attempt", per((v) => Math.min(...v)), Math.min(...accs));
        note("noise Max Attempt", per((v) => Math.max(...v)), Math.max(...accs));
      }
      // Summary: per key, the mean over calls of each call's result averaged over examples.
      const summary = cmp.summary() as Record<string, { mean: [Tensor, number] }>;
      expect(Object.keys(summary).sort()).toEqual(Object.keys(summaryByHand).sort());
      for (const [key, calls] of Object.entries(summaryByHand)) {
        expect(summary[key].mean[0].shape).toEqual([]);
        expectClose(summary[key].mean[0], mean(calls.map((c) => c[0])));
        expect(summary[key].mean[1]).toBeCloseTo(mean(calls.map((c) => c[1])), 10);
      }
      cmp.reset();
      expect(cmp.summary()).toEqual({});
    }
  });

  test("attacks get evaluate()'s per-batch arguments they name, before or after preprocFn", async () => {
    const calls: { x: number[]; kw: Record<string, unknown> }[] = [];
    const spy = (x: Tensor, kw: Record<string, unknown>) => {
      calls.push({ x: values(x), kw });
      return x;
    };
    const cmp = new AttackComparator(linear, { metric: (out) => values(out)[0], preprocFn: (x: Tensor) => add(x, 1) });
    cmp.addAttack(spy, { name: "raw", additionalAttackArgNames: ["target", "label"], attackKwargs: { strength: 2 } });
    cmp.addAttack(spy, { name: "preprocessed", applyBeforePreproc: false });
    const x = X();
    const r = (await cmp.evaluate(x, { target: [1, 1, 1], kwargs: { label: "cat" } })) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(calls[0].kw).toEqual({ target: [1, 1, 1], label: "cat", strength: 2 });
    expectClose(calls[0].x, values(x));
    expect(calls[1].kw).toEqual({});
    expectClose(calls[1].x, values(add(x, 1)));
    // Both attacks are the identity, so both see what the original sees.
    const first = values(await linear.forward(add(x, 1)))[0];
    expect(r.Original).toBeCloseTo(first, 6);
    expect(r.raw.mean).toBeCloseTo(first, 6);
    expect(r.preprocessed.mean).toBeCloseTo(first, 6);
  });

  test("tensor forward args are repeated once per stacked copy; other args pass as they are", async () => {
    const seen: string[] = [];
    const fwd = (x: Tensor | Tensor[], args?: unknown[]) => {
      const [w, flag] = args as [Tensor, string];
      seen.push(`${(x as Tensor).shape[0]}:${w.shape}:${values(w).join(",")}:${flag}`);
      return linear.forward(x);
    };
    const cmp = new AttackComparator(fwd, { metric: (out) => values(out)[0] });
    cmp.addAttack((x: Tensor) => add(x, 0.1), { name: "shift", numAttempts: 3 });
    await cmp.evaluate(X(), { additionalForwardArgs: [tensor([[1], [2], [3]]), "on"], perturbationsPerEval: 3 });
    // 4 copies (original + 3 attempts): a pass of 3 stacked copies, then 1.
    expect(seen).toEqual(["9:9,1:1,2,3,1,2,3,1,2,3:on", "3:3,1:1,2,3:on"]);
  });

  test("an FGSM instance as an attack: the same numbers as perturbing by hand", async () => {
    const x = tensor(Array.from({ length: 4 * 8 }, (_, i) => Math.sin(i * 0.37)), [4, 8]);
    const target = [0, 1, 2, 1];
    const fgsm = new FGSM(mlp);
    const cmp = new AttackComparator(mlp, { metric: (out, t) => metric(out, t)[0] });
    cmp.addAttack(fgsm, { attackKwargs: { epsilon: 0.2 }, additionalAttackArgNames: ["target"] });
    const r = (await cmp.evaluate(x, { target, perturbationsPerEval: 2 })) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const byHand = await metricByHand(mlp, await fgsm.perturb(x, { epsilon: 0.2, target }), target);
    expectClose(r.FGSM.mean, byHand.perExample);
    // The attack moved the outputs (else this test could not tell the attacked copy from the original).
    expect(Math.max(...values(r.FGSM.mean).map((v, i) => Math.abs(v - values(r.Original)[i])))).toBeGreaterThan(1e-3);
  });

  test("bad attacks and options are rejected naming the attack or option", async () => {
    const cmp = new AttackComparator(linear, { metric: (out) => values(out)[0] });
    cmp.addAttack(() => {
      throw new Error("boom");
    }, { name: "thrower" });
    const e = await cmp.evaluate(X()).catch((err) => err);
    expect(e).toBeInstanceOf(TorchExplainError);
    expect(e.code).toBe("ERR_BAD_OPTION");
    expect(e.message).toBe("attack: 'thrower' failed: boom");
    expect(e.argument).toBe("attack");
    expect(cmp.summary()).toEqual({}); // a failed call leaves no partial statistics

    const shapes = new AttackComparator(linear, { metric: (out) => values(out)[0] });
    shapes.addAttack((x: Tensor) => tensor(values(x).slice(0, 12), [2, 6]), { name: "cropper" });
    await expect(shapes.evaluate(X())).rejects.toMatchObject({ code: "ERR_BAD_SHAPE", message: "attack: 'cropper' returned shape [2,6]; expected the shape of its input [3,6]" });
    const nonTensor = new AttackComparator(linear, { metric: (out) => values(out)[0] });
    nonTensor.addAttack(async () => 3, { name: "numbers" });
    await expect(nonTensor.evaluate(X())).rejects.toThrow("attack: 'numbers' returned number; expected a Tensor shaped like its input [3,6]");

    expect(() => cmp.addAttack((x: Tensor) => x, { name: "thrower" })).toThrow("name: an attack named 'thrower' already exists");
    expect(() => cmp.addAttack((x: Tensor) => x, { name: "x", numAttempts: 0 })).toThrow("numAttempts: expected an integer >= 1, got 0");
    expect(() => cmp.addAttack((() => (x: Tensor) => x)())).toThrow("name: the attack is an anonymous function; give it a name");
    expect(() => cmp.addAttack({} as never, { name: "y" })).toThrow(/^attack: expected an FGSM\/PGD instance/);
    await expect(cmp.evaluate(X(), { perturbationsPerEval: 0 })).rejects.toThrow("perturbationsPerEval: expected an integer >= 1, got 0");
    await expect(cmp.evaluate(X(), { perturbationEval: 2 } as never)).rejects.toThrow(/^evaluate: unknown option perturbationEval/);
    const badMetric = new AttackComparator(linear, { metric: () => "high" as never });
    await expect(badMetric.evaluate(X())).rejects.toThrow("metric: expected a number, a boolean, a Tensor, or an array or object of them; got string at result");
    const ac = new AbortController();
    ac.abort();
    await expect(new AttackComparator(linear, { metric: () => 1 }).evaluate(X(), { signal: ac.signal })).rejects.toMatchObject({ code: "ERR_ABORTED" });
  });
});

describe("MinParamPerturbation", () => {
  // Moves every example along W[other] - W[target]: the target's margin shrinks linearly in `value`.
  const towards = (target: number[], other: number[]) => (x: Tensor, kw: Record<string, unknown>) => {
    const v = kw.value as number, rows = rowsOf(x);
    return tensor(rows.flatMap((r, i) => r.map((a, j) => a + v * (W[other[i]][j] - W[target[i]][j]))), x.shape);
  };
  async function bruteForce(x: Tensor, target: number[], attack: ReturnType<typeof towards>, argMin: number, argMax: number, argStep: number) {
    for (const v of paramGrid(argMin, argMax, argStep)) {
      const rows = rowsOf(await linear.forward(attack(x, { value: v })));
      if (rows.some((r, i) => argmax(r) !== target[i])) return v;
    }
    return null;
  }

  test("Python's float floor division and the reference's grid", () => {
    expect([pyFloorDiv(1.0, 0.1), pyFloorDiv(0.3, 0.1), pyFloorDiv(7, 2), pyFloorDiv(-7, 2), pyFloorDiv(-1.0, 0.3), pyFloorDiv(0.5, 0.25)]).toEqual([9, 2, 3, -4, -4, 2]);
    // Accumulated steps: ten additions of 0.1 give 0.9999999999999999 < 1, so the grid to 1 has 11 values.
    const grid = paramGrid(0, 1, 0.1);
    expect(grid.length).toBe(11);
    expect(grid[10]).toBe(0.9999999999999999);
    expect(paramGrid(0, 0.3, 0.1)).toEqual([0, 0.1, 0.2]);
  });

  test("linear and binary search find the smallest grid value a brute-force scan finds", async () => {
    const x = X();
    const target = rowsOf(await linear.forward(x)).map(argmax);
    const other = target.map((t) => (t + 1) % 3);
    const attack = towards(target, other);
    const grids: [number, number, number][] = [[0, 3, 0.1], [0, 2, 0.07], [0.05, 1.5, 0.013], [0.4, 0.9, 0.02], [0, 0.05, 0.01]];
    let found = 0;
    for (const [argMin, argMax, argStep] of grids) {
      const expected = await bruteForce(x, target, attack, argMin, argMax, argStep);
      if (expected !== null) found++;
      for (const mode of ["linear", "binary"] as const)
        for (const perturbationsPerEval of [1, 4]) {
          const mpp = new MinParamPerturbation(linear, { attack, argName: "value", argMin, argMax, argStep, mode });
          const [perturbed, param] = await mpp.evaluate(x, { target, perturbationsPerEval });
          if (expected === null) {
            expect([perturbed, param]).toEqual([null, null]);
            continue;
          }
          // Binary search computes grid points as argMin + k*argStep, the scan by adding argStep: equal up to rounding.
          expect(param).not.toBeNull();
          expect(Math.abs(param! - expected)).toBeLessThan(1e-9);
          expectClose(perturbed as Tensor, values(attack(x, { value: param! })));
        }
    }
    // The grids include both outcomes: some value succeeds, and none does.
    expect(found).toBeGreaterThan(0);
    expect(found).toBeLessThan(grids.length);
  });

  test("numAttempts: a value succeeds when any attempt does; correctFn and its kwargs replace the default", async () => {
    const x = X();
    const target = rowsOf(await linear.forward(x)).map(argmax);
    const attack = towards(target, target.map((t) => (t + 1) % 3));
    let calls = 0;
    // Every third attempt is the real attack; the others leave the inputs alone.
    const flaky = (inp: Tensor, kw: Record<string, unknown>) => (calls++ % 3 === 2 ? attack(inp, kw) : inp);
    const expected = await bruteForce(x, target, attack, 0, 3, 0.1);
    const [, param] = await new MinParamPerturbation(linear, { attack: flaky, argName: "value", argMin: 0, argMax: 3, argStep: 0.1, numAttempts: 3 }).evaluate(x, { target, perturbationsPerEval: 2 });
    expect(param).toBe(expected);

    // A custom criterion: "correct" while output 0 of example 0 stays above a threshold.
    const seen: unknown[] = [];
    const correctFn = (out: Tensor, t: unknown, kw: Record<string, unknown>) => {
      seen.push([t, kw]);
      return values(out)[0] > (kw.threshold as number);
    };
    // Shifting every feature by -value*sign(s) moves output 0 by -value*|s|, s = sum(W[0]).
    const s = W[0].reduce((a, b) => a + b, 0);
    const shift = (inp: Tensor, kw: Record<string, unknown>) => add(inp, -(kw.value as number) * Math.sign(s));
    const f0 = values(await linear.forward(x))[0];
    const threshold = f0 - 1.1 * Math.abs(s);
    const mpp = new MinParamPerturbation(linear, { attack: shift, argName: "value", argMin: 0, argMax: 2, argStep: 0.25, correctFn });
    const [, p] = await mpp.evaluate(x, { correctFnKwargs: { threshold } });
    const byHand = paramGrid(0, 2, 0.25).find((v) => !(f0 - v * Math.abs(s) > threshold));
    expect(byHand).toBe(1.25);
    expect(p).toBe(byHand);
    expect(seen[0]).toEqual([undefined, { threshold }]);
  });

  test("bad options", async () => {
    const id = (x: Tensor) => x;
    expect(() => new MinParamPerturbation(linear, { attack: id, argName: "v", argMin: 0, argMax: 0.1, argStep: 0.1 })).toThrow("argMax: must exceed argMin + argStep (0 + 0.1), got 0.1");
    expect(() => new MinParamPerturbation(linear, { attack: id, argName: "v", argMin: 0, argMax: 1, argStep: 0.1, mode: "ternary" as never })).toThrow('mode: expected "linear" or "binary", got ternary');
    expect(() => new MinParamPerturbation(linear, { attack: id, argName: "v", argMin: 0, argMax: 1, argStep: 0 })).toThrow("argStep: expected a positive number, got 0");
    const thrower = function noisy() {
      throw new RangeError("bad level");
    };
    const mpp = new MinParamPerturbation(linear, { attack: thrower, argName: "v", argMin: 0, argMax: 1, argStep: 0.1 });
    await expect(mpp.evaluate(X(), { target: 0 })).rejects.toMatchObject({ code: "ERR_BAD_OPTION", message: "attack: 'noisy' failed: bad level" });
    const ok = new MinParamPerturbation(linear, { attack: id, argName: "v", argMin: 0, argMax: 1, argStep: 0.1 });
    await expect(ok.evaluate(X(), { target: 0, attackKwargs: { v: 1 } })).rejects.toThrow("attackKwargs: holds 'v', the option being searched; leave it out");
    await expect(ok.evaluate(X())).rejects.toMatchObject({ code: "ERR_BAD_TARGET", message: "target: the default correctFn compares the argmax with target; give one" });
  });
});
