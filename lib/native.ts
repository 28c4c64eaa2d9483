// The compiled addon and the shape of what it exports. Only lib/ talks to it.
import * as path from "path";

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  data(): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  to(device: string): NativeTensor;
}

export interface NativeModel {
  layers(): string[];
  readonly device: string;
  readonly signature: string;
}

export interface NativeResult {
  attributions: NativeTensor[];
  delta?: NativeTensor;
}

interface Addon {
  NativeTensor: new () => NativeTensor;
  NativeModel: new () => NativeModel;
  tensorFromBuffer(data: ArrayBufferView, shape: number[], dtype: string): NativeTensor;
  loadModel(path: string, device: string): Promise<NativeModel>;
  run(algorithm: string, model: NativeModel, inputs: NativeTensor[], options: object): Promise<NativeResult>;
  manualSeed(seed: number): void;
  benchFloor(model: NativeModel, inputs: NativeTensor[], target: number, chunk: number, rounds: number, backward: boolean): number;
  interpolate(t: NativeTensor, size: number[], mode: string): NativeTensor;
  info(): { libtorch: string; cuda: boolean; cudaDevices: number; algorithms: string[] };
}

function load(): Addon {
  const file = path.join(__dirname, "..", "build", "Release", "torchexplain.node");
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file) as Addon;
  } catch (e) {
    throw new Error(
      `torchexplain: the native addon is not built (${file}): run 'node scripts/bootstrap.js'. ` +
        `Cause: ${(e as Error).message}`,
    );
  }
}

export const native: Addon = load();
