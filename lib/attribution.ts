// The base of every algorithm class: one path from attribute() to the
// native worker, and the result shapes shared by all of them.
import { native, request } from "./native";
import { Model } from "./model";
import { toNative } from "./options";
import { Tensor } from "./tensor";
import type { RequestOptions } from "./types";
import { TorchExplainError } from "./errors";

/** A Tensor for a single input, an array of Tensors for several. */
export type Inputs = Tensor | Tensor[];
export type Attributions<I extends Inputs> = I extends Tensor[] ? Tensor[] : Tensor;
export interface WithDelta<A> {
  attributions: A;
  delta: Tensor;
}
/** What attribute() resolves to: attributions shaped like the inputs, plus the delta when asked for. */
export type AttributionResult<I extends Inputs, O> = O extends { returnConvergenceDelta: true }
  ? WithDelta<Attributions<I>>
  : Attributions<I>;

export interface ProgressOptions {
  /** Draw a progress bar on stderr when it is a terminal. */
  showProgress?: boolean;
  /** Called with (done, total) perturbations as work proceeds, at most every 100 ms and once at the end. */
  onProgress?: (done: number, total: number) => void;
}

function progressCallback(name: string, show?: boolean, user?: (done: number, total: number) => void) {
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

  /** @internal Runs `algorithm` natively; resolves like Captum's attribute(). */
  protected async run<I extends Inputs, O extends object>(
    inputs: I,
    options: O | undefined,
    extra: object = {},
    algorithm: string = this.algorithm,
    arrayResult: boolean = Array.isArray(inputs),
  ): Promise<AttributionResult<I, O>> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    for (const [i, t] of list.entries())
      if (!(t instanceof Tensor)) throw new TorchExplainError(`inputs[${i}]: expected a Tensor (make one with tensor())`, "ERR_BAD_OPTION");
    const { showProgress, onProgress, ...rest } = (options ?? {}) as ProgressOptions & Record<string, unknown>;
    const progress = progressCallback(algorithm, showProgress, onProgress);
    const merged = { ...this.init, ...rest, ...extra, ...(progress ? { onProgress: progress } : {}) };
    const r = await request(merged as RequestOptions, (o) => native.run(algorithm, this.model.native, list.map((t) => t.native), toNative(o) as object));
    const tensors = r.attributions.map((t) => new Tensor(t));
    const attributions = (arrayResult ? tensors : tensors[0]) as Attributions<I>;
    if ((options as { returnConvergenceDelta?: boolean } | undefined)?.returnConvergenceDelta)
      return { attributions, delta: new Tensor(r.delta!) } as AttributionResult<I, O>;
    return attributions as AttributionResult<I, O>;
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
  attribute<I extends Inputs, P extends O = O>(inputs: I, ...options: {} extends O ? [P?] : [P]): Promise<AttributionResult<I, P>> {
    return this.run(inputs, options[0]);
  }
}
