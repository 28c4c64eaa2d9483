// Tensors live in native memory; JavaScript holds a handle and copies data
// out only when asked (data(), toArray()).
import { native, NativeTensor } from "./native";
import { guard, TorchExplainError } from "./errors";
import { DisposableHandle } from "./disposable";

export type DType = "float32" | "float64" | "int64" | "int32" | "bool";
export type TypedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
/** Nested arrays of numbers or booleans, one level per dimension. */
export type NestedArray = number | boolean | NestedArray[];

export class Tensor extends DisposableHandle {
  /** @internal */
  constructor(readonly native: NativeTensor) {
    super();
  }

  get shape(): number[] {
    return guard(() => this.native.shape);
  }
  get dtype(): DType {
    return guard(() => this.native.dtype as DType);
  }
  get device(): string {
    return guard(() => this.native.device);
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** A row-major copy of the values (BigInt64Array for int64, Uint8Array for bool). */
  data(): TypedData {
    return guard(() => this.native.data());
  }
  /** The values as nested arrays of numbers. */
  toArray(): NestedArray {
    const flat = Array.from(this.data() as ArrayLike<number | bigint>, Number);
    const nest = (offset: number, dim: number): NestedArray => {
      if (dim === this.shape.length) return flat[offset];
      const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.shape[dim] }, (_, i) => nest(offset + i * stride, dim + 1));
    };
    return nest(0, 0);
  }
  /** A copy on another device ("cpu", "cuda:0"). */
  to(device: string): Tensor {
    return new Tensor(guard(() => this.native.to(device)));
  }
  /** Index of the largest value along `dim` (default the last): int64, that dimension removed. */
  argmax(dim = -1): Tensor {
    return new Tensor(guard(() => native.tensorOp(this.native, "argmax", dim)));
  }
  /** Softmax along `dim` (default the last), as float32 for integer tensors. */
  softmax(dim = -1): Tensor {
    return new Tensor(guard(() => native.tensorOp(this.native, "softmax", dim)));
  }
  /** The k largest values along `dim` (default the last), largest first, and their indices. */
  topk(k: number, dim = -1): { values: Tensor; indices: Tensor } {
    const r = guard(() => native.tensorOp(this.native, "topk", k, dim));
    return { values: new Tensor(r.values!), indices: new Tensor(r.indices!) };
  }
  /** The sum of every value, or along `dim` (that dimension removed unless `keepdim`). */
  sum(dim?: number, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(guard(() => native.tensorOp(this.native, "sum", dim, !!options.keepdim)));
  }
  /** The mean of every value, or along `dim`. */
  mean(dim?: number, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(guard(() => native.tensorOp(this.native, "mean", dim, !!options.keepdim)));
  }
  /** Row i (the first dimension's entry i, that dimension removed): one example of a batch. Negative i counts from the end. */
  row(i: number): Tensor {
    return new Tensor(guard(() => native.tensorOp(this.native, "row", i)));
  }
  toString(): string {
    return `Tensor(${JSON.stringify(this.toArray())}, shape=[${this.shape}], dtype=${this.dtype})`;
  }
}

/** @internal The typed array class behind each dtype. */
export const TYPED: Record<DType, { new (n: number): TypedData }> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  bool: Uint8Array,
};

function dtypeOf(data: ArrayBufferView): DType | undefined {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  return undefined;
}

function flatten(data: NestedArray, shape: number[], out: (number | boolean)[], dim = 0): void {
  if (!Array.isArray(data)) {
    if (dim !== shape.length) throw new TorchExplainError("tensor: ragged nested array", "ERR_BAD_SHAPE");
    out.push(data);
    return;
  }
  if (dim === shape.length) shape.push(data.length);
  else if (shape[dim] !== data.length) throw new TorchExplainError(`tensor: ragged nested array at dimension ${dim}`, "ERR_BAD_SHAPE");
  for (const d of data) flatten(d, shape, out, dim + 1);
}

/**
 * Makes a tensor from nested arrays, a flat array with a shape, or a typed
 * array with a shape. The dtype defaults to the typed array's, else float32
 * (bool for booleans).
 */
export function tensor(data: NestedArray | TypedData | (number | boolean)[], shape?: number[], dtype?: DType): Tensor {
  let values: TypedData;
  if (ArrayBuffer.isView(data)) {
    const own = dtypeOf(data);
    dtype = dtype ?? own ?? (data instanceof Uint8Array ? "bool" : undefined);
    if (!dtype) throw new TorchExplainError("tensor: unsupported typed array; use Float32Array, Float64Array, BigInt64Array or Int32Array", "ERR_BAD_OPTION");
    values = own === dtype || (dtype === "bool" && data instanceof Uint8Array) ? data : convert(Array.from(data as ArrayLike<number>), dtype);
    shape = shape ?? [values.length];
  } else {
    const flat: (number | boolean)[] = [];
    const inferred: number[] = [];
    flatten(data as NestedArray, inferred, flat);
    shape = shape ?? inferred;
    dtype = dtype ?? (typeof flat[0] === "boolean" ? "bool" : "float32");
    values = convert(flat, dtype);
  }
  return new Tensor(guard(() => native.tensorFromBuffer(values, shape!, dtype!)));
}

function convert(values: (number | boolean)[], dtype: DType): TypedData {
  const Ctor = TYPED[dtype];
  if (!Ctor) throw new TorchExplainError(`tensor: dtype must be one of ${Object.keys(TYPED).join(", ")}; got '${dtype}'`, "ERR_BAD_OPTION");
  const out = new Ctor(values.length);
  values.forEach((v, i) => {
    const n = Number(v);
    if ((dtype === "int64" || dtype === "int32") && !Number.isInteger(n))
      throw new TorchExplainError(`tensor: ${dtype} values must be integers; value ${i} is ${v}`, "ERR_BAD_OPTION");
    if (dtype === "int64") (out as BigInt64Array)[i] = BigInt(n);
    else (out as Float32Array)[i] = n;
  });
  return out;
}

/** Seeds LibTorch's random generator (noise, sampled baselines, random paths). */
export function manualSeed(seed: number): void {
  guard(() => native.manualSeed(seed));
}
