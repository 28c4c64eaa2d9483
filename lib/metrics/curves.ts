// Attribution metrics beyond the reference, as the literature defines them:
// deletion and insertion curves with their areas (Petsiuk et al. 2018, RISE),
// faithfulness correlation (Bhatt et al. 2020) and sparseness as the Gini
// index of |attributions| (Chalasani et al. 2020). For a loaded Model the
// masked copies are built and scored natively (MaskedScores), chunk by chunk;
// a JavaScript function standing in for the model gets batches built here.
import { Tensor, DType, TypedData, TYPED, tensor } from "../tensor";
import { Model } from "../model";
import { runAlgorithm } from "../attribution";
import { TorchExplainError } from "../errors";
import type { Inputs } from "../attribution";
import type { BaselineType, ForwardArg, TargetType } from "../types";
import { ForwardFunc, checkKeys, checkModel, fromData, numbers, runForward, targetOffset, targetTuples, throwIfAborted } from "../robust/tensor_ops";
import { seededRandom } from "../random";

export type RelevanceOrder = "most-relevant-first" | "least-relevant-first";

interface CommonOptions {
  /** Which output each example's score reads (as for attributions); leave out for a model with one value per example. */
  target?: TargetType;
  /** What a removed feature becomes: a number, a tensor shaped like the input or like one example, or one per input (default 0). */
  baselines?: BaselineType;
  additionalForwardArgs?: ForwardArg[];
  /** Score the softmax of a [batch, classes] output instead of the raw output. */
  softmax?: boolean;
  /** Rows (perturbed examples) per forward pass (default 128). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called with (rows done, rows total) after each forward pass. */
  onProgress?: (done: number, total: number) => void;
}

export interface CurveOptions extends CommonOptions {
  /** Points of the curve after the first (default 20): fractions 0, 1/steps, ..., 1 of the features. */
  steps?: number;
  /** Order in which features are deleted or inserted (default most-relevant-first). */
  order?: RelevanceOrder;
  /** Rank by |attribution| instead of the signed value (default false). */
  abs?: boolean;
}

export interface CurveResult {
  /** The fraction of features deleted (inserted) at each point: k / steps. */
  fractions: number[];
  /** The target score at each point, [batch, steps + 1]. */
  scores: Tensor;
  /** Area under each example's curve (trapezoid rule over fractions in [0, 1]), [batch]. */
  auc: Tensor;
}

export interface FaithfulnessOptions extends CommonOptions {
  /** Features set to the baseline in each random subset (default: a quarter of each example's features, at least 1). */
  subsetSize?: number;
  /** Random subsets per example (default 50). */
  nSamples?: number;
  /** Seeds the subset sampling (default: a random seed). */
  seed?: number;
}

const COMMON = ["target", "baselines", "additionalForwardArgs", "softmax", "batchSize", "signal", "onProgress"];
const CURVE_OPTIONS = [...COMMON, "steps", "order", "abs"];
const FAITHFULNESS_OPTIONS = [...COMMON, "subsetSize", "nSamples", "seed"];

function typedFrom(values: ArrayLike<number>, dtype: DType): TypedData {
  const out = new TYPED[dtype](values.length);
  if (out instanceof BigInt64Array) for (let i = 0; i < values.length; i++) out[i] = BigInt(Math.round(values[i]));
  else (out as Float64Array).set(values);
  return out;
}

/** The inputs, attributions and baselines of a metric call as flat per-input arrays, with each example's features concatenated over inputs. */
interface Prepared {
  list: Tensor[];
  isArray: boolean;
  batch: number;
  sizes: number[]; // elements per example, per input
  offsets: number[]; // start of each input in the concatenated feature vector
  features: number; // features per example, all inputs together
  data: TypedData[]; // per input, the whole batch
  base: { data: TypedData; perExample: boolean }[];
  attr: Float64Array[]; // per example, its features' attributions
}

function asList(v: unknown, name: string): Tensor[] {
  const list = v instanceof Tensor ? [v] : Array.isArray(v) && v.length > 0 && v.every((t) => t instanceof Tensor) ? (v as Tensor[]) : null;
  if (!list) throw new TorchExplainError(`${name}: expected a Tensor or a non-empty array of Tensors`, "ERR_BAD_OPTION");
  return list;
}

function prepare(inputs: Inputs, attributions: Inputs | undefined, baselines: BaselineType | undefined): Prepared {
  const list = asList(inputs, "inputs");
  const batch = list[0].shape[0];
  for (const [i, t] of list.entries())
    if (t.shape.length === 0 || t.shape[0] !== batch || batch === 0)
      throw new TorchExplainError(`inputs[${i}]: shape [${t.shape}]; every input needs the same non-empty batch dimension`, "ERR_BAD_SHAPE");
  const sizes = list.map((t) => t.shape.slice(1).reduce((a, b) => a * b, 1));
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const features = sizes.reduce((a, b) => a + b, 0);
  const data = list.map((t) => t.data());
  let baseList: (number | Tensor)[];
  if (baselines === undefined) baseList = list.map(() => 0);
  else if (Array.isArray(baselines)) baseList = baselines;
  else baseList = list.map(() => baselines);
  if (baseList.length !== list.length) throw new TorchExplainError(`baselines: ${baseList.length} for ${list.length} inputs; give one per input`, "ERR_BAD_SHAPE");
  const base = baseList.map((b, i) => {
    const t = list[i];
    if (typeof b === "number") return { data: typedFrom(new Float64Array(sizes[i]).fill(b), t.dtype), perExample: false };
    if (!(b instanceof Tensor)) throw new TorchExplainError(`baselines[${i}]: expected a number or a Tensor`, "ERR_BAD_OPTION");
    const same = JSON.stringify(b.shape) === JSON.stringify(t.shape);
    const one = JSON.stringify(b.shape) === JSON.stringify([1, ...t.shape.slice(1)]);
    if (!same && !one)
      throw new TorchExplainError(`baselines[${i}]: shape [${b.shape}] does not match input ${i} of shape [${t.shape}]; expected [${t.shape}] or [1, ${t.shape.slice(1)}]`, "ERR_BAD_SHAPE");
    return { data: typedFrom(numbers(b), t.dtype), perExample: same && batch > 1 };
  });
  let attr: Float64Array[] = [];
  if (attributions !== undefined) {
    const alist = asList(attributions, "attributions");
    if (alist.length !== list.length) throw new TorchExplainError(`attributions: ${alist.length} tensors for ${list.length} inputs`, "ERR_BAD_SHAPE");
    attr = Array.from({ length: batch }, () => new Float64Array(features));
    alist.forEach((a, i) => {
      if (JSON.stringify(a.shape) !== JSON.stringify(list[i].shape))
        throw new TorchExplainError(`attributions[${i}]: shape [${a.shape}] does not match input ${i} of shape [${list[i].shape}]`, "ERR_BAD_SHAPE");
      const v = numbers(a);
      for (let b = 0; b < batch; b++) attr[b].set(v.subarray(b * sizes[i], (b + 1) * sizes[i]), offsets[i]);
    });
  }
  return { list, isArray: Array.isArray(inputs), batch, sizes, offsets, features, data, base, attr };
}

function positiveInt(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new TorchExplainError(`${name}: expected an integer >= 1, got ${String(v)}`, "ERR_BAD_OPTION");
  return v;
}

/**
 * Scores `rows` perturbed examples: row r is example exampleOf(r) with the
 * features where keep(r) is false set to the baseline (keep: one flag per
 * feature, true = the input's value). Rows go through the model batchSize at a time.
 */
async function scoreRows(
  model: ForwardFunc,
  p: Prepared,
  rows: number,
  exampleOf: (r: number) => number,
  keep: (r: number) => Uint8Array,
  options: CommonOptions,
): Promise<Float64Array> {
  const batchSize = positiveInt(options.batchSize, "batchSize", 128);
  const tuples = targetTuples(options.target, p.batch);
  const scores = new Float64Array(rows);
  const { signal, onProgress } = options;
  for (let start = 0; start < rows; start += batchSize) {
    throwIfAborted(signal);
    const n = Math.min(batchSize, rows - start);
    const buffers = p.list.map((t, i) => new TYPED[t.dtype](n * p.sizes[i]));
    for (let j = 0; j < n; j++) {
      const r = start + j, b = exampleOf(r), mask = keep(r);
      p.list.forEach((_, i) => {
        const size = p.sizes[i], off = p.offsets[i];
        const src = p.data[i], base = p.base[i];
        const dst = buffers[i] as Float64Array, s = src as Float64Array, bd = base.data as Float64Array;
        const srcAt = b * size, baseAt = base.perExample ? b * size : 0, dstAt = j * size;
        for (let e = 0; e < size; e++) dst[dstAt + e] = mask[off + e] ? s[srcAt + e] : bd[baseAt + e];
      });
    }
    const batchInputs = buffers.map((d, i) => fromData(d, [n, ...p.list[i].shape.slice(1)], p.list[i].dtype, p.list[i].device));
    // Tensor forward args whose first dimension is the batch follow each row's example.
    const examples = Array.from({ length: n }, (_, j) => exampleOf(start + j));
    const args = options.additionalForwardArgs?.map((a) => (a instanceof Tensor && a.shape.length > 0 && a.shape[0] === p.batch ? gatherRows(a, examples) : a));
    const out = await runForward(model, p.isArray ? batchInputs : batchInputs[0], args, signal);
    if (out.shape.length === 0 || out.shape[0] !== n)
      throw new TorchExplainError(`model: returned shape [${out.shape}] for ${n} rows; these metrics need one output row per example`, "ERR_BAD_SHAPE");
    const rowShape = out.shape.slice(1);
    const width = rowShape.reduce((a, b) => a * b, 1);
    const values = numbers(out);
    if (options.softmax) {
      if (rowShape.length !== 1) throw new TorchExplainError(`softmax: needs a [batch, classes] output, got shape [${out.shape}]`, "ERR_BAD_OPTION");
      for (let j = 0; j < n; j++) {
        const row = values.subarray(j * width, (j + 1) * width);
        const m = Math.max(...row);
        let z = 0;
        for (let c = 0; c < width; c++) z += row[c] = Math.exp(row[c] - m);
        for (let c = 0; c < width; c++) row[c] /= z;
      }
    }
    for (let j = 0; j < n; j++) scores[start + j] = values[j * width + targetOffset(tuples[exampleOf(start + j)], rowShape)];
    for (const t of batchInputs) t.dispose();
    if (typeof model !== "function") out.dispose();
    onProgress?.(Math.min(start + n, rows), rows);
  }
  return scores;
}

/**
 * The same scores for a loaded Model, natively: rows are example-major, each
 * example's `groups` orderings (orders[b * groups + g]) times `counts`; row
 * (g, k) sets the first counts[k] features of ordering g to the baseline
 * (deletion) or takes only those from the input (insertion). The rows are
 * built chunk by chunk in the native core.
 */
async function nativeScores(
  model: Model,
  inputs: Inputs,
  orders: Int32Array[],
  counts: number[],
  mode: "deletion" | "insertion",
  options: CommonOptions,
): Promise<Float64Array> {
  const features = orders[0].length;
  const flat = new BigInt64Array(orders.length * features);
  orders.forEach((o, i) => {
    for (let j = 0; j < features; j++) flat[i * features + j] = BigInt(o[j]);
  });
  const order = tensor(flat, [orders.length, features], "int64");
  try {
    const r = await runAlgorithm(model, "MaskedScores", inputs, {
      order,
      counts,
      mode,
      softmax: options.softmax ?? false,
      baselines: options.baselines,
      target: options.target,
      additionalForwardArgs: options.additionalForwardArgs,
      internalBatchSize: options.batchSize,
      signal: options.signal,
      onProgress: options.onProgress,
    });
    return Float64Array.from(r.attributions[0].data() as Float64Array);
  } finally {
    order.dispose();
  }
}

function gatherRows(t: Tensor, rows: number[]): Tensor {
  const size = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const src = t.data();
  const out = new TYPED[t.dtype](rows.length * size);
  rows.forEach((r, j) => (out as Float64Array).set((src as Float64Array).subarray(r * size, (r + 1) * size), j * size));
  return fromData(out, [rows.length, ...t.shape.slice(1)], t.dtype, t.device);
}


function outDtype(p: Prepared): DType {
  return p.list.some((t) => t.dtype === "float64") ? "float64" : "float32";
}

function order(attr: Float64Array, how: RelevanceOrder, abs: boolean): Int32Array {
  const key = abs ? Array.from(attr, Math.abs) : Array.from(attr);
  const idx = Array.from({ length: attr.length }, (_, i) => i);
  // Stable: equal attributions keep their element order.
  idx.sort(how === "most-relevant-first" ? (a, b) => key[b] - key[a] || a - b : (a, b) => key[a] - key[b] || a - b);
  return Int32Array.from(idx);
}

function checkModelAndOptions(model: unknown, options: object | undefined, known: string[], who: string) {
  checkModel(model, who);
  checkKeys(options, known, who);
}

async function curve(kind: "deletion" | "insertion", model: ForwardFunc, inputs: Inputs, attributions: Inputs, options: CurveOptions): Promise<CurveResult> {
  const who = kind === "deletion" ? "deletionCurve" : "insertionCurve";
  checkModelAndOptions(model, options, CURVE_OPTIONS, who);
  const steps = positiveInt(options.steps, "steps", 20);
  const how = options.order ?? "most-relevant-first";
  if (how !== "most-relevant-first" && how !== "least-relevant-first")
    throw new TorchExplainError(`order: expected "most-relevant-first" or "least-relevant-first", got ${String(how)}`, "ERR_BAD_OPTION");
  throwIfAborted(options.signal);
  const p = prepare(inputs, attributions, options.baselines);
  const orders = p.attr.map((a) => order(a, how, options.abs ?? false));
  const counts = Array.from({ length: steps + 1 }, (_, k) => Math.round((k * p.features) / steps));
  const points = steps + 1;
  const keep = (r: number) => {
    const b = Math.floor(r / points), k = r % points;
    // Deletion keeps all but the first counts[k] ranked features; insertion keeps only those.
    const mask = new Uint8Array(p.features).fill(kind === "deletion" ? 1 : 0);
    for (let j = 0; j < counts[k]; j++) mask[orders[b][j]] = kind === "deletion" ? 0 : 1;
    return mask;
  };
  const scores =
    model instanceof Model
      ? await nativeScores(model, inputs, orders, counts, kind, options)
      : await scoreRows(model, p, p.batch * points, (r) => Math.floor(r / points), keep, options);
  const fractions = counts.map((_, k) => k / steps);
  const auc = new Float64Array(p.batch);
  for (let b = 0; b < p.batch; b++)
    for (let k = 0; k < steps; k++) auc[b] += ((scores[b * points + k] + scores[b * points + k + 1]) / 2) * (fractions[k + 1] - fractions[k]);
  const dtype = outDtype(p);
  return { fractions, scores: fromData(typedFrom(scores, dtype), [p.batch, points], dtype), auc: fromData(typedFrom(auc, dtype), [p.batch], dtype) };
}

/**
 * Deletion curve: each example's target score as its features are set to the
 * baseline in attribution order (most relevant first by default), at fractions
 * 0, 1/steps, ..., 1 of its features. Good attributions make it fall fast (low AUC).
 */
export function deletionCurve(model: ForwardFunc, inputs: Inputs, attributions: Inputs, options: CurveOptions = {}): Promise<CurveResult> {
  return curve("deletion", model, inputs, attributions, options);
}

/**
 * Insertion curve: each example starts at the baseline and gets its features
 * back in attribution order. Good attributions make it rise fast (high AUC).
 */
export function insertionCurve(model: ForwardFunc, inputs: Inputs, attributions: Inputs, options: CurveOptions = {}): Promise<CurveResult> {
  return curve("insertion", model, inputs, attributions, options);
}


function pearson(x: Float64Array, y: Float64Array): number {
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) (mx += x[i]), (my += y[i]);
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/**
 * Faithfulness correlation (Bhatt et al. 2020): for nSamples random subsets S
 * of each example's features, the Pearson correlation between the sum of the
 * attributions over S and the drop of the target score when S is set to the
 * baseline. [batch]; NaN where either side does not vary.
 */
export async function faithfulnessCorrelation(model: ForwardFunc, inputs: Inputs, attributions: Inputs, options: FaithfulnessOptions = {}): Promise<Tensor> {
  checkModelAndOptions(model, options, FAITHFULNESS_OPTIONS, "faithfulnessCorrelation");
  const nSamples = positiveInt(options.nSamples, "nSamples", 50);
  if (nSamples < 2) throw new TorchExplainError("nSamples: a correlation needs at least 2 samples", "ERR_BAD_OPTION");
  throwIfAborted(options.signal);
  const p = prepare(inputs, attributions, options.baselines);
  const subsetSize = positiveInt(options.subsetSize, "subsetSize", Math.max(1, Math.round(p.features / 4)));
  if (subsetSize > p.features) throw new TorchExplainError(`subsetSize: ${subsetSize} exceeds the ${p.features} features of an example`, "ERR_BAD_OPTION");
  if (options.seed !== undefined && (typeof options.seed !== "number" || !Number.isInteger(options.seed)))
    throw new TorchExplainError(`seed: expected an integer, got ${String(options.seed)}`, "ERR_BAD_OPTION");
  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  // Row b*(nSamples+1) is example b untouched; the next nSamples rows drop one subset each.
  const per = nSamples + 1;
  const masks: Uint8Array[] = [];
  const perms: Int32Array[] = []; // per (example, sample): the subset first
  const attrSums = Array.from({ length: p.batch }, () => new Float64Array(nSamples));
  for (let b = 0; b < p.batch; b++) {
    masks.push(new Uint8Array(p.features).fill(1));
    for (let s = 0; s < nSamples; s++) {
      const perm = new Int32Array(p.features);
      perms.push(perm);
      for (let i = 0; i < p.features; i++) perm[i] = i;
      const mask = new Uint8Array(p.features).fill(1);
      for (let i = 0; i < subsetSize; i++) {
        const j = i + Math.floor(random() * (p.features - i));
        [perm[i], perm[j]] = [perm[j], perm[i]];
        mask[perm[i]] = 0;
        attrSums[b][s] += p.attr[b][perm[i]];
      }
      masks.push(mask);
    }
  }
  let scores: Float64Array;
  if (model instanceof Model) {
    // Natively: the untouched examples, then every subset set to the baseline.
    const identity = Int32Array.from({ length: p.features }, (_, i) => i);
    const original = await nativeScores(model, inputs, Array.from({ length: p.batch }, () => identity), [0], "deletion", options);
    const dropped = await nativeScores(model, inputs, perms, [subsetSize], "deletion", options);
    scores = new Float64Array(p.batch * per);
    for (let b = 0; b < p.batch; b++) {
      scores[b * per] = original[b];
      scores.set(dropped.subarray(b * nSamples, (b + 1) * nSamples), b * per + 1);
    }
  } else {
    scores = await scoreRows(model, p, p.batch * per, (r) => Math.floor(r / per), (r) => masks[r], options);
  }
  const out = new Float64Array(p.batch);
  for (let b = 0; b < p.batch; b++) {
    const drops = new Float64Array(nSamples);
    for (let s = 0; s < nSamples; s++) drops[s] = scores[b * per] - scores[b * per + 1 + s];
    out[b] = pearson(attrSums[b], drops);
  }
  const dtype = outDtype(p);
  return fromData(typedFrom(out, dtype), [p.batch], dtype);
}

/**
 * Sparseness (Chalasani et al. 2020): the Gini index of each example's
 * |attributions| (all inputs together), from 0 (all equal) to (n-1)/n (one
 * non-zero value). [batch]; 0 for an all-zero example.
 */
export function sparseness(attributions: Inputs): Tensor {
  const list = asList(attributions, "attributions");
  const batch = list[0].shape[0];
  for (const [i, t] of list.entries())
    if (t.shape.length === 0 || t.shape[0] !== batch)
      throw new TorchExplainError(`attributions[${i}]: shape [${t.shape}]; every tensor needs the same batch dimension`, "ERR_BAD_SHAPE");
  const sizes = list.map((t) => t.shape.slice(1).reduce((a, b) => a * b, 1));
  const n = sizes.reduce((a, b) => a + b, 0);
  const data = list.map(numbers);
  const out = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const v = new Float64Array(n);
    let at = 0;
    data.forEach((d, i) => {
      for (let e = 0; e < sizes[i]; e++) v[at++] = Math.abs(d[b * sizes[i] + e]);
    });
    v.sort();
    let total = 0, weighted = 0;
    // Gini = sum_k (2k - n - 1) c_k / (n sum c), c ascending, k from 1.
    for (let k = 0; k < n; k++) {
      total += v[k];
      weighted += (2 * (k + 1) - n - 1) * v[k];
    }
    out[b] = total > 0 ? weighted / (n * total) : 0;
  }
  const dtype: DType = list.some((t) => t.dtype === "float64") ? "float64" : "float32";
  return fromData(typedFrom(out, dtype), [batch], dtype);
}
