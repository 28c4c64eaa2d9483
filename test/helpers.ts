// Shared by the test files: fixtures, golden tensors and the comparison rule.
import * as fs from "fs";
import * as path from "path";
import { Tensor, tensor, DType } from "../lib";

export const GOLDEN = path.join(__dirname, "fixtures", "golden");
export const MODELS = path.join(__dirname, "..", "models");

export interface GoldenTensor {
  shape: number[];
  dtype: DType;
  data: number[];
}

export function isGoldenTensor(v: unknown): v is GoldenTensor {
  return typeof v === "object" && v !== null && "shape" in v && "dtype" in v && "data" in v;
}

export function fromGolden(t: GoldenTensor): Tensor {
  return tensor(t.data, t.shape, t.dtype);
}

/** Golden option values with tensors made native, recursively. */
export function reviveOptions(v: unknown): unknown {
  if (isGoldenTensor(v)) return fromGolden(v);
  if (Array.isArray(v)) return v.map(reviveOptions);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reviveOptions(x)]));
  return v;
}

export function values(t: Tensor): number[] {
  return Array.from(t.data() as ArrayLike<number | bigint>, Number);
}

/**
 * The golden README's rule: |actual - expected| <= rtol*|expected| + 1e-4*max(1, max|expected|)
 * for every element. Returns a description of the first failure, or null.
 */
export function mismatch(actual: Tensor, expected: { shape: number[]; data: number[] }, rtol: number): string | null {
  if (JSON.stringify(actual.shape) !== JSON.stringify(expected.shape))
    return `shape [${actual.shape}] != expected [${expected.shape}]`;
  const a = values(actual);
  const scale = 1e-4 * Math.max(1, ...expected.data.map(Math.abs));
  for (let i = 0; i < a.length; i++) {
    const e = expected.data[i];
    if (!(Math.abs(a[i] - e) <= rtol * Math.abs(e) + scale)) return `element ${i}: ${a[i]} != expected ${e}`;
  }
  return null;
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, "utf8")) as T;
}

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = values(a), y = values(b);
  if (x.length !== y.length) return Infinity;
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}
