// TracIn: a training example's influence on a test example is the sum over
// checkpoints of the learning rate times the dot product of their loss
// gradients (Pruthi et al. 2020), as Captum's TracInCP, TracInCPFast and
// TracInCPFastRandProj compute it. The test set's gradients are taken once
// per call; the training set streams through natively, every checkpoint at
// once, into the scores or the running top k.
import { Model } from "../model";
import { Tensor, tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import {
  Checkpoint, checkpointList, Control, DataInfluence, InfluenceCallOptions, InfluenceInit, integerOption, KMostInfluential, ScoreMatrix,
  TestData, TopK,
} from "./base";
import { TrainingData } from "./data";

export interface TracInCPInit extends InfluenceInit {
  /** Layers (dotted names) whose parameters are measured, with their descendants'; default every parameter. */
  layers?: string[];
}

export interface InfluenceOptions extends InfluenceCallOptions {
  /** The k most influential training examples per test example instead of every score. */
  k?: number;
  /** With k: the highest scores (proponents, default) or the lowest (opponents). */
  proponents?: boolean;
  /** Influence on the whole test set (scores summed over it): [1, nTrain], or [1, k] with k. */
  aggregate?: boolean;
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

function checkLayerName(finalFcLayer: unknown): void {
  if (typeof finalFcLayer !== "string" || !finalFcLayer) throw bad("finalFcLayer", "expected the dotted name of the final linear layer");
}

abstract class TracInBase<Init extends InfluenceInit> extends DataInfluence<Init> {
  protected abstract readonly name: string;
  /** Options naming which gradients are taken (layers, or the final layer's weight). */
  protected abstract gradientOptions(): Record<string, unknown>;

  private async common(): Promise<Record<string, unknown>> {
    return { checkpoints: await this.checkpoints(), learningRates: this.learningRates(), ...this.gradientOptions() };
  }

  /**
   * Influence of every training example on every test example: [nTest, nTrain];
   * with `k`, the k most influential per test example; with `aggregate`, on
   * the test set as a whole.
   */
  influence(test: TestData, options: InfluenceOptions & { k: number }): Promise<KMostInfluential>;
  influence(test: TestData, options?: InfluenceOptions & { k?: undefined }): Promise<Tensor>;
  async influence(test: TestData, options?: InfluenceOptions): Promise<KMostInfluential | Tensor> {
    const o: InfluenceOptions = options ?? {};
    const control = new Control(this.name, o, ["k", "proponents", "aggregate"]);
    const k = await this.kOption(o.k);
    if (o.proponents !== undefined && typeof o.proponents !== "boolean") throw bad("proponents", "expected a boolean");
    if (o.aggregate !== undefined && typeof o.aggregate !== "boolean") throw bad("aggregate", "expected a boolean");
    const { chunk: t, owned } = await this.testData(test);
    const common = await this.common();
    let sketch: Tensor[] = [];
    try {
      sketch = await this.native("TracInSketch", this.model, t.inputs, { ...common, labels: t.labels, lossFn: this.lossFn(true), aggregate: !!o.aggregate }, control);
      const rows = o.aggregate ? 1 : t.inputs[0].shape[0];
      const top = k === undefined ? undefined : new TopK(k, o.proponents ?? true);
      let matrix: ScoreMatrix | undefined;
      await this.overTraining(control, async (chunk, set) => {
        matrix ??= top ? undefined : new ScoreMatrix(rows, set.count);
        const r = await this.native("TracInScores", this.model, chunk.inputs, {
          ...common, labels: chunk.labels, lossFn: this.lossFn(), sketch, ...(top ? top.options(chunk.start) : {}),
        }, control);
        if (top) top.update(r);
        else matrix!.put(r[0], chunk.start);
      });
      return top ? top.result() : matrix!.tensor();
    } finally {
      sketch.forEach((s) => s.dispose());
      if (owned) [...t.inputs, ...(t.labels ? [t.labels] : [])].forEach((x) => x.dispose());
    }
  }

  /**
   * Self-influence of each example (the training set's by default): the sum
   * over checkpoints of the learning rate times its squared gradient norm, [n].
   * High values mark mislabelled or unusual examples.
   */
  selfInfluence(data?: TrainingData, options: InfluenceCallOptions = {}): Promise<Tensor> {
    return this.selfInfluenceBy(this.name, "TracInSelfInfluence", async () => this.model, () => this.common(), data, options);
  }
}

/**
 * TracInCP: loss gradients of the chosen layers' parameters (every parameter
 * by default) at each checkpoint. Per-example gradients of linear and
 * convolution layers are taken in closed form from the layer's input and
 * output gradient (no loop over examples), and a linear layer's are never
 * formed (two examples' gradients dot as the product of their inputs' and
 * output gradients' dot products); other layers' take one backward pass per
 * example.
 */
export class TracInCP extends TracInBase<TracInCPInit> {
  protected readonly name = "TracInCP";
  constructor(model: Model, train: TrainingData, checkpoints: Checkpoint | Checkpoint[], init: TracInCPInit = {}) {
    super(model, train, init, checkpointList(checkpoints));
    if (init.layers !== undefined && (!Array.isArray(init.layers) || init.layers.length === 0 || init.layers.some((l) => typeof l !== "string")))
      throw bad("layers", "expected an array of layer names");
  }
  protected gradientOptions() {
    return this.init.layers ? { layers: this.init.layers } : {};
  }
}

/**
 * TracInCPFast: the final linear layer's weight alone, whose per-example
 * gradient is the outer product of the layer's output gradient and input:
 * scores are products of their dot products, never forming the gradient.
 */
export class TracInCPFast extends TracInBase<InfluenceInit> {
  protected readonly name = "TracInCPFast";
  constructor(
    model: Model,
    /** The final fully connected layer (a dotted name). */
    readonly finalFcLayer: string,
    train: TrainingData,
    checkpoints: Checkpoint | Checkpoint[],
    init: InfluenceInit = {},
  ) {
    super(model, train, init, checkpointList(checkpoints));
    checkLayerName(finalFcLayer);
  }
  protected gradientOptions() {
    return { fcLayer: this.finalFcLayer, fast: true };
  }
}

export interface TracInCPFastRandProjInit extends InfluenceInit {
  /**
   * Project the final layer's output gradient and input to about
   * sqrt(projectionDim) dimensions each (random Gaussian matrices) when their
   * outer product is larger: scores are then TracInCPFast's in expectation.
   */
  projectionDim?: number;
  /** The projections' seed (default 0; the reference's draws for the same seed). */
  seed?: number;
}

export interface RandProjInfluenceOptions extends InfluenceCallOptions {
  /** The k most influential per test example (default 5, as the reference); null for every score. */
  k?: number | null;
  proponents?: boolean;
}

/**
 * TracInCPFastRandProj: TracInCPFast's gradients embedded once per training
 * example (sqrt(learning rate) times the, possibly projected, outer product,
 * per checkpoint), kept; a test example's k most influential are then an
 * exact nearest-neighbour search by dot product over the embeddings.
 */
export class TracInCPFastRandProj extends DataInfluence<TracInCPFastRandProjInit> {
  private embedded?: Promise<{ chunks: { start: number; e: Tensor }[]; projections?: Tensor[] }>;
  constructor(
    model: Model,
    readonly finalFcLayer: string,
    train: TrainingData,
    checkpoints: Checkpoint | Checkpoint[],
    init: TracInCPFastRandProjInit = {},
  ) {
    super(model, train, init, checkpointList(checkpoints));
    checkLayerName(finalFcLayer);
    integerOption(init.projectionDim, "projectionDim", 1);
    integerOption(init.seed, "seed", 0);
  }

  private async common() {
    return { checkpoints: await this.checkpoints(), learningRates: this.learningRates(), fcLayer: this.finalFcLayer, fast: true };
  }

  /** The training set's embeddings, made on first use and kept. */
  private trainEmbeddings(control: Control) {
    return (this.embedded ??= (async () => {
      const common = await this.common();
      const chunks: { start: number; e: Tensor }[] = [];
      let projections: Tensor[] | undefined;
      try {
        await this.overTraining(control, async (chunk) => {
          const r = await this.native("TracInProjected", this.model, chunk.inputs, {
            ...common, labels: chunk.labels, lossFn: this.lossFn(true),
            ...(projections ? { projections } : this.init.projectionDim !== undefined ? { projectionDim: this.init.projectionDim, seed: this.init.seed ?? 0 } : {}),
          }, control);
          if (r.length === 3) projections = r.slice(1);
          chunks.push({ start: chunk.start, e: r[0] });
        });
      } catch (e) {
        chunks.forEach((c) => c.e.dispose());
        this.embedded = undefined;
        throw e;
      }
      return { chunks, projections };
    })());
  }

  /**
   * The k most influential training examples per test example (k = 5 by
   * default; `k: null` gives every score, [nTest, nTrain]).
   */
  influence(test: TestData, options?: RandProjInfluenceOptions & { k?: number }): Promise<KMostInfluential>;
  influence(test: TestData, options: RandProjInfluenceOptions & { k: null }): Promise<Tensor>;
  async influence(test: TestData, options: RandProjInfluenceOptions = {}): Promise<KMostInfluential | Tensor> {
    const control = new Control("TracInCPFastRandProj", options, ["k", "proponents"]);
    const k = options.k === null ? undefined : await this.kOption(options.k ?? 5);
    const { chunks, projections } = await this.trainEmbeddings(control);
    const { chunk: t, owned } = await this.testData(test);
    let embedded: Tensor | undefined;
    try {
      [embedded] = await this.native("TracInProjected", this.model, t.inputs, {
        ...(await this.common()), labels: t.labels, lossFn: this.lossFn(true), ...(projections ? { projections } : {}),
      }, control);
      const top = k === undefined ? undefined : new TopK(k, options.proponents ?? true);
      const n = chunks.reduce((s, c) => s + c.e.shape[0], 0);
      const matrix = top ? undefined : new ScoreMatrix(embedded.shape[0], n);
      for (const c of chunks) await this.embeddingScores(embedded, c, top, matrix, control);
      return top ? top.result() : matrix!.tensor();
    } finally {
      embedded?.dispose();
      if (owned) [...t.inputs, ...(t.labels ? [t.labels] : [])].forEach((x) => x.dispose());
    }
  }

  /**
   * Self-influence as TracInCPFast computes it (exact, not projected; the
   * reference leaves this method unimplemented).
   */
  selfInfluence(data?: TrainingData, options: InfluenceCallOptions = {}): Promise<Tensor> {
    return this.selfInfluenceBy("TracInCPFastRandProj", "TracInSelfInfluence", async () => this.model, () => this.common(), data, options);
  }

  async dispose(): Promise<void> {
    const e = this.embedded ? await this.embedded.catch(() => undefined) : undefined;
    e?.chunks.forEach((c) => c.e.dispose());
    e?.projections?.forEach((p) => p.dispose());
    this.embedded = undefined;
    await super.dispose();
  }
}
