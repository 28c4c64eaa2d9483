// Turns user options into what the native worker takes: tensors become
// native handles, everything else passes through as plain data. The native
// core validates every value (one place, with messages naming the option).
import { Tensor } from "./tensor";
import { DisposableHandle } from "./disposable";
import type { NativeTensor } from "./native";

export function toNative(value: unknown): unknown {
  if (value instanceof DisposableHandle) return value.native; // a Tensor or a Model
  if (value instanceof Tensor) return value.native;
  if (Array.isArray(value)) return value.map(toNative);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toNative(v);
    return out;
  }
  return value;
}

/**
 * A JavaScript callback the native core calls with native tensors (or arrays
 * of them, or numbers): wrapped so that the caller's function sees Tensors and
 * hands Tensors back.
 */
export function tensorCallback<F extends (...args: never[]) => unknown>(fn: F): (...args: unknown[]) => unknown {
  const wrap = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(wrap) : v !== null && typeof v === "object" && !(v instanceof Tensor) ? new Tensor(v as NativeTensor) : v;
  return (...args: unknown[]) => toNative((fn as unknown as (...a: unknown[]) => unknown)(...args.map(wrap)));
}
