// Concept-based interpretability (Captum's captum.concept): TCAV. Concept
// activations are collected natively at the named layers, concept activation
// vectors (CAVs) trained natively, and scored against the layer gradients of
// the inputs. CAVs are cached under `savePath`, keyed by model, concept set
// and layer.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { runAlgorithm } from "../attribution";
import { Model } from "../model";
import { Tensor, tensor } from "../tensor";
import type { AttributeOptions, ForwardArg, TargetType } from "../types";
import { TorchExplainError } from "../errors";
import { concatRows } from "../robust/tensor_ops";

/** Examples of a concept: a Tensor of examples, an array of batches, or an async iterable of batches. */
export type ConceptData = Tensor | Tensor[] | AsyncIterable<Tensor> | Iterable<Tensor>;

export class Concept {
  constructor(
    /** A unique integer id: it orders the classes of a CAV and names score sets ("0-1"). */
    readonly id: number,
    readonly name: string,
    readonly data: ConceptData,
  ) {
    if (!Number.isInteger(id) || id < 0) throw new TorchExplainError(`id: expected an integer >= 0, got ${id}`, "ERR_BAD_OPTION");
  }
  toString(): string {
    return `${this.id}:${this.name}`;
  }
}

export interface TCAVInit {
  /** The linear classifier behind each CAV: "sgd" (default, a linear SVM like the reference's) or "logistic". */
  classifier?: "sgd" | "logistic";
  /** What is projected on the CAVs: "gradient" (default, the layer gradient, as the reference) or "gradientXActivation". */
  layerAttrMethod?: "gradient" | "gradientXActivation";
  /** Use the layers' inputs instead of their outputs (default false). */
  attributeToLayerInput?: boolean;
  /** A folder where CAVs are saved and reloaded (default: none, no cache). */
  savePath?: string;
  /** Names the model in cache keys (default: a hash of the model file). */
  modelId?: string;
  /** Seed of the train/test split and the SGD order (default 0). */
  seed?: number;
}

export interface TCAVOptions extends AttributeOptions {
  target?: TargetType;
  additionalForwardArgs?: ForwardArg[];
}

/** One layer's scores for a concept set: one value per concept, in the set's order. */
export interface TCAVScore {
  /** Share of inputs whose directional derivative along the concept is positive. */
  signCount: Tensor;
  /** Mean directional derivative along the concept. */
  magnitude: Tensor;
}
/** Scores by concept set ("0-1": the concepts' ids) and layer. */
export type TCAVScores = Record<string, Record<string, TCAVScore>>;

/** A trained CAV: one direction per class (ascending class ids), and its held-out accuracy. */
export interface CAV {
  concepts: number[];
  layer: string;
  classes: number[];
  vectors: number[][];
  accuracy: number | null;
}

export interface SignificanceResult {
  /** Per layer: the concept's sign counts against each random concept, the random concepts' among themselves, t and the two-sided p-value. */
  [layer: string]: { scores: number[]; nullScores: number[]; t: number; pValue: number; note?: string };
}

export class TCAV {
  private activations = new Map<string, Tensor[]>();
  private cavs = new Map<string, CAV>();
  private modelKey?: string;

  constructor(
    readonly model: Model,
    readonly layers: string[],
    readonly init: TCAVInit = {},
  ) {
    if (!(model instanceof Model)) throw new TorchExplainError("model: expected a Model from loadModel()", "ERR_BAD_OPTION");
    if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => typeof l === "string"))
      throw new TorchExplainError("layers: expected a non-empty array of layer names", "ERR_BAD_OPTION");
    const known = model.layers();
    for (const l of layers)
      if (!known.includes(l)) throw new TorchExplainError(`layers: the model has no layer '${l}' (it has: ${known.slice(0, 20).join(", ")}${known.length > 20 ? ", ..." : ""})`, "ERR_BAD_OPTION");
  }

  /** TCAV scores of the inputs for every concept set and layer. */
  async attribute(inputs: Tensor | Tensor[], experimentalSets: Concept[][], options: TCAVOptions = {}): Promise<TCAVScores> {
    if (!Array.isArray(experimentalSets) || experimentalSets.length === 0)
      throw new TorchExplainError("experimentalSets: expected a non-empty array of concept sets", "ERR_BAD_OPTION");
    for (const [i, set] of experimentalSets.entries()) {
      if (!Array.isArray(set) || set.length < 2 || !set.every((c) => c instanceof Concept))
        throw new TorchExplainError(`experimentalSets[${i}]: expected an array of at least two Concepts`, "ERR_BAD_OPTION");
      if (new Set(set.map((c) => c.id)).size !== set.length) throw new TorchExplainError(`experimentalSets[${i}]: concept ids must differ`, "ERR_BAD_OPTION");
    }
    const scores: TCAVScores = {};
    for (const layer of this.layers) {
      const grads = await this.layerAttributions(inputs, layer, options);
      try {
        for (const set of experimentalSets) {
          const cav = await this.computeCAV(set, layer, options);
          const key = set.map((c) => c.id).join("-");
          // The CAV directions in the set's concept order, projected natively.
          const vectors = set.map((c) => cav.vectors[cav.classes.indexOf(c.id)]);
          const d = vectors[0].length;
          const cavs = tensor(Float32Array.from(vectors.flat()), [set.length, d]);
          const [derivatives, sign, magnitude] = (await runAlgorithm(this.model, "ProjectCAVs", [grads, cavs], { signal: options.signal })).attributions;
          cavs.dispose();
          derivatives.dispose();
          (scores[key] ??= {})[layer] = { signCount: sign, magnitude };
          }
      } finally {
        grads.dispose();
      }
    }
    return scores;
  }

  /**
   * Whether a concept matters beyond chance (beyond the reference, which leaves
   * this to its tutorials): its sign counts against each random concept
   * compared, by a two-sided Welch t-test, with the random concepts' sign
   * counts against each other.
   */
  async significance(inputs: Tensor | Tensor[], concept: Concept, randomConcepts: Concept[], options: TCAVOptions = {}): Promise<SignificanceResult> {
    if (!Array.isArray(randomConcepts) || randomConcepts.length < 3)
      throw new TorchExplainError("randomConcepts: expected at least 3 random concepts", "ERR_BAD_OPTION");
    const [first, ...rest] = randomConcepts;
    const sets = [...randomConcepts.map((r) => [concept, r]), ...rest.map((r) => [first, r])];
    const s = await this.attribute(inputs, sets, options);
    const out: SignificanceResult = {};
    for (const layer of this.layers) {
      const pick = (set: Concept[]) => (s[set.map((c) => c.id).join("-")][layer].signCount.data() as Float32Array)[0];
      const scores = randomConcepts.map((r) => pick([concept, r]));
      const nullScores = rest.map((r) => pick([first, r]));
      out[layer] = { scores, nullScores, ...welch(scores, nullScores) };
    }
    return out;
  }

  /** The CAV of a concept set at a layer: from the cache, `savePath`, or trained now. */
  async computeCAV(concepts: Concept[], layer: string, options: { signal?: AbortSignal } = {}): Promise<CAV> {
    const ids = concepts.map((c) => c.id);
    const key = `${await this.modelId()}-${ids.join("-")}-${layer}${this.init.attributeToLayerInput ? "-input" : ""}-${this.init.classifier ?? "sgd"}`;
    const cached = this.cavs.get(key);
    if (cached) return cached;
    const file = this.init.savePath ? path.join(this.init.savePath, `${key.replace(/[^A-Za-z0-9._-]/g, "_")}.json`) : undefined;
    if (file && fs.existsSync(file)) {
      try {
        const saved = JSON.parse(fs.readFileSync(file, "utf8")) as CAV;
        if (saved.layer === layer && saved.concepts.join("-") === ids.join("-")) {
          this.cavs.set(key, saved);
          return saved;
        }
      } catch {
        // an unreadable cache entry is recomputed and rewritten
      }
    }
    const batches: Tensor[] = [], labels: number[] = [];
    for (const c of concepts) {
      const acts = await this.conceptActivations(c, layer, options.signal);
      if (acts.length === 0) throw new TorchExplainError(`concepts: concept ${c.id} ('${c.name}') has no examples`, "ERR_BAD_OPTION");
      for (const a of acts) {
        batches.push(a);
        for (let i = 0; i < a.shape[0]; i++) labels.push(c.id);
      }
    }
    // Joined natively: the activations never pass through JavaScript arrays.
    const x = concatRows(batches, "concept activations");
    const y = tensor(BigInt64Array.from(labels, BigInt), [labels.length], "int64");
    const r = await runAlgorithm(this.model, "TrainCAV", [x, y], {
      classifier: this.init.classifier ?? "sgd",
      seed: this.init.seed ?? 0,
      signal: options.signal,
    });
    if (batches.length > 1) x.dispose();
    y.dispose();
    const [weights, classes, accuracy] = r.attributions;
    const w = weights.data() as Float32Array;
    const d = weights.shape[1];
    const cls = Array.from(classes.data() as BigInt64Array, Number);
    const acc = (accuracy.data() as Float32Array)[0];
    const cav: CAV = {
      concepts: ids,
      layer,
      classes: cls,
      vectors: cls.map((_, k) => Array.from(w.subarray(k * d, (k + 1) * d))),
      accuracy: Number.isNaN(acc) ? null : acc,
    };
    this.cavs.set(key, cav);
    if (file) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(cav));
      fs.renameSync(tmp, file);
    }
    return cav;
  }

  private async modelId(): Promise<string> {
    if (this.init.modelId) return this.init.modelId;
    if (!this.modelKey)
      this.modelKey = this.model.path && fs.existsSync(this.model.path)
        ? createHash("sha256").update(await fs.promises.readFile(this.model.path)).digest("hex").slice(0, 16)
        : "model";
    return this.modelKey;
  }

  // Activations of every batch of a concept at a layer (kept per concept and layer).
  private async conceptActivations(concept: Concept, layer: string, signal?: AbortSignal): Promise<Tensor[]> {
    const key = `${concept.id}/${layer}`;
    const known = this.activations.get(key);
    if (known) return known;
    const out: Tensor[] = [];
    const data = concept.data;
    const batches: AsyncIterable<Tensor> | Iterable<Tensor> = data instanceof Tensor ? [data] : data;
    for await (const batch of batches) {
      if (!(batch instanceof Tensor)) throw new TorchExplainError(`concept ${concept.id} ('${concept.name}'): expected batches of Tensors`, "ERR_BAD_OPTION");
      if (batch.shape[0] === 0) continue;
      const r = await runAlgorithm(this.model, "LayerActivation", batch, { layer, attributeToLayerInput: this.init.attributeToLayerInput ?? false, signal });
      out.push(r.attributions[0]);
    }
    this.activations.set(key, out);
    return out;
  }

  // Per input: the layer attribution the CAVs are scored against.
  private async layerAttributions(inputs: Tensor | Tensor[], layer: string, options: TCAVOptions): Promise<Tensor> {
    const r = await runAlgorithm(this.model, "LayerGradientXActivation", inputs, {
      ...options,
      layer,
      attributeToLayerInput: this.init.attributeToLayerInput ?? false,
      multiplyByInputs: (this.init.layerAttrMethod ?? "gradient") === "gradientXActivation",
    });
    return r.attributions[0];
  }
}

/** @internal Two-sided Welch t-test (exported for its test). */
export function welch(a: number[], b: number[]): { t: number; pValue: number; note?: string } {
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const variance = (v: number[], m: number) => v.reduce((s, x) => s + (x - m) ** 2, 0) / (v.length - 1);
  const ma = mean(a), mb = mean(b), va = variance(a, ma) / a.length, vb = variance(b, mb) / b.length;
  const se = Math.sqrt(va + vb);
  // Both samples constant (every sign count equal, say): no spread to test against.
  if (se === 0) return { t: NaN, pValue: NaN, note: "undefined: both samples have zero variance (every score in each is the same), so no t-test applies" };
  const t = (ma - mb) / se;
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return { t, pValue: incompleteBeta(df / (df + t * t), df / 2, 0.5) };
}

// Regularised incomplete beta I_x(a, b) by its continued fraction (Lentz):
// the Student t tail, P(|T| > t) = I_{df/(df+t²)}(df/2, 1/2).
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let f = d;
  for (let m = 1; m <= 300; m++) {
    for (const num of [(m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)), -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))]) {
      d = 1 + num * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      f *= c * d;
    }
    if (Math.abs(c * d - 1) < 1e-12) break;
  }
  return (Math.exp(lnFront) * f) / a;
}

// log Γ(x) by the Lanczos approximation (g = 7).
function lgamma(x: number): number {
  const g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
  x -= 1;
  let s = g[0];
  for (let i = 1; i < 9; i++) s += g[i] / (x + i);
  const t = x + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(s);
}
