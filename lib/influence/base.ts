// What the influence classes share: options, checkpoints, the training set's
// chunked pass (progress, cancellation, an overall time limit), and results.
import * as fs from "fs";
import * as path from "path";
import { loadModel, Model } from "../model";
import { Tensor, tensor } from "../tensor";
import { runAlgorithm, progressCallback } from "../attribution";
import { TorchExplainError, abortError } from "../errors";
import type { ProgressOptions } from "../types";
import { Chunk, Dataset, openDataset, TrainingData } from "./data";

export type LossName = "crossEntropy" | "mse" | "nll" | "bce";
/**
 * A loss by name, or with its reduction. Per example, 'sum' (the default) and
 * 'none' sum the loss over the example's outputs and 'mean' averages it, as
 * the reference's per-example gradients do (for crossEntropy and nll the
 * three agree).
 */
export type LossFn = LossName | { name: LossName; reduction?: "sum" | "mean" | "none" };

/** A checkpoint: a TorchScript file of the model's architecture, with the learning rate of its epoch (default 1). */
export type Checkpoint = string | { path: string; learningRate?: number };

export interface InfluenceInit {
  /** The training loss (default "crossEntropy"). */
  lossFn?: LossFn;
  /** The loss of test examples, when it differs from the training loss. */
  testLossFn?: LossFn;
  /** Examples per forward/backward pass (default 64). Results do not depend on it. */
  batchSize?: number;
  /** Bytes a call may hold at once (default: half the memory available). */
  memoryBudget?: number;
}

/** Options of every influence call. */
export interface InfluenceCallOptions extends ProgressOptions {
  signal?: AbortSignal;
  /** Rejects with an AbortError once the whole call has run this long. */
  timeoutMs?: number;
}

/** The k most influential training examples per test example: indices into the training set, and their scores. */
export interface KMostInfluential {
  /** int64 [nTest, k] ([1, k] when aggregated). */
  indices: Tensor;
  /** [nTest, k]: proponents' highest scores first, or opponents' lowest first. */
  influenceScores: Tensor;
}

/** Test examples: { inputs, labels } in memory (or any training-data form, read whole). */
export type TestData = TrainingData;

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

/** Input bytes per chunk of the training set read at a time. */
const CHUNK_BYTES = 32 * 2 ** 20;

/** @internal A call's cancellation, deadline and progress. */
export class Control {
  private readonly deadline?: number;
  private readonly report?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
  /** `own`: the call's other options, for naming a misspelt or misplaced one. */
  constructor(name: string, options: InfluenceCallOptions = {}, own: string[] = []) {
    if (options === null || typeof options !== "object") throw bad("options", "expected an object");
    const known = ["signal", "timeoutMs", "showProgress", "onProgress", ...own];
    for (const k of Object.keys(options))
      if (!known.includes(k) && (options as Record<string, unknown>)[k] !== undefined) throw bad(k, `not an option of ${name} (options: ${known.join(", ")})`);
    const { signal, timeoutMs, showProgress, onProgress } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw bad("signal", "expected an AbortSignal");
    if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0 && Number.isFinite(timeoutMs)))
      throw bad("timeoutMs", "expected a positive number of milliseconds");
    if (onProgress !== undefined && typeof onProgress !== "function") throw bad("onProgress", "expected a function");
    this.signal = signal;
    this.deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    this.report = progressCallback(name, showProgress, onProgress);
  }
  /** Options for one native request: the signal, and what is left of the time. */
  request(): { signal?: AbortSignal; timeoutMs?: number } {
    this.check();
    return { signal: this.signal, ...(this.deadline === undefined ? {} : { timeoutMs: Math.max(1, this.deadline - Date.now()) }) };
  }
  check(): void {
    if (this.signal?.aborted) throw abortError(this.signal.reason);
    if (this.deadline !== undefined && Date.now() >= this.deadline) throw abortError(new Error("timeoutMs: the call ran past its time limit"));
  }
  progress(done: number, total: number): void {
    this.report?.(done, total);
  }
}

/** @internal Checks an integer option. */
export function integerOption(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) throw bad(name, `expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  return value;
}

/** Natural order of file names (ckpt_2 before ckpt_10), as the reference sorts a checkpoint folder. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

/** @internal The checkpoints argument: paths (or a folder of them) with learning rates. */
export function checkpointList(checkpoints: Checkpoint | Checkpoint[], what = "checkpoints"): { path: string; learningRate: number }[] {
  let list: Checkpoint[];
  if (typeof checkpoints === "string" && fs.existsSync(checkpoints) && fs.statSync(checkpoints).isDirectory())
    list = fs.readdirSync(checkpoints).filter((f) => f.endsWith(".pt")).sort(naturalCompare).map((f) => path.join(checkpoints, f));
  else list = Array.isArray(checkpoints) ? checkpoints : [checkpoints];
  if (list.length === 0) throw bad(what, "expected at least one checkpoint (a TorchScript file path, or { path, learningRate })");
  return list.map((c, i) => {
    const where = Array.isArray(checkpoints) ? `${what}[${i}]` : what;
    if (typeof c === "string") return { path: c, learningRate: 1 };
    if (c === null || typeof c !== "object" || typeof c.path !== "string") throw bad(where, "expected a file path or { path, learningRate }");
    if (c.learningRate !== undefined && !(typeof c.learningRate === "number" && Number.isFinite(c.learningRate) && c.learningRate >= 0))
      throw bad(`${where}.learningRate`, `expected a finite number >= 0, got ${c.learningRate}`);
    return { path: c.path, learningRate: c.learningRate ?? 1 };
  });
}

/** @internal The base of the influence classes. */
export abstract class DataInfluence<Init extends InfluenceInit = InfluenceInit> {
  private dataset?: Promise<Dataset>;
  private loaded?: Promise<Model[]>;
  protected readonly init: Init;

  constructor(
    readonly model: Model,
    /** The training set. */
    readonly trainDataset: TrainingData,
    init: Init,
    protected readonly checkpointFiles: { path: string; learningRate: number }[] = [],
  ) {
    if (!(model instanceof Model)) throw bad("model", "expected a Model from loadModel()");
    if (init === null || typeof init !== "object") throw bad("options", "expected an object");
    integerOption(init.batchSize, "batchSize", 1);
    if (init.memoryBudget !== undefined && !(typeof init.memoryBudget === "number" && init.memoryBudget > 0)) throw bad("memoryBudget", "expected a positive number of bytes");
    this.init = init;
  }

  /** @internal The options every native request of this object takes. */
  protected base(): Record<string, unknown> {
    return { internalBatchSize: this.init.batchSize ?? 64, ...(this.init.memoryBudget ? { memoryBudget: this.init.memoryBudget } : {}) };
  }
  protected lossFn(test = false): LossFn {
    return (test ? this.init.testLossFn : undefined) ?? this.init.lossFn ?? "crossEntropy";
  }

  /** @internal The training set, opened once. */
  protected train(): Promise<Dataset> {
    return (this.dataset ??= openDataset(this.trainDataset, "train"));
  }

  /** @internal The checkpoints, loaded once on the model's device. */
  protected checkpoints(): Promise<Model[]> {
    return (this.loaded ??= (async () => {
      const models: Model[] = [];
      try {
        for (const c of this.checkpointFiles) models.push(await loadModel(c.path, { device: this.model.device, memoryFormat: "contiguous" }));
      } catch (e) {
        models.forEach((m) => m.dispose());
        this.loaded = undefined;
        throw e;
      }
      return models;
    })());
  }
  protected learningRates(): number[] {
    return this.checkpointFiles.map((c) => c.learningRate);
  }

  /** @internal Runs a native influence algorithm on a model (with the batch size and memory budget). */
  protected async native(algorithm: string, model: Model, inputs: Tensor[], options: object, control: Control): Promise<Tensor[]> {
    const r = await runAlgorithm(model, algorithm, inputs, { ...this.base(), ...options, ...control.request() });
    return r.attributions;
  }

  /**
   * @internal Dot products of test embeddings with a chunk of training
   * embeddings: into `matrix`, or the running top k.
   */
  protected async embeddingScores(test: Tensor, chunk: { start: number; e: Tensor }, top: TopK | undefined, matrix: ScoreMatrix | undefined, control: Control) {
    const r = (await runAlgorithm(this.model, "EmbeddingScores", [test, chunk.e], { ...(top ? top.options(chunk.start) : {}), ...control.request() })).attributions;
    if (top) top.update(r);
    else matrix!.put(r[0], chunk.start);
  }

  /** @internal One pass over the training set, chunk by chunk, reporting progress in examples. */
  protected async overTraining(control: Control, each: (chunk: Chunk, set: Dataset) => Promise<void>, needLabels = true): Promise<Dataset> {
    const set = await this.train();
    if (needLabels && !set.hasLabels) throw bad("train.labels", "the training set has no labels, which the loss needs");
    let done = 0;
    control.progress(0, set.count);
    await set.forEach(CHUNK_BYTES, this.init.batchSize ?? 64, async (chunk) => {
      control.check();
      await each(chunk, set);
      done += chunk.inputs[0].shape[0];
      control.progress(done, set.count);
    });
    return set;
  }

  /** @internal Test data in memory: inputs and labels (disposed by the caller when read from files). */
  protected async testData(data: TestData, needLabels = true): Promise<{ chunk: Chunk; owned: boolean }> {
    if (data instanceof Tensor) data = { inputs: data };
    const set = await openDataset(data, "inputs");
    try {
      if (needLabels && !set.hasLabels) throw bad("inputs.labels", "expected the test examples' labels, which the loss needs");
      const inMemory = "inputs" in data && !("npz" in data) && (Array.isArray(data.inputs) ? data.inputs : [data.inputs]).every((t) => t instanceof Tensor);
      if (inMemory) {
        const d = data as { inputs: Tensor | Tensor[]; labels?: Tensor };
        return { chunk: { start: 0, inputs: Array.isArray(d.inputs) ? d.inputs : [d.inputs], labels: d.labels }, owned: false };
      }
      return { chunk: await set.readAll(this.init.memoryBudget ?? Infinity, "the test set"), owned: true };
    } finally {
      await set.close();
    }
  }

  /**
   * @internal One value per example of `data` (the training set's by default,
   * chunk by chunk): `run` gives a chunk's, as [rows].
   */
  protected async perExample(
    name: string,
    data: TrainingData | undefined,
    options: InfluenceCallOptions,
    run: (inputs: Tensor[], labels: Tensor | undefined, control: Control) => Promise<Tensor>,
  ): Promise<Tensor> {
    const control = new Control(name, options);
    const parts: Float32Array[] = [];
    const take = async (inputs: Tensor[], labels?: Tensor) => {
      const s = await run(inputs, labels, control);
      parts.push(s.data() as Float32Array);
      s.dispose();
    };
    if (data === undefined) await this.overTraining(control, (chunk) => take(chunk.inputs, chunk.labels));
    else {
      const { chunk, owned } = await this.testData(data);
      try {
        await take(chunk.inputs, chunk.labels);
      } finally {
        if (owned) [...chunk.inputs, ...(chunk.labels ? [chunk.labels] : [])].forEach((x) => x.dispose());
      }
    }
    const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
    return tensor(all, [all.length], "float32");
  }

  /**
   * @internal Self-influence by the native `algorithm` on `model`, a chunk
   * at a time (`options` plus the chunk's labels and the training loss).
   */
  protected selfInfluenceBy(
    name: string,
    algorithm: string,
    model: () => Promise<Model>,
    options: () => Promise<Record<string, unknown>>,
    data: TrainingData | undefined,
    callOptions: InfluenceCallOptions,
  ): Promise<Tensor> {
    return this.perExample(name, data, callOptions, async (inputs, labels, control) =>
      (await this.native(algorithm, await model(), inputs, { ...(await options()), labels, lossFn: this.lossFn() }, control))[0]);
  }

  /** @internal k checked against the training set's size. */
  protected async kOption(k: unknown): Promise<number | undefined> {
    const value = integerOption(k, "k", 1);
    if (value === undefined) return undefined;
    const set = await this.train();
    if (value > set.count) throw bad("k", `${value} is more than the ${set.count} examples of the training set`);
    return value;
  }

  /** Frees the checkpoints and closes the training set's files. */
  async dispose(): Promise<void> {
    const models = this.loaded ? await this.loaded.catch(() => [] as Model[]) : [];
    models.forEach((m) => m.dispose());
    this.loaded = undefined;
    const set = this.dataset ? await this.dataset.catch(() => undefined) : undefined;
    await set?.close();
    this.dataset = undefined;
  }
}

/** @internal Score blocks [nTest, chunk] assembled into [nTest, nTrain] (float32). */
export class ScoreMatrix {
  private readonly data: Float32Array;
  constructor(private readonly rows: number, private readonly cols: number) {
    this.data = new Float32Array(rows * cols);
  }
  put(block: Tensor, start: number): void {
    const [r, c] = block.shape;
    const values = block.data() as Float32Array;
    for (let i = 0; i < r; i++) this.data.set(values.subarray(i * c, (i + 1) * c), i * this.cols + start);
    block.dispose();
  }
  tensor(): Tensor {
    return tensor(this.data, [this.rows, this.cols], "float32");
  }
}

/** @internal The running top k: [indices, values] of the chunks so far. */
export class TopK {
  best?: Tensor[];
  constructor(readonly k: number, readonly proponents: boolean) {}
  /** Options for a chunk starting at `offset`. */
  options(offset: number): Record<string, unknown> {
    return { k: this.k, proponents: this.proponents, offset, ...(this.best ? { best: this.best } : {}) };
  }
  update(result: Tensor[]): void {
    this.best?.forEach((t) => t.dispose());
    this.best = result;
  }
  result(): KMostInfluential {
    if (!this.best) throw new TorchExplainError("influence: the training set is empty", "ERR_BAD_OPTION");
    return { indices: this.best[0], influenceScores: this.best[1] };
  }
}
