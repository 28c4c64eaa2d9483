// AttackComparator (captum.robust.AttackComparator): runs a model on its
// inputs and on attacked copies, applies a metric to each output and keeps
// per-call statistics (mean, and min/max over repeated attempts) plus running
// means over every evaluate() call. Attacks and metrics are the caller's
// JavaScript (or FGSM/PGD instances), so this orchestration lives here; the
// forward passes are native and several attacked copies share one pass.
import { Tensor, tensor, DType } from "../tensor";
import { TorchExplainError } from "../errors";
import type { Inputs } from "../attribution";
import type { ForwardArg, TargetType } from "../types";
import {
  ForwardFunc, batchSize, checkKeys, checkModel, concatInputs, expandForwardArgs, isInputs, numbers, runForward, sliceRows, throwIfAborted,
} from "./tensor_ops";

/** What a metric may return: a number, a Tensor (first dimension: the examples), or arrays/objects of them (Captum's tuples and named tuples). */
export type MetricValue = number | boolean | Tensor | MetricValue[] | { [key: string]: MetricValue };

/** A metric's result after averaging: numbers and booleans become numbers, tensors stay tensors (float). */
export type Aggregated<R> = R extends Tensor
  ? Tensor
  : R extends number | boolean
    ? number
    : R extends readonly unknown[]
      ? { [K in keyof R]: Aggregated<R[K]> }
      : R extends object
        ? { [K in keyof R]: Aggregated<R[K]> }
        : never;

/** An attack: an FGSM/PGD instance (anything with perturb()) or a function called as Captum calls one, `attack(inputs, kwargs)`. */
export type Attack<I = Inputs> =
  | { perturb(inputs: I, options: never): Promise<unknown> }
  | ((inputs: I, kwargs: Record<string, unknown>) => unknown);

export interface AttackComparatorOptions<R extends MetricValue> {
  /**
   * Applied to the model output of each batch (original or attacked): `target` is evaluate()'s
   * target, `kwargs` evaluate()'s `kwargs` with `target` added (Captum passes both as keyword arguments).
   */
  metric: (modelOutput: Tensor, target: TargetType | undefined, kwargs: Record<string, unknown>) => R | Promise<R>;
  /** Applied to the inputs before the model (and before or after each attack, per applyBeforePreproc). */
  preprocFn?: (inputs: any) => Inputs | Promise<Inputs>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface AddAttackOptions {
  /** The key of the attack's results (default: the instance's class name or the function's name); unique. */
  name?: string;
  /** Times to run the attack (default 1); above 1, results carry mean, min and max over the attempts. */
  numAttempts?: number;
  /** Attack the raw inputs, then preprocess (default true), or attack the preprocessed inputs. */
  applyBeforePreproc?: boolean;
  /** Options passed to every call of the attack (FGSM's `epsilon`, PGD's `radius`, ...). */
  attackKwargs?: Record<string, unknown>;
  /** Names of evaluate()'s per-batch arguments (`target`, or keys of `kwargs`) to pass to the attack as well. */
  additionalAttackArgNames?: string[];
}

export interface EvaluateOptions {
  target?: TargetType;
  additionalForwardArgs?: ForwardArg[];
  /** Inputs (original and attacked copies) per forward pass (default 1). */
  perturbationsPerEval?: number;
  /** Further per-batch arguments for the metric (its third argument) and for attacks that name them. */
  kwargs?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Called with (evaluated, total) copies of the batch after each forward pass. */
  onProgress?: (done: number, total: number) => void;
}

/** One attack's results for a batch: `mean`, plus `min` and `max` when numAttempts > 1. */
export interface AttackStats<A> {
  mean: A;
  min?: A;
  max?: A;
}

/** evaluate()'s result: `Original` is the metric on the unperturbed inputs; each attack's name maps to its stats. */
export type ComparatorResult<R extends MetricValue> = { Original: Aggregated<R> } & { [name: string]: Aggregated<R> | AttackStats<Aggregated<R>> };

/** summary(): running means over evaluate() calls, keyed "Original", the attack's name, or "<name> Mean Attempt" / "Min Attempt" / "Max Attempt". */
export type ComparatorSummary<R extends MetricValue> = { [key: string]: { mean: Aggregated<R> } };

export const ORIGINAL_KEY = "Original";
const EVALUATE_OPTIONS = ["target", "additionalForwardArgs", "perturbationsPerEval", "kwargs", "signal", "onProgress"] as const;

// ---- metric values as plain float64 trees, so statistics need no native calls ----

/** A number (shape null) or a tensor's values in float64. */
interface Leaf {
  shape: number[] | null;
  dtype: DType;
  data: Float64Array;
}
type Tree = Leaf | Tree[] | { [key: string]: Tree };
const isLeaf = (t: Tree): t is Leaf => typeof t === "object" && t !== null && (t as Leaf).data instanceof Float64Array && "dtype" in t;

function toTree(v: unknown, where: string): Tree {
  if (typeof v === "number" || typeof v === "boolean") return { shape: null, dtype: "float64", data: Float64Array.of(Number(v)) };
  if (v instanceof Tensor) return { shape: v.shape, dtype: v.dtype, data: numbers(v) };
  if (Array.isArray(v)) return v.map((x, i) => toTree(x, `${where}[${i}]`));
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toTree(x, `${where}.${k}`)]));
  throw new TorchExplainError(`metric: expected a number, a boolean, a Tensor, or an array or object of them; got ${v === null ? "null" : typeof v} at ${where}`, "ERR_BAD_OPTION");
}

/** Applies f leaf by leaf to trees of the same structure and shapes. */
function zip(a: Tree, b: Tree, f: (x: Leaf, y: Leaf) => Leaf, where: string): Tree {
  if (isLeaf(a) && isLeaf(b)) {
    if (JSON.stringify(a.shape) !== JSON.stringify(b.shape))
      throw new TorchExplainError(`metric: returned ${b.shape ? `shape [${b.shape}]` : "a number"} at ${where} where an earlier call returned ${a.shape ? `shape [${a.shape}]` : "a number"}`, "ERR_BAD_SHAPE");
    return f(a, b);
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) return a.map((x, i) => zip(x, b[i], f, `${where}[${i}]`));
  if (!isLeaf(a) && !isLeaf(b) && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    if (ka.length === kb.length && ka.every((k) => k in b)) return Object.fromEntries(ka.map((k) => [k, zip(a[k], (b as Record<string, Tree>)[k], f, `${where}.${k}`)]));
  }
  throw new TorchExplainError(`metric: returned a result of a different structure at ${where} than an earlier call`, "ERR_BAD_OPTION");
}

function mapTree(t: Tree, f: (x: Leaf) => Leaf): Tree {
  if (isLeaf(t)) return f(t);
  if (Array.isArray(t)) return t.map((x) => mapTree(x, f));
  return Object.fromEntries(Object.entries(t).map(([k, x]) => [k, mapTree(x, f)]));
}

const isFloat = (d: DType) => d === "float32" || d === "float64";

function fromTree(t: Tree): unknown {
  if (isLeaf(t)) return t.shape === null ? t.data[0] : tensor(t.data, t.shape, t.dtype);
  if (Array.isArray(t)) return t.map(fromTree);
  return Object.fromEntries(Object.entries(t).map(([k, x]) => [k, fromTree(x)]));
}

/** Captum's Mean stat: a running mean; integer and boolean tensors average as float64. */
class RunningMean {
  n = 0;
  value?: Tree;
  update(x: Tree, where: string): void {
    const n = this.n + 1;
    this.value = this.value
      ? zip(this.value, x, (m, y) => ({ ...m, data: m.data.map((v, i) => v + (y.data[i] - v) / n) }), where)
      : mapTree(x, (l) => ({ ...l, dtype: isFloat(l.dtype) ? l.dtype : "float64", data: l.data.slice() }));
    this.n = n;
  }
  copy(): RunningMean {
    return Object.assign(new RunningMean(), { n: this.n, value: this.value });
  }
}

/** Captum's Min/Max stats: elementwise over the updates, in the metric's dtype. */
class Extreme {
  value?: Tree;
  constructor(private readonly pick: (a: number, b: number) => number) {}
  update(x: Tree, where: string): void {
    this.value = this.value ? zip(this.value, x, (m, y) => ({ ...m, data: m.data.map((v, i) => this.pick(v, y.data[i])) }), where) : x;
  }
}

/** Captum's agg_metric: a tensor is averaged over its first dimension, a number stays. */
function aggregate(t: Tree): Tree {
  return mapTree(t, (l) => {
    const dtype: DType = isFloat(l.dtype) ? l.dtype : "float64";
    if (l.shape === null || l.shape.length === 0) return { ...l, dtype };
    const [rows, ...rest] = l.shape;
    const size = rest.reduce((a, b) => a * b, 1);
    const out = new Float64Array(size);
    for (let r = 0; r < rows; r++) for (let j = 0; j < size; j++) out[j] += l.data[r * size + j];
    for (let j = 0; j < size; j++) out[j] /= rows;
    return { shape: rest, dtype, data: out };
  });
}

interface BatchStats {
  mean: RunningMean;
  min?: Extreme;
  max?: Extreme;
}

interface AttackInfo {
  attack: Attack<unknown>;
  name: string;
  numAttempts: number;
  applyBeforePreproc: boolean;
  attackKwargs: Record<string, unknown>;
  additionalArgs: string[];
}

const ADD_ATTACK_OPTIONS = ["name", "numAttempts", "applyBeforePreproc", "attackKwargs", "additionalAttackArgNames"] as const;

export function positiveInteger(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new TorchExplainError(`${name}: expected an integer >= 1, got ${String(v)}`, "ERR_BAD_OPTION");
  return v;
}

export function defaultAttackName(attack: unknown): string | undefined {
  if (typeof attack === "function") return attack.name || undefined;
  if (typeof attack === "object" && attack !== null) return (attack as object).constructor?.name;
  return undefined;
}

function shapesOf(v: unknown): string {
  if (v instanceof Tensor) return `[${v.shape}]`;
  if (Array.isArray(v) && v.every((t) => t instanceof Tensor)) return `[${v.map((t) => `[${(t as Tensor).shape}]`).join(", ")}]`;
  return "";
}

/**
 * Calls an attack as Captum does and checks what it returns: a Tensor (an
 * array of them for array inputs) shaped like what it was given. Failures are
 * TorchExplainErrors naming the attack; cancellation passes through as it is.
 */
export async function callAttack(attack: Attack<unknown>, name: string, inputs: unknown, kwargs: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
  throwIfAborted(signal);
  let out: unknown;
  try {
    if (typeof attack === "function") out = await attack(inputs, kwargs);
    else out = await attack.perturb(inputs, (signal && !("signal" in kwargs) ? { ...kwargs, signal } : kwargs) as never);
  } catch (e) {
    if (e instanceof TorchExplainError && e.code === "ERR_ABORTED") throw e;
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof TorchExplainError ? e.code : "ERR_BAD_OPTION";
    throw new TorchExplainError(`attack: '${name}' failed: ${message}`, code, { cause: e });
  }
  if (isInputs(inputs)) {
    const given = shapesOf(inputs), got = shapesOf(out);
    if (!isInputs(out) || Array.isArray(out) !== Array.isArray(inputs))
      throw new TorchExplainError(
        `attack: '${name}' returned ${out === null ? "null" : Array.isArray(out) ? "an array" : typeof out}; expected ${Array.isArray(inputs) ? "an array of Tensors" : "a Tensor"} shaped like its input ${given}`,
        "ERR_BAD_OPTION",
      );
    if (got !== given) throw new TorchExplainError(`attack: '${name}' returned shape ${got}; expected the shape of its input ${given}`, "ERR_BAD_SHAPE");
  }
  return out;
}

export async function preprocess(fn: ((inputs: any) => Inputs | Promise<Inputs>) | undefined, inputs: unknown): Promise<Inputs> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const out = fn ? await fn(inputs) : inputs;
  if (!isInputs(out))
    throw new TorchExplainError(
      fn ? "preprocFn: expected it to return a Tensor or an array of Tensors" : "inputs: expected a Tensor or an array of Tensors (or give a preprocFn that makes them)",
      "ERR_BAD_OPTION",
    );
  return out;
}

/**
 * Runs the model once on `items` stacked along dim 0 (one item: as it is) and
 * hands each item's rows of the output to `each`.
 */
export async function forwardBatch(
  model: ForwardFunc,
  items: Inputs[],
  args: ForwardArg[] | undefined,
  signal: AbortSignal | undefined,
  each: (output: Tensor, index: number) => Promise<boolean | void>,
): Promise<void> {
  if (items.length === 1) {
    await each(await runForward(model, items[0], args, signal), 0);
    return;
  }
  const stacked = concatInputs(items, "inputs");
  const output = await runForward(model, stacked, expandForwardArgs(args, items.length), signal);
  const sizes = items.map(batchSize);
  const rows = sizes.reduce((a, b) => a + b, 0);
  if (output.shape.length === 0 || output.shape[0] !== rows)
    throw new TorchExplainError(
      `perturbationsPerEval: the model returned shape [${output.shape}] for ${rows} stacked rows; batching several inputs per pass needs one output row per input row (use perturbationsPerEval 1)`,
      "ERR_BAD_OPTION",
    );
  let start = 0;
  for (let i = 0; i < items.length; i++) {
    const part = sliceRows(output, start, start + sizes[i]);
    start += sizes[i];
    if ((await each(part, i)) === true) break;
  }
  // The stacked copies and the whole output are ours alone (each item got its own slice).
  if (typeof model !== "function") {
    for (const t of Array.isArray(stacked) ? stacked : [stacked]) t.dispose();
    output.dispose();
  }
}

export class AttackComparator<R extends MetricValue = MetricValue> {
  private readonly attacks = new Map<string, AttackInfo>();
  private summaryResults = new Map<string, RunningMean>();
  private readonly metric: AttackComparatorOptions<R>["metric"];
  private readonly preprocFn?: AttackComparatorOptions<R>["preprocFn"];

  constructor(
    readonly model: ForwardFunc,
    options: AttackComparatorOptions<R>,
  ) {
    checkModel(model, "AttackComparator");
    checkKeys(options, ["metric", "preprocFn"], "AttackComparator");
    if (typeof options?.metric !== "function") throw new TorchExplainError("metric: expected a function (modelOutput, target, kwargs) => number | Tensor | ...", "ERR_BAD_OPTION");
    if (options.preprocFn !== undefined && typeof options.preprocFn !== "function") throw new TorchExplainError("preprocFn: expected a function", "ERR_BAD_OPTION");
    this.metric = options.metric;
    this.preprocFn = options.preprocFn;
  }

  /** Adds an attack to run on every evaluate(); names must be unique. */
  addAttack<I = Inputs>(attack: Attack<I>, options: AddAttackOptions = {}): this {
    checkKeys(options, ADD_ATTACK_OPTIONS, "addAttack");
    if (typeof attack !== "function" && typeof (attack as { perturb?: unknown })?.perturb !== "function")
      throw new TorchExplainError("attack: expected an FGSM/PGD instance (with perturb()) or a function (inputs, kwargs) => Tensor", "ERR_BAD_OPTION");
    const name = options.name ?? defaultAttackName(attack);
    if (!name) throw new TorchExplainError("name: the attack is an anonymous function; give it a name", "ERR_BAD_OPTION");
    if (this.attacks.has(name) || name === ORIGINAL_KEY) throw new TorchExplainError(`name: an attack named '${name}' already exists${name === ORIGINAL_KEY ? " (reserved for the unperturbed results)" : ""}`, "ERR_BAD_OPTION");
    const attackKwargs = options.attackKwargs ?? {};
    if (typeof attackKwargs !== "object" || attackKwargs === null) throw new TorchExplainError("attackKwargs: expected an object", "ERR_BAD_OPTION");
    const additionalArgs = options.additionalAttackArgNames ?? [];
    if (!Array.isArray(additionalArgs) || !additionalArgs.every((s) => typeof s === "string"))
      throw new TorchExplainError("additionalAttackArgNames: expected an array of option names", "ERR_BAD_OPTION");
    const clash = additionalArgs.find((k) => k in attackKwargs);
    if (clash) throw new TorchExplainError(`additionalAttackArgNames: '${clash}' is also in attackKwargs; give it once`, "ERR_BAD_OPTION");
    this.attacks.set(name, {
      attack: attack as Attack<unknown>,
      name,
      numAttempts: positiveInteger(options.numAttempts, "numAttempts", 1),
      applyBeforePreproc: options.applyBeforePreproc ?? true,
      attackKwargs,
      additionalArgs,
    });
    return this;
  }

  /**
   * Runs the model on the inputs and on every attack's output (numAttempts times each),
   * applies the metric to each output, and resolves to this batch's results. Running
   * means for summary() are updated only when the whole call succeeds.
   */
  async evaluate<I = Inputs>(inputs: I, options: EvaluateOptions = {}): Promise<ComparatorResult<R>> {
    checkKeys(options, EVALUATE_OPTIONS, "evaluate");
    const { target, additionalForwardArgs, signal, onProgress } = options;
    const perEval = positiveInteger(options.perturbationsPerEval, "perturbationsPerEval", 1);
    const kwargs: Record<string, unknown> = { ...(options.kwargs ?? {}), ...(target !== undefined ? { target } : {}) };
    throwIfAborted(signal);
    const preprocessed = await preprocess(this.preprocFn, inputs);

    const stats = new Map<string, BatchStats>([[ORIGINAL_KEY, { mean: new RunningMean() }]]);
    const total = 1 + [...this.attacks.values()].reduce((n, a) => n + a.numAttempts, 0);
    let done = 0;
    let pending: { input: Inputs; key: string }[] = [];
    const flush = async () => {
      const batch = pending;
      pending = [];
      await forwardBatch(this.model, batch.map((p) => p.input), additionalForwardArgs, signal, async (out, i) => {
        const value = toTree(await this.metric(out, target, kwargs), "result");
        const s = stats.get(batch[i].key)!;
        s.mean.update(value, "result");
        s.min?.update(value, "result");
        s.max?.update(value, "result");
      });
      done += batch.length;
      onProgress?.(done, total);
    };
    const push = async (input: Inputs, key: string) => {
      pending.push({ input, key });
      if (pending.length === perEval) await flush();
    };

    await push(preprocessed, ORIGINAL_KEY);
    for (const a of this.attacks.values()) {
      stats.set(a.name, a.numAttempts > 1 ? { mean: new RunningMean(), min: new Extreme(Math.min), max: new Extreme(Math.max) } : { mean: new RunningMean() });
      const perBatch: Record<string, unknown> = {};
      for (const k of a.additionalArgs) {
        if (k in kwargs) perBatch[k] = kwargs[k];
        else process.emitWarning(`evaluate: additional attack argument '${k}' was not given for attack '${a.name}'`);
      }
      const attackKwargs = { ...perBatch, ...a.attackKwargs };
      for (let attempt = 0; attempt < a.numAttempts; attempt++) {
        let attacked: Inputs;
        if (a.applyBeforePreproc) attacked = await preprocess(this.preprocFn, await callAttack(a.attack, a.name, inputs, attackKwargs, signal));
        else attacked = (await callAttack(a.attack, a.name, preprocessed, attackKwargs, signal)) as Inputs;
        await push(attacked, a.name);
      }
    }
    if (pending.length > 0) await flush();
    return this.record(stats);
  }

  private record(stats: Map<string, BatchStats>): ComparatorResult<R> {
    const results: Record<string, unknown> = {};
    const updates: [string, Tree][] = [];
    const original = stats.get(ORIGINAL_KEY)!.mean.value!;
    results[ORIGINAL_KEY] = fromTree(original);
    updates.push([ORIGINAL_KEY, aggregate(original)]);
    for (const a of this.attacks.values()) {
      const s = stats.get(a.name)!;
      if (!s.min) {
        results[a.name] = { mean: fromTree(s.mean.value!) };
        updates.push([a.name, aggregate(s.mean.value!)]);
      } else {
        const parts: [string, Tree][] = [["mean", s.mean.value!], ["min", s.min.value!], ["max", s.max!.value!]];
        results[a.name] = Object.fromEntries(parts.map(([k, v]) => [k, fromTree(v)]));
        // Captum's summary keys for repeated attacks: "<name> Mean Attempt", "<name> Min Attempt", ...
        for (const [k, v] of parts) updates.push([`${a.name} ${k[0].toUpperCase()}${k.slice(1)} Attempt`, aggregate(v)]);
      }
    }
    // Updated on copies first: a metric whose structure changed between calls leaves the summary as it was.
    const next = updates.map(([key, value]) => {
      const m = this.summaryResults.get(key)?.copy() ?? new RunningMean();
      m.update(value, `summary of ${key}`);
      return [key, m] as const;
    });
    for (const [key, m] of next) this.summaryResults.set(key, m);
    return results as ComparatorResult<R>;
  }

  /** Running means over every evaluate() since construction or reset(), one `{ mean }` per key. */
  summary(): ComparatorSummary<R> {
    return Object.fromEntries([...this.summaryResults].map(([k, m]) => [k, { mean: fromTree(m.value!) }])) as unknown as ComparatorSummary<R>;
  }

  /** Forgets the running means. */
  reset(): void {
    this.summaryResults = new Map();
  }
}
