// The base of every algorithm class: one path from attribute() to the
// native worker, and the result shapes shared by all of them.
import { native, request } from "./native";
import { Model } from "./model";
import { toNative } from "./options";
import { Tensor } from "./tensor";
import type { ProgressOptions, RequestOptions } from "./types";
import { TorchExplainError } from "./errors";
import { coalesced } from "./coalesce";

/** A Tensor for a single input, an array of Tensors for several. */
export type Inputs = Tensor | Tensor[];
export type Attributions<I extends Inputs> = I extends Tensor[] ? Tensor[] : Tensor;
export interface WithDelta<A> {
  attributions: A;
  delta: Tensor;
}
/**
 * The options P as O allows them: a key that O lacks (a misspelling) is a
 * compile error even beside valid ones, which a generic `P extends O` alone
 * lets through; the compiler's message then says which key. Mapped over P's
 * keys so that TypeScript infers P from an object literal and still types its
 * callbacks' parameters from O.
 */
export type Exact<O, P> = { [K in keyof P]: K extends keyof O ? P[K] : `${K & string} is not an option of this algorithm` };

// returnConvergenceDelta's type in the options given (false when absent).
type DeltaFlag<P> = "returnConvergenceDelta" extends keyof P ? P["returnConvergenceDelta" & keyof P] : false;

/**
 * A, with the convergence delta when the options ask for it: `true` gives
 * { attributions, delta }, false or absent gives A, and a flag that may be
 * either (a `boolean`) gives the union. `never` stands for no options.
 */
export type MaybeDelta<A, P> = [P] extends [never]
  ? A
  : true extends DeltaFlag<P>
    ? DeltaFlag<P> extends true
      ? WithDelta<A>
      : A | WithDelta<A>
    : A;

/** What attribute() resolves to: attributions shaped like the inputs, plus the delta when asked for. */
export type AttributionResult<I extends Inputs, P> = MaybeDelta<Attributions<I>, P>;

/** @internal A progress reporter: a bar on a terminal's stderr, and the caller's callback. */
export function progressCallback(name: string, show?: boolean, user?: (done: number, total: number) => void) {
  const tty = show && process.stderr.isTTY;
  if (!tty && !user) return undefined;
  return (done: number, total: number) => {
    if (tty) {
      const width = 30, filled = total ? Math.round((width * done) / total) : width;
      process.stderr.write(`\r${name} attribution: [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total}` + (done >= total ? "\n" : ""));
    }
    try {
      user?.(done, total);
    } catch {
      // a failing progress callback must not break the attribution
    }
  };
}

/**
 * @internal Runs a native algorithm on a model: the one path from the API to
 * the native worker (checks inputs, progress, signal/timeout, options).
 */
export async function runAlgorithm(model: Model, algorithm: string, inputs: Inputs, options: object): Promise<{ attributions: Tensor[]; delta?: Tensor }> {
  const list = Array.isArray(inputs) ? inputs : [inputs];
  for (const [i, t] of list.entries())
    if (!(t instanceof Tensor)) throw new TorchExplainError(`inputs[${i}]: expected a Tensor (make one with tensor())`, "ERR_BAD_OPTION");
  const { showProgress, onProgress, ...rest } = options as ProgressOptions & Record<string, unknown>;
  const progress = progressCallback(algorithm, showProgress, onProgress);
  const merged = { ...rest, ...(progress ? { onProgress: progress } : {}) };
  const r = await request(merged as RequestOptions, (o) => native.run(algorithm, model.native, list.map((t) => t.native), toNative(o) as object));
  return { attributions: r.attributions.map((t) => new Tensor(t)), delta: r.delta ? new Tensor(r.delta) : undefined };
}

export abstract class Attribution<Init extends object = object> {
  /** The native algorithm's name. */
  abstract readonly algorithm: string;

  constructor(
    readonly model: Model,
    /** Constructor options (Captum's constructor keyword arguments). */
    readonly init: Init = {} as Init,
  ) {
    if (!(model instanceof Model)) throw new TorchExplainError("model: expected a Model from loadModel()", "ERR_BAD_OPTION");
  }

  /**
   * @internal Runs `algorithm` natively; resolves like Captum's attribute():
   * the attributions (an array when `arrayResult`), with the delta when the
   * options ask for it. R is the caller's type for that result.
   */
  protected async run<R>(
    inputs: Inputs,
    options: object | undefined,
    extra: object = {},
    algorithm: string = this.algorithm,
    arrayResult: boolean = Array.isArray(inputs),
  ): Promise<R> {
    // Concurrent calls of the same kind share passes (lib/coalesce.ts).
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const merged = { ...this.init, ...(options ?? {}), ...extra } as Record<string, unknown>;
    const tensors = await coalesced(this.model, algorithm, list, merged, (ins, o) => runAlgorithm(this.model, algorithm, ins, o));
    const attributions = arrayResult ? tensors.attributions : tensors.attributions[0];
    const result = (options as { returnConvergenceDelta?: boolean } | undefined)?.returnConvergenceDelta
      ? { attributions, delta: tensors.delta! }
      : attributions;
    return result as unknown as R;
  }

  /**
   * @internal The native algorithm and constructor options behind this object,
   * for callers that run it on other inputs (metrics, wrappers).
   */
  nativeCall(): { algorithm: string; init: object } {
    return { algorithm: this.algorithm, init: this.init };
  }

  abstract attribute(inputs: Inputs, options?: object): Promise<unknown>;
}

/**
 * An algorithm whose attribute() takes its inputs and one options object of
 * type O (required when O has required fields) and hands both to the native core.
 */
export abstract class OptionsAttribution<O extends object, Init extends object = object> extends Attribution<Init> {
  /** @internal Type-only: lets wrappers (NoiseTunnel) name this algorithm's options. */
  declare readonly optionsType?: O;
  attribute<I extends Inputs, P extends O = never>(
    inputs: I,
    ...options: {} extends O ? [Exact<O, P>?] : [Exact<O, P>]
  ): Promise<AttributionResult<I, P>> {
    return this.run(inputs, options[0]);
  }
}
