// The compiled addon and the shape of what it exports. Only lib/ talks to it.
import * as path from "path";
import { isMainThread } from "worker_threads";
import { fromNative, abortError, TorchExplainError } from "./errors";

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  readonly disposed: boolean;
  data(): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  to(device: string): NativeTensor;
  dispose(): void;
}

/** How a model's image tensors are laid out while it runs (see LoadOptions.memoryFormat). */
export type MemoryFormat = "auto" | "channelsLast" | "contiguous";

export interface NativeModel {
  layers(withParameters?: boolean): string[];
  randomized(layers: string[], seed: number): NativeModel;
  readonly device: string;
  readonly signature: string;
  readonly memoryFormat: MemoryFormat;
  readonly disposed: boolean;
  dispose(): void;
}

/** A request in flight: its Promise, and a way to cancel it. */
export interface NativeHandle<T> {
  promise: Promise<T>;
  cancel(reason?: string): void;
}

export interface NativeResult {
  attributions: NativeTensor[];
  delta?: NativeTensor;
}

interface Addon {
  NativeTensor: new () => NativeTensor;
  NativeModel: new () => NativeModel;
  tensorFromBuffer(data: ArrayBufferView, shape: number[], dtype: string): NativeTensor;
  catRows(tensors: NativeTensor[]): NativeTensor;
  sliceRows(tensor: NativeTensor, start: number, end: number): NativeTensor;
  loadModel(path: string, device: string, options: object, memoryFormat?: string, output?: number | string): NativeHandle<NativeModel>;
  run(algorithm: string, model: NativeModel, inputs: NativeTensor[], options: object): NativeHandle<NativeResult>;
  configure(settings: { workers?: number; threads?: number }): { workers: number; threads: number };
  shutdown(exitCode: number, isMainThread: boolean): void;
  manualSeed(seed: number): void;
  /** Hands freed heap memory back to the system (between a stream's chunks). */
  releaseMemory(): Promise<void>;
  benchFloor(model: NativeModel, inputs: NativeTensor[], target: number, chunk: number, rounds: number, backward: boolean): number;
  interpolate(t: NativeTensor, size: number[], mode: string): NativeTensor;
  tensorOp(t: NativeTensor, op: string, ...args: unknown[]): NativeTensor & { values?: NativeTensor; indices?: NativeTensor };
  info(): { libtorch: string; cuda: boolean; cudaDevices: number; algorithms: string[] };
}

function load(): Addon {
  // Debian's OpenBLAS (pthreads build) keeps its workers spinning in
  // sched_yield for 2^28 cycles after every matrix product; on a few cores
  // they take the cores LibTorch's own OpenMP workers need next (FeatureAblation
  // on the bench conv net: 26–28 ms a call on average against 20–22 with a short
  // spin). Read when the library loads, so set before the addon; a user's
  // own value wins.
  process.env.OPENBLAS_THREAD_TIMEOUT ??= "4";
  // TORCHEXPLAIN_ADDON: another build of the addon (scripts/gpu-check's CUDA build).
  const file = process.env.TORCHEXPLAIN_ADDON || path.join(__dirname, "..", "build", "Release", "torchexplain.node");
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file) as Addon;
  } catch (e) {
    throw new TorchExplainError(
      `torchexplain: the native addon is not built or does not load (${file}). Installed packages build it at ` +
        `install time (npm rebuild torchexplain; README: Install); in a clone of the repository, run ` +
        `'node scripts/bootstrap.js'. Cause: ${(e as Error).message}`,
      "ERR_NATIVE",
      { cause: e },
    );
  }
}

export const native: Addon = load();

// At exit (process.exit() included, which runs no cleanup hooks on the main
// thread), stop this environment's requests before Node and LibTorch tear down.
const hooked = Symbol.for("torchexplain.exitHook");
if (!(process as unknown as Record<symbol, boolean>)[hooked]) {
  (process as unknown as Record<symbol, boolean>)[hooked] = true;
  process.on("exit", (code) => native.shutdown(typeof code === "number" ? code : 0, isMainThread));
}

/** Request options that every call takes. */
export interface RequestControl {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Runs a native request: `start` gets the options without `signal`; an
 * abort cancels the request, which then rejects with an AbortError within one
 * chunk. Errors carry the caller's stack.
 */
export async function request<T>(options: RequestControl | undefined, start: (options: object) => NativeHandle<T>): Promise<T> {
  const callerStack = new Error().stack;
  const { signal, ...rest } = options ?? {};
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw fromNative({ message: "signal: expected an AbortSignal", code: "ERR_BAD_OPTION" }, callerStack);
  if (signal?.aborted) throw abortError(signal.reason);
  const handle = start(rest);
  const onAbort = () => handle.cancel(signal?.reason instanceof Error ? signal.reason.message : signal?.reason === undefined ? undefined : String(signal.reason));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await handle.promise;
  } catch (e) {
    throw fromNative(e, callerStack);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
