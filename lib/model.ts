import { native, NativeModel } from "./native";
import { Tensor } from "./tensor";
import { toNative } from "./options";
import type { ForwardArg } from "./types";

export interface LoadOptions {
  /** "cpu" (default), "cuda" or "cuda:N" (needs a CUDA build of LibTorch). */
  device?: string;
}

/** A TorchScript model (scripted or traced), loaded into native memory. */
export class Model {
  /** @internal */
  constructor(readonly native: NativeModel) {}

  get device(): string {
    return this.native.device;
  }
  /** forward()'s signature, e.g. "forward(a: Tensor, b: Tensor, scale: float)". */
  get signature(): string {
    return this.native.signature;
  }
  /** Dotted names of every submodule ("conv1", "layer1.0.conv2", ...). */
  layers(): string[] {
    return this.native.layers();
  }
  /** Runs forward() off the event loop. */
  async forward(inputs: Tensor | Tensor[], additionalForwardArgs?: ForwardArg[]): Promise<Tensor> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const r = await native.run("forward", this.native, list.map((t) => t.native), toNative({ additionalForwardArgs }) as object);
    return new Tensor(r.attributions[0]);
  }
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  return new Model(await native.loadModel(path, options.device ?? "cpu"));
}
