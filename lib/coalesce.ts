// Requests that arrive together share passes: while calls of one model,
// method and options occupy every request worker, the calls that come for the
// same (their inputs shaped alike, each with its own target) wait, and then
// run as one call on their inputs stacked along the batch; each gets its own
// rows back. A call that finds a worker free runs at once (a lone call never
// waits for company, nor a short one behind a long one), only methods whose
// per-example results do not depend on the other examples of the batch are
// stacked, a call whose options cannot be stacked runs on its own, and one
// caller's cancellation rejects only that caller.
import { native } from "./native";
import { Model } from "./model";
import { Tensor } from "./tensor";
import { abortError, fromNative, guard } from "./errors";

/** Methods whose attributions, delta and outputs of an example depend on that example alone (given its target). */
const STACKABLE = new Set([
  "Saliency", "InputXGradient", "IntegratedGradients", "DeepLift", "GuidedBackprop", "Deconvolution", "LRP", "Occlusion",
  "LayerActivation", "LayerGradientXActivation", "LayerGradCam", "GuidedGradCam", "LayerConductance", "InternalInfluence",
  "LayerIntegratedGradients", "LayerDeepLift", "LayerLRP",
]);
/** Options each caller keeps to itself; the rest must be equal for calls to be stacked. */
const OWN = new Set(["target", "signal", "timeoutMs"]);
/** Examples a stacked call takes at most. */
const MAX_ROWS = 256;

type Run = (inputs: Tensor[], options: Record<string, unknown>) => Promise<{ attributions: Tensor[]; delta?: Tensor }>;

interface Waiting {
  inputs: Tensor[];
  rows: number;
  target: unknown;
  signal?: AbortSignal;
  resolve: (r: { attributions: Tensor[]; delta?: Tensor }) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  onAbort?: () => void;
}

interface Lane {
  running: number;
  queue: Waiting[];
}

const lanes = new WeakMap<object, Map<string, Lane>>();

/** The options' part that must agree, as a key; undefined when they hold something that cannot be compared (tensors, functions). */
function sharedKey(algorithm: string, options: Record<string, unknown>): string | undefined {
  const shared: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) if (!OWN.has(k) && v !== undefined) shared[k] = v;
  let plain = true;
  const json = JSON.stringify(shared, (_k, v) => {
    if (v instanceof Tensor || typeof v === "function" || (v !== null && typeof v === "object" && !Array.isArray(v) && Object.getPrototypeOf(v) !== Object.prototype)) plain = false;
    return v;
  });
  return plain ? `${algorithm}|${json}` : undefined;
}

/** The per-example targets of `rows` examples, or undefined when the target cannot be split by example. */
function exampleTargets(target: unknown, rows: number): (number | number[])[] | undefined {
  if (typeof target === "number" && Number.isInteger(target)) return new Array(rows).fill(target);
  if (target instanceof Tensor) {
    if (target.shape.length !== 1 || (target.dtype !== "int64" && target.dtype !== "int32")) return undefined;
    const ids = Array.from(target.data() as ArrayLike<number | bigint>, Number);
    return ids.length === rows ? ids : ids.length === 1 ? new Array(rows).fill(ids[0]) : undefined;
  }
  if (Array.isArray(target) && target.length > 0) {
    const ok = target.every((t) => (typeof t === "number" && Number.isInteger(t)) || (Array.isArray(t) && t.every((x) => Number.isInteger(x))));
    if (!ok) return undefined;
    return target.length === rows ? (target as (number | number[])[]) : target.length === 1 ? new Array(rows).fill(target[0]) : undefined;
  }
  return undefined;
}

const signature = (inputs: Tensor[]) => inputs.map((t) => `${t.dtype}[${t.shape.slice(1)}]@${t.device}`).join(",");

function settle(w: Waiting, f: () => void) {
  if (w.settled) return;
  w.settled = true;
  if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
  f();
}

/**
 * Runs `run(inputs, options)`, stacked with concurrent calls of the same model,
 * algorithm and options where that gives each caller exactly its own result.
 */
export function coalesced(model: Model, algorithm: string, inputs: Tensor[], options: Record<string, unknown>, run: Run): Promise<{ attributions: Tensor[]; delta?: Tensor }> {
  let rows = 0, key: string | undefined, laneKey = "";
  try {
    rows = inputs[0] instanceof Tensor ? inputs[0].shape[0] : 0;
    key = STACKABLE.has(algorithm) && rows > 0 ? sharedKey(algorithm, options) : undefined;
    if (key !== undefined && (!inputs.every((t) => t instanceof Tensor && t.shape[0] === rows) || exampleTargets(options.target, rows) === undefined)) key = undefined;
    if (key !== undefined) laneKey = `${key}|${signature(inputs)}`;
  } catch {
    key = undefined; // a disposed tensor, say: the plain path says what is wrong
  }
  if (key === undefined) return run(inputs, options);
  let byKey = lanes.get(model.native);
  if (!byKey) lanes.set(model.native, (byKey = new Map()));
  let lane = byKey.get(laneKey);
  if (!lane) byKey.set(laneKey, (lane = { running: 0, queue: [] }));
  const l = lane;
  if (l.running < native.configure({}).workers) {
    // A worker is free of its kind: it runs now, alone.
    l.running++;
    return run(inputs, options).finally(() => drain(l, byKey!, laneKey, options, run));
  }
  return new Promise((resolve, reject) => {
    const signal = options.signal as AbortSignal | undefined;
    if (signal?.aborted) return reject(abortError(signal.reason));
    const w: Waiting = { inputs, rows, target: options.target, signal, resolve, reject, settled: false };
    if (signal) {
      w.onAbort = () => settle(w, () => reject(abortError(signal.reason)));
      signal.addEventListener("abort", w.onAbort, { once: true });
    }
    if (typeof options.timeoutMs === "number") {
      const timer = setTimeout(() => settle(w, () => reject(abortError(new Error(`timed out after ${options.timeoutMs} ms (timeoutMs)`)))), options.timeoutMs as number);
      const done = () => clearTimeout(timer);
      w.resolve = ((r) => (done(), resolve(r))) as typeof resolve;
      w.reject = ((e) => (done(), reject(e))) as typeof reject;
    }
    l.queue.push(w);
  });
}

// A call of the lane finished: the waiting calls (still wanted) run as one
// stacked call of at most MAX_ROWS examples, which then drains again.
function drain(lane: Lane, byKey: Map<string, Lane>, laneKey: string, options: Record<string, unknown>, run: Run): void {
  lane.running--;
  const waiting = lane.queue.filter((w) => !w.settled);
  lane.queue = [];
  if (waiting.length === 0) {
    if (lane.running === 0) byKey.delete(laneKey);
    return;
  }
  lane.running++;
  const batch: Waiting[] = [];
  let total = 0;
  for (const w of waiting) {
    if (batch.length && total + w.rows > MAX_ROWS) lane.queue.push(w);
    else (batch.push(w), (total += w.rows));
  }
  void stacked(batch, options, run).finally(() => drain(lane, byKey, laneKey, options, run));
}

async function stacked(batch: Waiting[], options: Record<string, unknown>, run: Run): Promise<void> {
  if (batch.length === 1) {
    const w = batch[0];
    if (w.settled) return; // its caller has gone
    try {
      const r = await run(w.inputs, { ...options, target: w.target, signal: w.signal, timeoutMs: undefined });
      settle(w, () => w.resolve(r));
    } catch (e) {
      settle(w, () => w.reject(e));
    }
    return;
  }
  // Cancelled when every caller has gone.
  const controller = new AbortController();
  const gone = () => batch.every((w) => w.settled) && controller.abort(new Error("every caller of the stacked call went away"));
  for (const w of batch) w.signal?.addEventListener("abort", gone, { once: true });
  const targets = batch.flatMap((w) => exampleTargets(w.target, w.rows)!);
  const nested = targets.some(Array.isArray);
  const stackedInputs = batch[0].inputs.map((_, i) => new Tensor(guard(() => native.catRows(batch.map((w) => w.inputs[i].native)))));
  try {
    let r: { attributions: Tensor[]; delta?: Tensor };
    try {
      r = await run(stackedInputs, { ...options, target: nested ? targets : targets.map(Number), signal: controller.signal, timeoutMs: undefined });
    } catch (e) {
      // One caller's bad input (a target out of range) must not fail the others: each runs alone.
      if (controller.signal.aborted) throw e;
      await Promise.all(batch.filter((w) => !w.settled).map((w) => stacked([w], options, run)));
      return;
    }
    let at = 0;
    for (const w of batch) {
      const slice = (t: Tensor) => new Tensor(guard(() => native.sliceRows(t.native, at, at + w.rows)));
      const mine = { attributions: r.attributions.map(slice), ...(r.delta ? { delta: slice(r.delta) } : {}) };
      at += w.rows;
      if (w.settled) [...mine.attributions, ...(mine.delta ? [mine.delta] : [])].forEach((t) => t.dispose());
      else settle(w, () => w.resolve(mine));
    }
    [...r.attributions, ...(r.delta ? [r.delta] : [])].forEach((t) => t.dispose());
  } catch (e) {
    const err = fromNative(e);
    for (const w of batch) settle(w, () => w.reject(err));
  } finally {
    stackedInputs.forEach((t) => t.dispose());
    for (const w of batch) w.signal?.removeEventListener("abort", gone);
  }
}

