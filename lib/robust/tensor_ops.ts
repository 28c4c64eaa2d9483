// Row-wise tensor helpers for the JavaScript-side metrics (batching several
// perturbed copies into one forward call and splitting the output again).
// Joining and cutting rows runs natively; no data goes through JavaScript.
import { Tensor, tensor, DType, TypedData } from "../tensor";
import { TorchExplainError, abortError, guard } from "../errors";
import { native } from "../native";
import type { Model } from "../model";
import type { ForwardArg, TargetType } from "../types";

/** A tensor from a flat typed array, moved to `device` when that is not the CPU. */
export function fromData(data: TypedData, shape: number[], dtype: DType, device = "cpu"): Tensor {
  const t = tensor(data, shape, dtype);
  if (device === "cpu") return t;
  const moved = t.to(device);
  t.dispose();
  return moved;
}

/** torch.cat(list, dim=0), natively; every tensor must share dtype and the shape after dim 0. */
export function concatRows(list: Tensor[], what = "inputs"): Tensor {
  if (list.length === 1) return list[0];
  try {
    return new Tensor(native.catRows(list.map((t) => t.native)));
  } catch (e) {
    throw new TorchExplainError(`${what}: ${(e as Error).message.replace(/^tensors/, "item")}`, "ERR_BAD_SHAPE");
  }
}

/** t[start:end] along dim 0 (a copy, natively). */
export function sliceRows(t: Tensor, start: number, end: number): Tensor {
  return guard(() => new Tensor(native.sliceRows(t.native, start, end)));
}

/** torch.cat([t] * n, dim=0); a 0-dim tensor is returned as it is (as the reference expands forward args). */
export function repeatRows(t: Tensor, n: number): Tensor {
  if (n === 1 || t.shape.length === 0) return t;
  return concatRows(Array.from({ length: n }, () => t));
}

/** Inputs as a list, and whether they came as an array. */
export function asList(inputs: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(inputs) ? inputs : [inputs];
}

export function isInputs(v: unknown): v is Tensor | Tensor[] {
  return v instanceof Tensor || (Array.isArray(v) && v.length > 0 && v.every((t) => t instanceof Tensor));
}

/** Concatenates items that are each a Tensor or an array of Tensors (same structure) along dim 0. */
export function concatInputs(items: (Tensor | Tensor[])[], what: string): Tensor | Tensor[] {
  if (items.length === 1) return items[0];
  if (items.every((x) => x instanceof Tensor)) return concatRows(items as Tensor[], what);
  const n = Array.isArray(items[0]) ? items[0].length : -1;
  if (n < 0 || !items.every((x) => Array.isArray(x) && x.length === n))
    throw new TorchExplainError(`${what}: cannot batch items of different structure (a Tensor with an array, or arrays of different lengths)`, "ERR_BAD_SHAPE");
  return Array.from({ length: n }, (_, j) => concatRows(items.map((x) => (x as Tensor[])[j]), `${what}[${j}]`));
}

export function batchSize(item: Tensor | Tensor[]): number {
  const t = Array.isArray(item) ? item[0] : item;
  return t.shape.length === 0 ? 1 : t.shape[0];
}

/** Additional forward args for `n` stacked copies of the batch: tensors repeated along dim 0. */
export function expandForwardArgs(args: ForwardArg[] | undefined, n: number): ForwardArg[] | undefined {
  if (!args || n === 1) return args;
  return args.map((a) => (a instanceof Tensor ? repeatRows(a, n) : a));
}

/** What the JavaScript-side metrics call: a loaded Model, or a function standing in for forward(). */
export type ForwardFunc = Model | ((inputs: Tensor | Tensor[], additionalForwardArgs?: ForwardArg[]) => Tensor | Promise<Tensor>);

export async function runForward(
  model: ForwardFunc,
  inputs: Tensor | Tensor[],
  args: ForwardArg[] | undefined,
  signal?: AbortSignal,
): Promise<Tensor> {
  throwIfAborted(signal);
  if (typeof model === "function") {
    const out = await model(inputs, args);
    if (!(out instanceof Tensor)) throw new TorchExplainError("model: the forward function must return a Tensor (or a Promise of one)", "ERR_BAD_OPTION");
    return out;
  }
  return model.forward(inputs, args, { signal });
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal.reason);
}

export function checkModel(model: unknown, who: string): void {
  const isModel = typeof model === "object" && model !== null && typeof (model as Model).forward === "function";
  if (!isModel && typeof model !== "function")
    throw new TorchExplainError(`model: ${who} expects a Model from loadModel() or a forward function`, "ERR_BAD_OPTION");
}

/** Rejects keys of `options` that are not in `known`, naming the first. */
export function checkKeys(options: object | undefined, known: readonly string[], who: string): void {
  for (const k of Object.keys(options ?? {}))
    if (!known.includes(k)) throw new TorchExplainError(`${who}: unknown option ${k} (options: ${known.join(", ")})`, "ERR_BAD_OPTION");
}

/** Numbers of a tensor as float64. */
export function numbers(t: Tensor): Float64Array {
  const d = t.data();
  if (d instanceof BigInt64Array) return Float64Array.from(d, Number);
  return Float64Array.from(d as ArrayLike<number>);
}

/**
 * Each example's target as an index tuple into its output row ([] for a model
 * that returns one value per example), from TargetType with the library's broadcasting.
 */
export function targetTuples(target: TargetType | undefined, batch: number): number[][] {
  if (target === undefined || target === null) return Array.from({ length: batch }, () => []);
  if (typeof target === "number") return Array.from({ length: batch }, () => [target]);
  let list: (number | number[])[];
  if (target instanceof Tensor) list = Array.from(numbers(target));
  else if (Array.isArray(target)) list = target as (number | number[])[];
  else throw new TorchExplainError("target: expected a number, an array or a Tensor of integers", "ERR_BAD_TARGET");
  if (list.length !== 1 && list.length !== batch)
    throw new TorchExplainError(`target: ${list.length} targets for ${batch} examples; give one per example or one for all`, "ERR_BAD_TARGET");
  return Array.from({ length: batch }, (_, i) => {
    const t = list.length === 1 ? list[0] : list[i];
    const tuple = Array.isArray(t) ? t : [t];
    if (!tuple.every((v) => Number.isInteger(v))) throw new TorchExplainError(`target: expected integers, got ${JSON.stringify(t)}`, "ERR_BAD_TARGET");
    return tuple;
  });
}

/** Flat offset of `tuple` inside one output row of shape `rowShape`. */
export function targetOffset(tuple: number[], rowShape: number[]): number {
  if (tuple.length === 0 && rowShape.every((d) => d === 1)) return 0;
  if (tuple.length !== rowShape.length)
    throw new TorchExplainError(
      rowShape.every((d) => d === 1)
        ? `target: the model returns one value per example; leave target out`
        : `target: selects ${tuple.length} index(es) after the batch dimension, but the model output has shape [N, ${rowShape}]`,
      "ERR_BAD_TARGET",
    );
  let off = 0;
  for (let d = 0; d < tuple.length; d++) {
    let i = tuple[d];
    if (i < 0) i += rowShape[d];
    if (i < 0 || i >= rowShape[d]) throw new TorchExplainError(`target: index ${tuple[d]} is out of range for output dimension ${d + 1} of size ${rowShape[d]}`, "ERR_BAD_TARGET");
    off = off * rowShape[d] + i;
  }
  return off;
}
