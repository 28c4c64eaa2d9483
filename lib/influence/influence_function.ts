// Influence functions (Koh & Liang 2017), as Captum's NaiveInfluenceFunction
// and ArnoldiInfluenceFunction: g(test)^T (H + reg I)^-1 g(train) at one
// checkpoint, with H the Hessian of the training loss summed over the Hessian
// set, inverted on its top eigenvectors. The projection R is fitted once;
// every example is then embedded as g^T R (the training set's embeddings are
// kept), and scores are dot products of embeddings.
import { Model } from "../model";
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import { checkpointList, Control, DataInfluence, InfluenceCallOptions, InfluenceInit, integerOption, KMostInfluential, ScoreMatrix, TestData, TopK } from "./base";
import { Dataset, openDataset, TrainingData } from "./data";

export interface InfluenceFunctionInit extends InfluenceInit {
  /** Layers (dotted names) whose parameters are measured; default every parameter. */
  layers?: string[];
  /** The examples the Hessian is summed over (default: the training set), read into memory. */
  hessianDataset?: TrainingData;
  /** Eigenvectors kept (default 50). */
  projectionDim?: number;
  /** Added to the Hessian's diagonal (default 1e-6 naive, 1e-3 Arnoldi). */
  hessianReg?: number;
  /** Eigenvalues at or below it are dropped (default 1e-5 naive, 1e-4 Arnoldi). */
  hessianInverseTol?: number;
}

export interface ArnoldiInit extends InfluenceFunctionInit {
  /** Arnoldi iterations: the Krylov basis's size (default 200). */
  arnoldiDim?: number;
  /** Stops the iteration when the new residual's norm is below it (default 0.1, the reference's code). */
  arnoldiTol?: number;
  /** The start vector's seed (default 0). */
  seed?: number;
}

export interface InfluenceFunctionOptions extends InfluenceCallOptions {
  k?: number;
  proponents?: boolean;
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

abstract class InfluenceFunctionBase<Init extends InfluenceFunctionInit> extends DataInfluence<Init> {
  protected abstract readonly name: string;
  protected abstract fitOptions(): Record<string, unknown>;
  private fitted?: Promise<Tensor>;
  private trainEmbedded?: Promise<{ start: number; e: Tensor }[]>;

  constructor(model: Model, train: TrainingData, checkpoint: string, init: Init) {
    super(model, train, init, checkpointList(checkpoint, "checkpoint"));
    if (typeof checkpoint !== "string") throw bad("checkpoint", "expected the path of a TorchScript file");
    if (init.layers !== undefined && (!Array.isArray(init.layers) || init.layers.length === 0 || init.layers.some((l) => typeof l !== "string")))
      throw bad("layers", "expected an array of layer names");
    integerOption(init.projectionDim, "projectionDim", 1);
    for (const key of ["hessianReg", "hessianInverseTol"] as const)
      if (init[key] !== undefined && !(typeof init[key] === "number" && Number.isFinite(init[key]))) throw bad(key, "expected a finite number");
  }

  private async checkpoint(): Promise<Model> {
    return (await this.checkpoints())[0];
  }
  private layerOptions() {
    return this.init.layers ? { layers: this.init.layers } : {};
  }

  /** R: parameters x kept eigenvectors, fitted on first use. */
  private projection(control: Control): Promise<Tensor> {
    return (this.fitted ??= (async () => {
      const owned = this.init.hessianDataset !== undefined;
      const set: Dataset = owned ? await openDataset(this.init.hessianDataset!, "hessianDataset") : await this.train();
      const all = await set.readAll(this.init.memoryBudget ?? Infinity, owned ? "hessianDataset" : "the training set (the Hessian's)");
      try {
        if (!all.labels) throw bad(owned ? "hessianDataset.labels" : "train.labels", "expected labels, which the loss needs");
        const [r, eigenvalues] = await this.native(this.name, await this.checkpoint(), all.inputs, {
          ...this.layerOptions(), ...this.fitOptions(), labels: all.labels, lossFn: this.lossFn(),
        }, control);
        eigenvalues.dispose();
        return r;
      } catch (e) {
        this.fitted = undefined;
        throw e;
      } finally {
        [...all.inputs, ...(all.labels ? [all.labels] : [])].forEach((t) => t.dispose());
        if (owned) await set.close();
      }
    })());
  }

  private async embed(inputs: Tensor[], labels: Tensor | undefined, test: boolean, control: Control, norms = false): Promise<Tensor> {
    const [e] = await this.native("InfluenceEmbed", await this.checkpoint(), inputs, {
      ...this.layerOptions(), labels, lossFn: this.lossFn(test), projection: await this.projection(control), norms,
    }, control);
    return e;
  }

  private trainEmbeddings(control: Control) {
    return (this.trainEmbedded ??= (async () => {
      const out: { start: number; e: Tensor }[] = [];
      try {
        await this.overTraining(control, async (chunk) => void out.push({ start: chunk.start, e: await this.embed(chunk.inputs, chunk.labels, false, control) }));
      } catch (e) {
        out.forEach((c) => c.e.dispose());
        this.trainEmbedded = undefined;
        throw e;
      }
      return out;
    })());
  }

  /** Influence of every training example on every test example, [nTest, nTrain]; with `k`, the k most influential. */
  influence(test: TestData, options: InfluenceFunctionOptions & { k: number }): Promise<KMostInfluential>;
  influence(test: TestData, options?: InfluenceFunctionOptions & { k?: undefined }): Promise<Tensor>;
  async influence(test: TestData, options?: InfluenceFunctionOptions): Promise<KMostInfluential | Tensor> {
    const o: InfluenceFunctionOptions = options ?? {};
    const control = new Control(this.name, o, ["k", "proponents"]);
    const k = await this.kOption(o.k);
    const chunks = await this.trainEmbeddings(control);
    const { chunk: t, owned } = await this.testData(test);
    let e: Tensor | undefined;
    try {
      e = await this.embed(t.inputs, t.labels, true, control);
      const top = k === undefined ? undefined : new TopK(k, o.proponents ?? true);
      const matrix = top ? undefined : new ScoreMatrix(e.shape[0], chunks.reduce((n, c) => n + c.e.shape[0], 0));
      for (const c of chunks) await this.embeddingScores(e, c, top, matrix, control);
      return top ? top.result() : matrix!.tensor();
    } finally {
      e?.dispose();
      if (owned) [...t.inputs, ...(t.labels ? [t.labels] : [])].forEach((x) => x.dispose());
    }
  }

  /** Self-influence g^T (H + reg I)^-1 g of each example (the training set's by default), [n]. */
  selfInfluence(data?: TrainingData, options: InfluenceCallOptions = {}): Promise<Tensor> {
    const control = new Control(this.name, options);
    return this.selfInfluenceBy(this.name, "InfluenceEmbed", () => this.checkpoint(), async () => ({
      ...this.layerOptions(), projection: await this.projection(control), norms: true,
    }), data, options);
  }

  async dispose(): Promise<void> {
    const r = this.fitted ? await this.fitted.catch(() => undefined) : undefined;
    r?.dispose();
    this.fitted = undefined;
    const chunks = this.trainEmbedded ? await this.trainEmbedded.catch(() => []) : [];
    chunks.forEach((c) => c.e.dispose());
    this.trainEmbedded = undefined;
    await super.dispose();
  }
}

/**
 * NaiveInfluenceFunction: the Hessian formed (one backward pass of the
 * gradient per measured parameter, summed over the Hessian set) and
 * eigendecomposed. For models with few measured parameters (a layer or two).
 */
export class NaiveInfluenceFunction extends InfluenceFunctionBase<InfluenceFunctionInit> {
  protected readonly name = "NaiveInfluenceFunction";
  constructor(model: Model, train: TrainingData, checkpoint: string, init: InfluenceFunctionInit = {}) {
    super(model, train, checkpoint, init);
  }
  protected fitOptions() {
    const { projectionDim, hessianReg, hessianInverseTol } = this.init;
    return { projectionDim: projectionDim ?? 50, hessianReg: hessianReg ?? 1e-6, hessianInverseTol: hessianInverseTol ?? 1e-5 };
  }
}

/**
 * ArnoldiInfluenceFunction: the Hessian's top eigenvectors from an Arnoldi
 * iteration of Hessian-vector products (no Hessian formed): for models with
 * many parameters.
 */
export class ArnoldiInfluenceFunction extends InfluenceFunctionBase<ArnoldiInit> {
  protected readonly name = "ArnoldiInfluenceFunction";
  constructor(model: Model, train: TrainingData, checkpoint: string, init: ArnoldiInit = {}) {
    super(model, train, checkpoint, init);
    integerOption(init.arnoldiDim, "arnoldiDim", 2);
    integerOption(init.seed, "seed", 0);
    if (init.arnoldiTol !== undefined && !(typeof init.arnoldiTol === "number" && init.arnoldiTol >= 0)) throw bad("arnoldiTol", "expected a number >= 0");
  }
  protected fitOptions() {
    const { projectionDim, hessianReg, hessianInverseTol, arnoldiDim, arnoldiTol, seed } = this.init;
    return {
      projectionDim: projectionDim ?? 50, hessianReg: hessianReg ?? 1e-3, hessianInverseTol: hessianInverseTol ?? 1e-4,
      arnoldiDim: arnoldiDim ?? 200, arnoldiTol: arnoldiTol ?? 0.1, seed: seed ?? 0,
    };
  }
}
