// Sensitivity-max (Captum's captum.metrics.sensitivity_max): the largest
// relative change of an explanation under small perturbations of the inputs.
import { Attribution, Inputs, runAlgorithm } from "../attribution";
import { tensorCallback } from "../options";
import { Tensor, tensor } from "../tensor";
import type { AttributeOptions } from "../types";
import { TorchExplainError } from "../errors";

export interface SensitivityOptions extends AttributeOptions {
  /**
   * How the inputs are perturbed: by default uniformly in the L∞ ball of
   * `perturbRadius`; `{ type: "gaussian", stdev }`; or a synchronous function
   * `(inputs, radius) => perturbedInputs`.
   */
  perturbFunc?: { type: "uniform"; radius?: number } | { type: "gaussian"; stdev?: number } | ((inputs: Tensor | Tensor[], radius: number) => Tensor | Tensor[]);
  /** Radius of the default perturbation (default 0.02). */
  perturbRadius?: number;
  /** Perturbed copies per example (default 10). */
  nPerturbSamples?: number;
  /** The norm: "fro" (default, the L2 norm of the flattened explanation), "inf", or a number p. */
  normOrd?: "fro" | "inf" | number;
  /** Most perturbed rows per batch (default: all samples at once). */
  maxExamplesPerBatch?: number;
  /** The explainer's own options (target, baselines, nSteps...) go here too, as in the reference. */
  [explainerOption: string]: unknown;
}

/** An explainer: an attribution object of this library, or a function resolving to attributions. */
export type Explainer = Attribution | ((inputs: Tensor | Tensor[], options: Record<string, unknown>) => Promise<Tensor | Tensor[]>);

const OWN = ["perturbFunc", "perturbRadius", "nPerturbSamples", "normOrd", "maxExamplesPerBatch"];

/** Sensitivity of an explanation per example: a Tensor [batch]. Lower is better. */
export async function sensitivityMax(explainer: Explainer, inputs: Inputs, options: SensitivityOptions = {}): Promise<Tensor> {
  if (explainer instanceof Attribution) {
    const { algorithm, init } = explainer.nativeCall();
    const { perturbFunc } = options;
    const perturb = typeof perturbFunc === "function" ? tensorCallback(perturbFunc) : perturbFunc;
    const r = await runAlgorithm(explainer.model, "SensitivityMax", inputs, { ...init, ...options, perturbFunc: perturb, explainer: algorithm });
    return r.attributions[0];
  }
  if (typeof explainer !== "function") throw new TorchExplainError("explainer: expected an attribution object or a function", "ERR_BAD_OPTION");
  return sensitivityOfFunction(explainer, inputs, options);
}

// A caller's explainer runs in JavaScript: perturbations and norms are done
// here on plain arrays, one explainer call per batch of perturbed copies.
async function sensitivityOfFunction(explain: Exclude<Explainer, Attribution>, inputs: Inputs, options: SensitivityOptions): Promise<Tensor> {
  const list = Array.isArray(inputs) ? inputs : [inputs];
  const explainerOptions = Object.fromEntries(Object.entries(options).filter(([k]) => !OWN.includes(k)));
  const samples = options.nPerturbSamples ?? 10;
  const radius = options.perturbRadius ?? 0.02;
  if (!Number.isInteger(samples) || samples < 1) throw new TorchExplainError(`nPerturbSamples: expected an integer >= 1, got ${samples}`, "ERR_BAD_OPTION");
  if (!(radius >= 0)) throw new TorchExplainError(`perturbRadius: expected a number >= 0, got ${radius}`, "ERR_BAD_OPTION");
  const ord = options.normOrd ?? "fro";
  const norm = (v: Float64Array) => {
    if (ord === "inf") return v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const p = ord === "fro" ? 2 : ord;
    return Math.pow(v.reduce((s, x) => s + Math.pow(Math.abs(x), p), 0), 1 / p);
  };
  const batch = list[0].shape[0];
  const flat = (ts: Tensor | Tensor[]) => {
    const arr = Array.isArray(ts) ? ts : [ts];
    const rows: Float64Array[] = [];
    for (let b = 0; b < batch; b++) {
      const parts = arr.map((t) => {
        const d = t.data() as Float32Array, per = d.length / batch;
        return Float64Array.from(d.subarray(b * per, (b + 1) * per));
      });
      const row = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) row.set(p, (o += p.length) - p.length);
      rows.push(row);
    }
    return rows;
  };
  const original = flat(await explain(inputs, explainerOptions));
  const scale = original.map((r) => norm(r) || 1);
  const best = new Float64Array(batch);
  for (let s = 0; s < samples; s++) {
    const perturbed = list.map((t) => {
      const d = t.data() as Float32Array;
      return tensor(Float32Array.from(d, (x) => x + (Math.random() * 2 - 1) * radius), t.shape);
    });
    const fn = options.perturbFunc;
    const moved = typeof fn === "function" ? fn(Array.isArray(inputs) ? list : list[0], radius) : Array.isArray(inputs) ? perturbed : perturbed[0];
    const changed = flat(await explain(moved, explainerOptions));
    for (let b = 0; b < batch; b++) {
      const diff = changed[b].map((x, i) => x - original[b][i]);
      best[b] = Math.max(best[b], norm(diff) / scale[b]);
    }
  }
  return tensor(Float32Array.from(best), [batch]);
}
