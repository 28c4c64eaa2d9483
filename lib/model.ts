import { native, NativeModel, MemoryFormat, request } from "./native";
import { Tensor } from "./tensor";
import { toNative } from "./options";
import { guard, TorchExplainError } from "./errors";
import { DisposableHandle } from "./disposable";
import type { ForwardArg, RequestOptions } from "./types";

export interface LoadOptions {
  /** "cpu" (default), "cuda" or "cuda:N" (needs a CUDA build of LibTorch). */
  device?: string;
  /**
   * Memory layout of 4-d tensors (convolution weights and image inputs) while
   * the model runs. "auto" (default, CPU): on the first call with 4-d inputs,
   * time a few rows both ways and keep channels-last when it is faster and
   * gives the same outputs (it runs CPU convolutions without reordering:
   * 1.1-2.5x faster on the bench nets); "contiguous" on GPUs and for models
   * without 4-d weights. Results do not depend on it beyond float32 rounding.
   */
  memoryFormat?: MemoryFormat;
  /**
   * What to explain when forward() returns a tuple or a dict (a Hugging Face
   * model traced with return_dict, say): an element index, a named tuple's
   * field, or a dict key such as "logits". forward() then returns it.
   */
  output?: number | string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A TorchScript model (scripted or traced), loaded into native memory. */
export class Model extends DisposableHandle {
  /** @internal */
  constructor(
    readonly native: NativeModel,
    /** The file it was loaded from. */
    readonly path?: string,
  ) {
    super();
  }

  get device(): string {
    return guard(() => this.native.device);
  }
  /** forward()'s signature, e.g. "forward(a: Tensor, b: Tensor, scale: float)". */
  get signature(): string {
    return guard(() => this.native.signature);
  }
  /** The layout in use: "auto" until the first call with 4-d inputs has chosen one. */
  get memoryFormat(): MemoryFormat {
    return guard(() => this.native.memoryFormat);
  }
  /**
   * Dotted names of every submodule ("conv1", "layer1.0.conv2", ...); with
   * `withParameters`, of those holding parameters (their own or a descendant's).
   */
  layers(options: { withParameters?: boolean } = {}): string[] {
    return guard(() => this.native.layers(!!options.withParameters));
  }
  /**
   * A deep copy whose `layers` have their parameters redrawn from a normal
   * distribution with each parameter's own standard deviation (the
   * model-parameter randomisation sanity check). This model is unchanged.
   */
  randomized(layers: string[], seed = 0): Model {
    return guard(() => new Model(this.native.randomized(layers, seed), this.path));
  }

  /** Runs forward() off the event loop. */
  async forward(inputs: Tensor | Tensor[], additionalForwardArgs?: ForwardArg[], options: RequestOptions = {}): Promise<Tensor> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    for (const [i, t] of list.entries())
      if (!(t instanceof Tensor)) throw new TorchExplainError(`inputs[${i}]: expected a Tensor (make one with tensor())`, "ERR_BAD_OPTION");
    const r = await request({ ...options, additionalForwardArgs } as RequestOptions, (o) =>
      native.run("forward", this.native, list.map((t) => t.native), toNative(o) as object),
    );
    return new Tensor(r.attributions[0]);
  }
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  const { device, memoryFormat, output, ...control } = options;
  return new Model(await request(control, (o) => native.loadModel(path, device ?? "cpu", o, memoryFormat, output)), path);
}
