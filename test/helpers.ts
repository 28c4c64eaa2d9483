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

export interface Tolerance {
  rtol?: number;
  atol?: number;
}
type Numbers = Tensor | ArrayLike<number> | number;
const isTensor = (v: Numbers): v is Tensor => typeof v === "object" && typeof (v as Tensor).data === "function";
const asNumbers = (v: Numbers): number[] => (typeof v === "number" ? [v] : isTensor(v) ? values(v) : Array.from(v));

/** Absolute tolerance for a value that is zero by construction (e.g. attribution outside a mask). */
export const STRUCTURAL_ZERO = 1e-7;

/**
 * Float32-aware comparison: every element must satisfy
 * |actual - expected| <= atol + rtol*|expected|, with by default atol = 1e-5 * max(1, max|expected|)
 * and rtol = 1e-5 (bit-exact results differ between CPUs and kernel paths by a few ulps).
 * A number as `expected` is compared against every element; tensors must agree in shape.
 */
export function expectClose(actual: Numbers, expected: Numbers, opts: Tolerance = {}): void {
  if (isTensor(actual) && isTensor(expected)) expect(actual.shape).toEqual(expected.shape);
  const a = asNumbers(actual);
  const e = typeof expected === "number" ? a.map(() => expected) : asNumbers(expected);
  expect(a.length).toBe(e.length);
  const rtol = opts.rtol ?? 1e-5, atol = opts.atol ?? 1e-5 * e.reduce((m, x) => Math.max(m, Math.abs(x)), 1);
  const bad = a.findIndex((x, i) => !(Math.abs(x - e[i]) <= atol + rtol * Math.abs(e[i])));
  if (bad >= 0) throw new Error(`expectClose: element ${bad} is ${a[bad]}, expected ${e[bad]} (atol ${atol}, rtol ${rtol})`);
}
