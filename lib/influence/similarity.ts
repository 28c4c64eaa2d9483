// SimilarityInfluence: the training examples whose layer activations are most
// alike a test example's, layer by layer (Captum's SimilarityInfluence).
import { Model } from "../model";
import { Tensor } from "../tensor";
import { runAlgorithm } from "../attribution";
import { TorchExplainError } from "../errors";
import { Control, DataInfluence, InfluenceCallOptions, InfluenceInit, integerOption } from "./base";
import { TrainingData } from "./data";

export interface SimilarityInfluenceInit extends Pick<InfluenceInit, "batchSize" | "memoryBudget"> {
  /** "cosine" (default) or "euclidean" (the distance itself, so "min" finds the nearest). */
  similarityMetric?: "cosine" | "euclidean";
  /** "max" (default): the highest values first; "min": the lowest. */
  similarityDirection?: "max" | "min";
  /** Stands in for each value of a zero activation row under cosine (default -2 for "max", 2 for "min"), as the reference. */
  replaceNan?: number;
}

export interface SimilarityOptions extends InfluenceCallOptions {
  /** How many training examples per test example (default 1). */
  topK?: number;
  /** Extra forward() arguments after the inputs. */
  additionalForwardArgs?: unknown[];
}

/** Per layer: the topK most similar training examples per test example and their similarities. */
export type SimilarityResult = Record<string, { indices: Tensor; scores: Tensor }>;

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

export class SimilarityInfluence extends DataInfluence<SimilarityInfluenceInit> {
  readonly layers: string[];
  constructor(model: Model, layers: string | string[], influenceSrcDataset: TrainingData, init: SimilarityInfluenceInit = {}) {
    super(model, influenceSrcDataset, init);
    this.layers = typeof layers === "string" ? [layers] : layers;
    if (!Array.isArray(this.layers) || this.layers.length === 0 || this.layers.some((l) => typeof l !== "string"))
      throw bad("layers", "expected a layer name or an array of them");
    if (init.similarityMetric !== undefined && init.similarityMetric !== "cosine" && init.similarityMetric !== "euclidean")
      throw bad("similarityMetric", `expected "cosine" or "euclidean", got ${JSON.stringify(init.similarityMetric)}`);
    if (init.similarityDirection !== undefined && init.similarityDirection !== "max" && init.similarityDirection !== "min")
      throw bad("similarityDirection", `expected "max" or "min", got ${JSON.stringify(init.similarityDirection)}`);
  }

  /** The topK most similar training examples to each of `inputs`, for every layer. */
  async influence(inputs: Tensor | Tensor[], options: SimilarityOptions = {}): Promise<SimilarityResult> {
    const control = new Control("SimilarityInfluence", options, ["topK", "additionalForwardArgs"]);
    const k = integerOption(options.topK, "topK", 1) ?? 1;
    const set = await this.train();
    if (k > set.count) throw bad("topK", `${k} is more than the ${set.count} examples of the training set`);
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const extra = options.additionalForwardArgs ? { additionalForwardArgs: options.additionalForwardArgs } : {};
    const test = (await runAlgorithm(this.model, "LayerActivation", list, { layer: this.layers, ...extra, ...this.base(), ...control.request() })).attributions;
    const { similarityMetric, similarityDirection, replaceNan } = this.init;
    const metric = { ...(similarityMetric ? { similarityMetric } : {}), ...(similarityDirection ? { similarityDirection } : {}), ...(replaceNan !== undefined ? { replaceNan } : {}) };
    let best: Tensor[] | undefined;
    try {
      await this.overTraining(control, async (chunk) => {
        const r = await this.native("SimilarityScores", this.model, chunk.inputs, {
          layer: this.layers, test, k, offset: chunk.start, ...metric, ...extra, ...(best ? { best } : {}),
        }, control);
        best?.forEach((t) => t.dispose());
        best = r;
      }, false);
    } finally {
      test.forEach((t) => t.dispose());
    }
    const out: SimilarityResult = {};
    this.layers.forEach((l, i) => (out[l] = { indices: best![2 * i], scores: best![2 * i + 1] }));
    return out;
  }
}
