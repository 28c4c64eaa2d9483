// The model-parameter randomisation sanity check (Adebayo et al., 2018),
// beyond the reference: an explanation that does not change when the model's
// weights are randomised, layer by layer from the top, explains nothing about
// what the model learned.
import { Attribution, Inputs } from "../attribution";
import { Model } from "../model";
import { Tensor, tensor } from "../tensor";
import { TorchExplainError } from "../errors";

export interface RandomizationOptions {
  /** Layers in cascade order (default: the model's leaf layers that hold parameters, last first). */
  layers?: string[];
  /** Compare absolute attributions (default true, as the paper does). */
  abs?: boolean;
  /** Seed of the redrawn weights (default 0). */
  seed?: number;
  /** Options for every attribute() call (target, nSteps, ...). */
  attributeOptions?: Record<string, unknown>;
  signal?: AbortSignal;
}

export interface RandomizationResult {
  /** The cascade: after step k, layers[0..k] are randomised. */
  layers: string[];
  /** Spearman rank correlation with the original attributions: [layers, batch]. Near 1 is a warning sign. */
  rankCorrelation: Tensor;
}

/**
 * Cascading randomisation: `explainer(model)` makes the attribution method for
 * a model (the original, then each randomised copy).
 */
export async function parameterRandomization(
  model: Model,
  explainer: (model: Model) => Attribution,
  inputs: Inputs,
  options: RandomizationOptions = {},
): Promise<RandomizationResult> {
  if (typeof explainer !== "function") throw new TorchExplainError("explainer: expected a function (model) => attribution method", "ERR_BAD_OPTION");
  // The leaf layers that hold parameters (a ReLU's randomisation would repeat the row before it).
  const all = model.layers({ withParameters: true });
  const layers = options.layers ?? all.filter((l) => !all.some((o) => o.startsWith(`${l}.`))).reverse();
  if (!Array.isArray(layers) || layers.length === 0) throw new TorchExplainError("layers: expected at least one layer to randomise", "ERR_BAD_OPTION");
  const abs = options.abs ?? true;
  const run = async (m: Model) => {
    const a = (await explainer(m).attribute(inputs, { ...options.attributeOptions, signal: options.signal })) as Tensor | Tensor[] | { attributions: Tensor | Tensor[] };
    const t = a instanceof Tensor || Array.isArray(a) ? a : a.attributions;
    return perExample(Array.isArray(t) ? t : [t], abs);
  };
  const original = await run(model);
  const batch = original.length;
  const out = new Float32Array(layers.length * batch);
  for (let k = 0; k < layers.length; k++) {
    const copy = model.randomized(layers.slice(0, k + 1), options.seed ?? 0);
    try {
      const changed = await run(copy);
      for (let b = 0; b < batch; b++) out[k * batch + b] = spearman(original[b], changed[b]);
    } finally {
      copy.dispose();
    }
  }
  return { layers, rankCorrelation: tensor(out, [layers.length, batch]) };
}

function perExample(ts: Tensor[], abs: boolean): Float64Array[] {
  const batch = ts[0].shape[0];
  return Array.from({ length: batch }, (_, b) => {
    const parts = ts.map((t) => {
      const d = t.data() as Float32Array, per = d.length / batch;
      return Array.from(d.subarray(b * per, (b + 1) * per), (v) => (abs ? Math.abs(v) : v));
    });
    return Float64Array.from(parts.flat());
  });
}

// Ranks with ties sharing their mean rank.
function ranks(v: Float64Array): Float64Array {
  const order = Array.from(v.keys()).sort((i, j) => v[i] - v[j]);
  const r = new Float64Array(v.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && v[order[j + 1]] === v[order[i]]) j++;
    for (let k = i; k <= j; k++) r[order[k]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

/** @internal Spearman rank correlation (0 when either side is constant). */
export function spearman(a: Float64Array, b: Float64Array): number {
  const ra = ranks(a), rb = ranks(b), n = a.length;
  const ma = ra.reduce((s, x) => s + x, 0) / n, mb = rb.reduce((s, x) => s + x, 0) / n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da === 0 || db === 0 ? 0 : num / Math.sqrt(da * db);
}
