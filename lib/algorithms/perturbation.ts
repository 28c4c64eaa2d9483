// Perturbation family: attributions from forward passes on perturbed copies
// of the inputs, built and evaluated natively.
import { Attribution, AttributionResult, Exact, Inputs, OptionsAttribution } from "../attribution";
import { Tensor, tensor } from "../tensor";
import type { NativeTensor } from "../native";
import { toNative } from "../options";
import type { BaselineType, TargetOptions } from "../types";

export interface PerturbationOptions extends TargetOptions {
  /**
   * Perturbed copies per forward pass. Default ("auto"): when the model's
   * output follows its batch (probed once per model and input shape), as
   * many as make about 50 ms of work within `memoryBudget`, which turns
   * hundreds of forward calls on a small model into a few; one per pass for
   * models that return one value per batch. Results do not depend on it.
   */
  perturbationsPerEval?: number | "auto";
}

export interface FeatureMaskOptions {
  /**
   * Feature ids per input (integer tensors broadcastable to the inputs; a batch
   * dimension of 1 shares the mask). Ids run from 0 and may span inputs.
   * Default: every element is its own feature.
   */
  featureMask?: Tensor | Tensor[];
}

export interface FeatureAblationOptions extends PerturbationOptions, FeatureMaskOptions {
  /** What an ablated feature is replaced with (default 0). */
  baselines?: BaselineType;
}

/** Output change when each feature is replaced by its baseline. */
export class FeatureAblation extends OptionsAttribution<FeatureAblationOptions> {
  readonly algorithm = "FeatureAblation";
}

export type FeaturePermutationOptions = PerturbationOptions & FeatureMaskOptions;

/** Output change when each feature is shuffled across the batch (needs 2+ examples). */
export class FeaturePermutation extends OptionsAttribution<FeaturePermutationOptions> {
  readonly algorithm = "FeaturePermutation";
}

export interface OcclusionOptions extends PerturbationOptions {
  /** Window shape per input, without the batch dimension (one array for a single input). */
  slidingWindowShapes: number[] | number[][];
  /** Step per dimension (a number for all), per input; default 1. */
  strides?: number | number[] | (number | number[])[];
  baselines?: BaselineType;
}

/** Output change when sliding windows are replaced by the baseline, averaged over the windows covering each element. */
export class Occlusion extends OptionsAttribution<OcclusionOptions> {
  readonly algorithm = "Occlusion";
}

export interface ShapleyValuesOptions extends PerturbationOptions, FeatureMaskOptions {
  /** Value of an absent feature (default 0). */
  baselines?: BaselineType;
}

/** Exact Shapley values over the features (every coalition evaluated once; at most 20 features). */
export class ShapleyValues extends OptionsAttribution<ShapleyValuesOptions> {
  readonly algorithm = "ShapleyValues";
}

export interface ShapleyValueSamplingOptions extends ShapleyValuesOptions {
  /** Random feature orders sampled (default 25). */
  nSamples?: number;
}

/** Shapley values estimated from random feature orders. */
export class ShapleyValueSampling extends OptionsAttribution<ShapleyValueSamplingOptions> {
  readonly algorithm = "ShapleyValueSampling";
}

export interface LimeOptions extends ShapleyValuesOptions {
  /** Random coalitions evaluated (default 50). */
  nSamples?: number;
  /** The surrogate: "lasso" (default, alpha 0.01), "ridge" (alpha 1) or "linear" least squares. */
  interpretableModel?: "lasso" | "ridge" | "linear";
  alpha?: number;
  /** Similarity kernel exp(-d^2 / (2 width^2)) on this distance between input and perturbed input (default cosine). */
  distanceMode?: "cosine" | "euclidean";
  kernelWidth?: number;
  /** Coefficients spread onto the inputs' shape (default true), or one row of F coefficients per example. */
  returnInputShape?: boolean;
  /**
   * Replaces the sampling: called once per sample with the example's inputs,
   * returns F zeros and ones (1: the feature keeps its value). Synchronous.
   */
  perturbFunc?: (originalInputs: Tensor[]) => Tensor | number[];
  /**
   * Replaces the similarity kernel: called once per sample with the example's
   * inputs, the perturbed inputs and the [1, F] coalition; returns the
   * sample's weight. Synchronous.
   */
  similarityFunc?: (originalInputs: Tensor[], perturbedInputs: Tensor[], interpretableSample: Tensor) => number;
}

/** Coefficients of a weighted linear surrogate fitted to random coalitions of features. */
export class Lime extends Attribution {
  readonly algorithm = "Lime";
  attribute<I extends Inputs, P extends LimeOptions = never>(inputs: I, options?: Exact<LimeOptions, P>): Promise<AttributionResult<I, P>> {
    const { perturbFunc, similarityFunc } = options ?? {};
    // Callbacks see Tensors, and hand tensors (or plain numbers) back to the native core.
    const wrapped = {
      ...options,
      ...(perturbFunc ? { perturbFunc: (xs: NativeTensor[]) => toNative(asTensor(perturbFunc(xs.map((t) => new Tensor(t))))) } : {}),
      ...(similarityFunc
        ? {
            similarityFunc: (xs: NativeTensor[], ps: NativeTensor[], z: NativeTensor) =>
              similarityFunc(xs.map((t) => new Tensor(t)), ps.map((t) => new Tensor(t)), new Tensor(z)),
          }
        : {}),
    };
    return this.run(inputs, wrapped);
  }
}

function asTensor(v: Tensor | number[]): Tensor {
  return Array.isArray(v) ? tensor(v, [v.length], "int64") : v;
}

export interface KernelShapOptions extends ShapleyValuesOptions {
  /** Coalitions evaluated (default 25), the first two all and none. */
  nSamples?: number;
  returnInputShape?: boolean;
}

/** Shapley values from a linear regression on coalitions drawn by the Shapley kernel. */
export class KernelShap extends OptionsAttribution<KernelShapOptions> {
  readonly algorithm = "KernelShap";
}
