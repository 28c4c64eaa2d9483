// LLMAttribution and LLMGradientAttribution: a perturbation or layer-gradient
// method applied to a prompt, explaining the target's (log-)probability
// under a language model, or a class of an encoder classifier. The prompt's
// perturbations, the teacher-forced scoring and greedy generation all run
// natively (native/core/attr/llm.cpp); only a template's re-tokenisation
// comes back here, once per batch of perturbed prompts.
import { Attribution, runAlgorithm } from "../attribution";
import { TorchExplainError } from "../errors";
import { tensor } from "../tensor";
import type { ProgressOptions, RequestOptions } from "../types";
import { TextTemplateInput, TextTokenInput, type InterpretableInput } from "./inputs";
import { LLMAttributionResult } from "./result";
import type { Tokenizer } from "./tokenizer";
import { seededRandom } from "../random";

function bad(message: string): never {
  throw new TorchExplainError(message, "ERR_BAD_OPTION");
}

const PERTURBATION = ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap"];
const PER_TOKEN = ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues"];
const GRADIENT = ["LayerIntegratedGradients", "LayerGradientXActivation", "LayerGradientShap"];

export type LLMAttrTarget = "logProb" | "prob";

export interface GenArgs {
  /** Tokens to generate greedily (default 25, as the reference). */
  maxNewTokens?: number;
  /** Stop after this token (default: the tokenizer's end-of-sequence token). */
  eosTokenId?: number;
}

export interface LLMAttributeOptions extends RequestOptions, ProgressOptions {
  /**
   * What is explained: a text (tokenised with special tokens, as the
   * reference does), its token ids, or, for an encoder classifier, a class
   * index. Without it the target is generated greedily (genArgs).
   */
  target?: string | number[] | number;
  genArgs?: GenArgs;
  /** Target tokens to leave out (ids or vocabulary strings), e.g. a BOS token the tokenizer adds. */
  skipTokens?: (number | string)[];
  /** Runs averaged (for sampled baselines, ProductBaselines). Default 1. */
  numTrials?: number;
  /** Further options are the method's own (nSamples, nSteps, perturbationsPerEval, ...). */
  [methodOption: string]: unknown;
}

const OWN_KEYS = ["target", "genArgs", "skipTokens", "numTrials", "signal", "timeoutMs", "memoryBudget", "showProgress", "onProgress"];


abstract class BaseLLMAttribution {
  protected readonly algorithm: string;
  protected readonly methodInit: object;

  constructor(
    readonly method: Attribution,
    readonly tokenizer: Tokenizer,
    supported: string[],
  ) {
    if (!(method instanceof Attribution)) bad(`method: expected an attribution method such as new FeatureAblation(model)`);
    const call = method.nativeCall();
    if (!supported.includes(call.algorithm))
      bad(`method: ${this.constructor.name} supports ${supported.join(", ")}, not ${call.algorithm}`);
    if (!tokenizer || typeof tokenizer.encode !== "function") bad("tokenizer: expected a Tokenizer from loadTokenizer()");
    this.algorithm = call.algorithm;
    this.methodInit = call.init;
  }

  /** Attributions for one prompt, or an array of results for an array of prompts. */
  attribute(inputs: InterpretableInput, options?: LLMAttributeOptions): Promise<LLMAttributionResult>;
  attribute(inputs: InterpretableInput[], options?: LLMAttributeOptions): Promise<LLMAttributionResult[]>;
  async attribute(inputs: InterpretableInput | InterpretableInput[], options: LLMAttributeOptions = {}): Promise<LLMAttributionResult | LLMAttributionResult[]> {
    if (Array.isArray(inputs)) {
      if (inputs.length === 0) bad("inputs: expected at least one prompt");
      return Promise.all(inputs.map((inp) => this.one(inp, options)));
    }
    return this.one(inputs, options);
  }

  protected targetOptions(options: LLMAttributeOptions): Record<string, unknown> {
    const { target, genArgs, skipTokens } = options;
    if (skipTokens !== undefined && !Array.isArray(skipTokens)) bad("skipTokens: expected an array of token ids or strings");
    const skip = new Set((skipTokens ?? []).map((t) => (typeof t === "string" ? this.tokenizer.convertTokensToIds([t], "skipTokens")[0] : t)));
    if (target === undefined || target === null) {
      const g = genArgs ?? {};
      if (typeof g !== "object") bad("genArgs: expected { maxNewTokens }");
      const eos = g.eosTokenId ?? this.tokenizer.eosTokenId;
      return { maxNewTokens: g.maxNewTokens ?? 25, ...(eos !== undefined ? { eosTokenId: eos } : {}) };
    }
    if (genArgs !== undefined) bad("genArgs: only used when no target is given (the target is generated)");
    if (typeof target === "number") {
      if (!Number.isInteger(target) || target < 0) bad(`target: a class target must be an integer >= 0, got ${target}`);
      return { label: target };
    }
    let ids: number[];
    if (typeof target === "string") ids = this.tokenizer.encode(target);
    else if (Array.isArray(target) && target.every((t) => Number.isInteger(t) && t >= 0)) ids = target;
    else bad("target: expected a string, an array of token ids, or a class index");
    ids = ids.filter((t) => !skip.has(t));
    if (ids.length === 0) bad("target: is empty (no tokens to explain)");
    const outside = ids.find((id) => this.tokenizer.idToToken(id) === undefined);
    if (outside !== undefined) bad(`target: token id ${outside} is not in the tokenizer's vocabulary`);
    return { targetIds: ids };
  }

  protected abstract nativeOptions(inp: InterpretableInput, options: LLMAttributeOptions): Record<string, unknown>;

  private async one(inp: InterpretableInput, options: LLMAttributeOptions): Promise<LLMAttributionResult> {
    if (!(inp instanceof TextTemplateInput) && !(inp instanceof TextTokenInput))
      bad("inputs: expected a TextTemplateInput or a TextTokenInput");
    const methodOptions: Record<string, unknown> = { ...this.methodInit };
    for (const [k, v] of Object.entries(options)) if (!OWN_KEYS.includes(k)) methodOptions[k] = v;
    const own: Record<string, unknown> = {};
    for (const k of ["numTrials", "signal", "timeoutMs", "memoryBudget", "showProgress", "onProgress"]) if (k in options) own[k] = options[k];
    const ids = inp instanceof TextTokenInput ? inp.ids : this.tokenizer.encode(inp.toModelInput());
    if (ids.length === 0) bad("inputs: the prompt has no tokens");
    // forward(input_ids, attention_mask): the prompt's mask, so that the request checks as the model's own call.
    const twoArgs = /^forward\([^,]+,[^,]+\)$/.test(this.method.model.signature);
    if (twoArgs) own.additionalForwardArgs = [tensor(ids.map(() => 1), [1, ids.length], "int64")];
    const r = await runAlgorithm(this.method.model, "LLMAttribution", tensor(ids, [1, ids.length], "int64"), {
      method: this.algorithm,
      methodOptions,
      ...this.targetOptions(options),
      ...this.nativeOptions(inp, options),
      ...own,
    });
    const attr = r.attributions[0];
    const [rows, cols] = attr.shape;
    const data = Array.from(attr.data() as Float32Array);
    const matrix = Array.from({ length: rows }, (_, i) => data.slice(i * cols, (i + 1) * cols));
    const target = Array.from(r.attributions[1].data() as BigInt64Array, Number);
    r.attributions.forEach((t) => t.dispose());
    const label = typeof options.target === "number";
    const outputTokens = label ? [String(options.target)] : this.tokenizer.prettyTokens(target);
    return this.result(inp, matrix, outputTokens, label);
  }

  protected abstract result(inp: InterpretableInput, matrix: number[][], outputTokens: string[], label: boolean): LLMAttributionResult;
}

// Template attributions are per feature; each value gets its group's.
function perValue(inp: InterpretableInput, row: number[]): number[] {
  return inp instanceof TextTemplateInput ? inp.featureOf.map((f) => row[f]) : row;
}

export interface LLMAttributionInit {
  /** Explain the target's log-probability (default) or its probability. */
  attrTarget?: LLMAttrTarget;
}

/**
 * A perturbation method (FeatureAblation, ShapleyValueSampling,
 * ShapleyValues, Lime, KernelShap) applied to a prompt's features.
 */
export class LLMAttribution extends BaseLLMAttribution {
  readonly attrTarget: LLMAttrTarget;
  constructor(method: Attribution, tokenizer: Tokenizer, options: LLMAttributionInit = {}) {
    super(method, tokenizer, PERTURBATION);
    const t = options.attrTarget ?? "logProb";
    if (t !== "logProb" && t !== "prob") bad(`attrTarget: expected "logProb" or "prob", got ${String(t)}`);
    this.attrTarget = t;
  }

  protected nativeOptions(inp: InterpretableInput, options: LLMAttributeOptions): Record<string, unknown> {
    const base = { attrTarget: this.attrTarget };
    if (inp instanceof TextTokenInput) return { ...base, featureOf: inp.featureOf, baselineId: inp.baselineId };
    const random = seededRandom(Math.floor(Math.random() * 2 ** 32));
    const encode = (present: number[]) => this.tokenizer.encode(inp.toModelInput(present, random));
    void options;
    return {
      ...base,
      features: inp.nItpFeatures,
      deterministic: !inp.sampled,
      tokenize: (rows: number[][]) => rows.map(encode),
    };
  }

  protected result(inp: InterpretableInput, m: number[][], outputTokens: string[], label: boolean): LLMAttributionResult {
    const perToken = PER_TOKEN.includes(this.algorithm) && !label;
    return new LLMAttributionResult(perValue(inp, m[0]), perToken ? m.slice(1).map((r) => perValue(inp, r)) : null, inp.values.slice(), outputTokens);
  }
}

/**
 * A layer-gradient method (LayerIntegratedGradients, LayerGradientXActivation,
 * LayerGradientShap on the embedding layer) applied to a prompt's tokens: one
 * attribution row per target token, explaining its log-probability.
 */
export class LLMGradientAttribution extends BaseLLMAttribution {
  constructor(method: Attribution, tokenizer: Tokenizer) {
    super(method, tokenizer, GRADIENT);
  }

  protected nativeOptions(inp: InterpretableInput): Record<string, unknown> {
    if (!(inp instanceof TextTokenInput))
      bad("inputs: LLMGradientAttribution takes a TextTokenInput (gradients need token ids), not a TextTemplateInput");
    return { featureOf: inp.featureOf, baselineId: inp.baselineId };
  }

  protected result(inp: InterpretableInput, m: number[][], outputTokens: string[]): LLMAttributionResult {
    const seq = m[0].map((_, j) => m.reduce((s, r) => s + r[j], 0));
    return new LLMAttributionResult(seq, m, inp.values.slice(), outputTokens);
  }
}
