// captum.robust and captum.metrics: FGSM, PGD, infidelity and sensitivity-max,
// checked by properties that hold exactly (up to float32 noise).
import * as fs from "fs";
import * as path from "path";
import { FGSM, PGD, Saliency, infidelity, loadModel, sensitivityMax, tensor, Tensor, Model } from "../lib";
import { GOLDEN, MODELS, fromGolden, values } from "./helpers";

const golden = (id: string) => JSON.parse(fs.readFileSync(path.join(GOLDEN, `${id}.json`), "utf8"));
let cnn: Model, mlp: Model, linear: Model;
let cnnX: Tensor, mlpX: Tensor;
const linX = tensor(Float32Array.from({ length: 4 * 6 }, (_, i) => Math.sin(i * 1.3)), [4, 6]);

beforeAll(async () => {
  cnn = await loadModel(path.join(GOLDEN, "cnn.pt"));
  mlp = await loadModel(path.join(GOLDEN, "mlp.pt"));
  linear = await loadModel(path.join(MODELS, "linear.pt"));
  cnnX = fromGolden(golden("fgsm_cnn").inputs[0]);
  mlpX = fromGolden(golden("pgd_mlp").inputs[0]);
});

describe("FGSM", () => {
  test("epsilon 0 returns the inputs", async () => {
    const out = await new FGSM(cnn).perturb(cnnX, { epsilon: 0, target: [1, 0, 2] });
    expect(values(out)).toEqual(values(cnnX));
  });
  test("moves every element by epsilon at most, inside the bounds, and only where the mask allows", async () => {
    const mask = tensor(Float32Array.from({ length: 64 }, (_, i) => (i < 32 ? 1 : 0)), [1, 1, 8, 8]);
    const out = await new FGSM(cnn, { lowerBound: -1, upperBound: 1 }).perturb(cnnX, { epsilon: 0.05, target: 1, mask });
    const x = values(cnnX), y = values(out);
    let moved = 0;
    y.forEach((v, i) => {
      const clamped = Math.min(1, Math.max(-1, x[i]));
      expect(v).toBeGreaterThanOrEqual(-1);
      expect(v).toBeLessThanOrEqual(1);
      if (i % 64 >= 32) expect(Math.abs(v - clamped)).toBeLessThan(1e-6);
      else expect(Math.abs(v - clamped)).toBeLessThanOrEqual(0.05 + 1e-6);
      if (Math.abs(v - clamped) > 1e-6) moved++;
    });
    expect(moved).toBeGreaterThan(0);
  });
  test("a targeted step is the untargeted one reversed", async () => {
    const fgsm = new FGSM(cnn);
    const x = values(cnnX);
    const away = values(await fgsm.perturb(cnnX, { epsilon: 0.05, target: [1, 0, 2] }));
    const toward = values(await fgsm.perturb(cnnX, { epsilon: 0.05, target: [1, 0, 2], targeted: true }));
    let moved = 0;
    x.forEach((v, i) => {
      expect(Math.abs(away[i] - v + (toward[i] - v))).toBeLessThan(1e-6);
      if (Math.abs(away[i] - v) > 1e-3) moved++;
    });
    expect(moved).toBeGreaterThan(x.length / 2);
  });
});

describe("PGD", () => {
  const base = { radius: 0.1, stepSize: 0.04, stepNum: 6, target: 1 };
  test("stays within its L∞ radius and the bounds, from a random start too", async () => {
    for (const randomStart of [false, true]) {
      const out = await new PGD(mlp, { lowerBound: -0.6, upperBound: 0.6 }).perturb(mlpX, { ...base, randomStart });
      const x = values(mlpX), y = values(out);
      y.forEach((v, i) => {
        expect(v).toBeGreaterThanOrEqual(-0.6 - 1e-6); // float32 of the bound
        expect(v).toBeLessThanOrEqual(0.6 + 1e-6);
        expect(Math.abs(v - Math.min(0.6, Math.max(-0.6, x[i])))).toBeLessThanOrEqual(0.1 + 1e-6);
      });
    }
  });
  test("stays within its L2 radius per example", async () => {
    for (const randomStart of [false, true]) {
      const out = await new PGD(mlp).perturb(mlpX, { ...base, norm: "L2", randomStart });
      const x = values(mlpX), y = values(out), d = mlpX.shape[1];
      for (let b = 0; b < mlpX.shape[0]; b++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += (y[b * d + j] - x[b * d + j]) ** 2;
        expect(Math.sqrt(s)).toBeLessThanOrEqual(0.1 * (1 + 1e-5));
        expect(Math.sqrt(s)).toBeGreaterThan(0);
      }
    }
  });
  test("bad input is a rejected Promise naming the argument", async () => {
    await expect(new PGD(mlp).perturb(mlpX, { ...base, radius: -1 })).rejects.toThrow(/radius/);
    await expect(new PGD(mlp).perturb(mlpX, { ...base, norm: "L3" as "L2" })).rejects.toThrow(/norm/);
    await expect(new FGSM(mlp).perturb(mlpX, { epsilon: 0.1 } as never)).rejects.toThrow(/target/);
    await expect(new FGSM(mlp).perturb(mlpX, { epsilon: 0.1, target: 0, mask: tensor([1, 0], [2]) })).rejects.toThrow(/mask/);
    await expect(new FGSM(mlp, { lowerBound: 1, upperBound: 0 }).perturb(mlpX, { epsilon: 0.1, target: 0 })).rejects.toThrow(/lowerBound/);
  });
});

describe("infidelity", () => {
  // A linear model's gradient is its weight row: the attribution-weighted
  // perturbation equals the output change exactly.
  test("is zero for the exact attributions of a linear model, and not for others", async () => {
    const exact = await new Saliency(linear).attribute(linX, { target: 2, abs: false });
    for (const perturbFunc of [undefined, { type: "uniform" as const, radius: 0.5 }, { type: "baseline" as const }]) {
      const zero = values(await infidelity(linear, perturbFunc, linX, exact, { target: 2, nPerturbSamples: 8 }));
      zero.forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-9 + 1e-6 * 1));
    }
    const random = tensor(Float32Array.from({ length: 24 }, (_, i) => Math.cos(i * 7.1)), [4, 6]);
    const bad = values(await infidelity(linear, { type: "gaussian", stdev: 0.5 }, linX, random, { target: 2, nPerturbSamples: 8 }));
    bad.forEach((v) => expect(v).toBeGreaterThan(1e-3));
  });
  test("a JavaScript perturbation function has the reference's contract", async () => {
    const exact = await new Saliency(linear).attribute(linX, { target: 0, abs: false });
    let calls = 0;
    const perturb = (x: Tensor | Tensor[]) => {
      calls++;
      const t = x as Tensor;
      const noise = tensor(Float32Array.from({ length: t.numel }, (_, i) => Math.sin(i) * 0.1), t.shape);
      const moved = tensor(Float32Array.from(t.data() as Float32Array, (v, i) => v - Math.sin(i) * 0.1), t.shape);
      return [noise, moved] as [Tensor, Tensor];
    };
    const r = values(await infidelity(linear, perturb, linX, exact, { target: 0, nPerturbSamples: 6, maxExamplesPerBatch: 8 }));
    expect(calls).toBe(3); // 4 examples × 6 samples, 2 samples (8 rows) per batch
    r.forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-6));
    await expect(infidelity(linear, () => [linX, linX] as [Tensor, Tensor], linX, exact, { target: 0 })).rejects.toThrow(/perturbFunc/);
    await expect(infidelity(linear, undefined, linX, tensor([1, 2], [2]), { target: 0 })).rejects.toThrow(/attributions/);
  });
  test("normalize scales the attributions: any multiple of the exact ones is exact", async () => {
    const exact = values(await new Saliency(linear).attribute(linX, { target: 1, abs: false }));
    const scaled = tensor(Float32Array.from(exact, (v) => v * 3.5), [4, 6]);
    const plain = values(await infidelity(linear, undefined, linX, scaled, { target: 1 }));
    const normalized = values(await infidelity(linear, undefined, linX, scaled, { target: 1, normalize: true }));
    plain.forEach((v, i) => {
      expect(v).toBeGreaterThan(1e-6);
      expect(Math.abs(normalized[i])).toBeLessThan(1e-6);
    });
  });
});

describe("sensitivityMax", () => {
  test("is zero for the gradients of a linear model, and positive for a non-linear one", async () => {
    const lin = values(await sensitivityMax(new Saliency(linear), linX, { target: 0, abs: false }));
    lin.forEach((v) => expect(v).toBeLessThan(1e-5));
    const conv = values(await sensitivityMax(new Saliency(cnn), cnnX, { target: 1, perturbRadius: 0.2, nPerturbSamples: 4 }));
    conv.forEach((v) => expect(v).toBeGreaterThan(1e-4));
  });
  test("an explainer function gives the same zero, and bad options are rejected", async () => {
    const sal = new Saliency(linear);
    const fn = (x: Tensor | Tensor[], o: Record<string, unknown>) => sal.attribute(x as Tensor, { target: o.target as number, abs: false });
    values(await sensitivityMax(fn, linX, { target: 0, nPerturbSamples: 3 })).forEach((v) => expect(v).toBeLessThan(1e-5));
    await expect(sensitivityMax(sal, linX, { target: 0, perturbRadius: -1 })).rejects.toThrow(/perturbRadius/);
    await expect(sensitivityMax(sal, linX, { target: 0, normOrd: "x" as "fro" })).rejects.toThrow(/normOrd/);
  });
});
