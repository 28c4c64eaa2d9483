// Turns user options into what the native worker takes: tensors become
// native handles, everything else passes through as plain data. The native
// core validates every value (one place, with messages naming the option).
import { Tensor } from "./tensor";

export function toNative(value: unknown): unknown {
  if (value instanceof Tensor) return value.native;
  if (Array.isArray(value)) return value.map(toNative);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toNative(v);
    return out;
  }
  return value;
}
