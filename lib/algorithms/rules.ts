// Rule-based backprop: DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution,
// LRP. Natively, the model's TorchScript graph is rewritten so that the ops a
// rule touches run the rule in their backward pass.
import { OptionsAttribution } from "../attribution";
import type { Tensor } from "../tensor";
import type { BaselineType, BatchOptions, DeltaOptions, TargetOptions } from "../types";
import type { MultiplyByInputs } from "./gradient";

export interface DeepLiftOptions extends TargetOptions, BatchOptions, DeltaOptions {
  /** References (default 0): a number, a tensor shaped like the input (or broadcastable), or one per input. */
  baselines?: BaselineType;
}

export interface DeepLiftInit extends MultiplyByInputs {
  /**
   * true (default): Captum 0.7's results. Where a nonlinearity feeds another
   * directly (ReLU then max pooling), Captum's hooks give the first one the
   * plain gradient of the second in its multiplier, so attributions do not
   * sum exactly to F(input) − F(baseline) there. false: multipliers chain
   * through (the DeepLift paper's rule), and summation to delta holds.
   */
  captumCompatible?: boolean;
}

/**
 * DeepLift with the Rescale rule: multipliers Δoutput/Δinput through every
 * nonlinearity (relu, elu, sigmoid, tanh, softplus, ..., max pooling, softmax),
 * plain gradients through linear ops. Completeness: attributions sum to
 * F(input) − F(baseline).
 */
export class DeepLift extends OptionsAttribution<DeepLiftOptions, DeepLiftInit> {
  readonly algorithm = "DeepLift";
}

export interface DeepLiftShapOptions extends TargetOptions, BatchOptions, DeltaOptions {
  /** Reference samples: one tensor per input whose rows are references (every example is explained against each). */
  baselines: BaselineType;
}

/** DeepLift averaged over a distribution of references (SHAP values' approximation). */
export class DeepLiftShap extends OptionsAttribution<DeepLiftShapOptions, DeepLiftInit> {
  readonly algorithm = "DeepLiftShap";
}

export type GuidedBackpropOptions = TargetOptions & BatchOptions;

/** Gradient in which every ReLU also stops negative gradients. */
export class GuidedBackprop extends OptionsAttribution<GuidedBackpropOptions> {
  readonly algorithm = "GuidedBackprop";
}

/** Gradient in which every ReLU passes the positive part of the gradient instead of its own gradient. */
export class Deconvolution extends OptionsAttribution<GuidedBackpropOptions> {
  readonly algorithm = "Deconvolution";
}

/** LRP rule names (Captum's EpsilonRule, GammaRule, Alpha1_Beta0_Rule, IdentityRule; Zennit's ZPlus and ZBox). */
export type LRPRuleName = "epsilon" | "gamma" | "alpha1beta0" | "zplus" | "zbox" | "identity";

export interface LRPRuleSpec {
  rule: LRPRuleName;
  /** Stabiliser added to the denominators (default: the LRP option `epsilon`). */
  epsilon?: number;
  /** Weight of positive weights in the gamma rule (default: the LRP option `gamma`). */
  gamma?: number;
  /** gamma and alpha1beta0: drop the bias (default false). */
  setBiasToZero?: boolean;
  /** zbox: lowest and highest input values (numbers, or tensors broadcastable to the layer input). */
  low?: number | Tensor;
  high?: number | Tensor;
}

export type LRPRule = LRPRuleName | LRPRuleSpec;

export interface LRPInit {
  /**
   * Rules by dotted layer name ("features.3", which also covers the layers
   * inside it), by layer type ("Conv2d") or by op ("conv2d", "add").
   * A layer name beats a type, a type beats an op; layers without a rule get
   * the preset's.
   */
  rules?: Record<string, LRPRule>;
  /**
   * "epsilon" (default, as Captum): epsilon everywhere. "epsilonPlus": z+ for
   * convolutions, epsilon for dense layers. "epsilonGammaBox": z-box on the
   * first weighted layer (needs `low` and `high`), gamma for convolutions,
   * epsilon for dense layers.
   */
  preset?: "epsilon" | "epsilonPlus" | "epsilonGammaBox";
  /** Default epsilon of every rule (1e-9). */
  epsilon?: number;
  /** Default gamma (0.25). */
  gamma?: number;
  /** Bounds of the inputs for the z-box rule. */
  low?: number | Tensor;
  high?: number | Tensor;
  /** Fold batch norms into the convolution or linear layer before them, so that rules see one layer (default false). */
  foldBatchNorm?: boolean;
}

export type LRPOptions = TargetOptions & BatchOptions & DeltaOptions;

/**
 * Layer-wise relevance propagation: the target output is redistributed layer
 * by layer by each layer's rule; activations, dropout and reshaping pass
 * relevance on. `delta` is output − sum of relevances, as Captum.
 */
export class LRP extends OptionsAttribution<LRPOptions, LRPInit> {
  readonly algorithm = "LRP";
}
