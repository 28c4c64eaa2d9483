// Gradient family: Saliency, InputXGradient, GradientShap.
import { OptionsAttribution } from "../attribution";
import type { BaselineType, BatchOptions, DeltaOptions, TargetOptions } from "../types";

export interface SaliencyOptions extends TargetOptions, BatchOptions {
  /** Absolute value of the gradient (default true). */
  abs?: boolean;
}

/** Gradient of the target output with respect to each input. */
export class Saliency extends OptionsAttribution<SaliencyOptions> {
  readonly algorithm = "Saliency";
}

export type InputXGradientOptions = TargetOptions & BatchOptions;

/** Input times the gradient of the target output. */
export class InputXGradient extends OptionsAttribution<InputXGradientOptions> {
  readonly algorithm = "InputXGradient";
}

export interface MultiplyByInputs {
  /** Multiply by (input - baseline): global attribution (default true); false gives local. */
  multiplyByInputs?: boolean;
}

export interface GradientShapOptions extends TargetOptions, BatchOptions, DeltaOptions {
  /** Reference samples, one tensor per input whose rows are drawn at random (or a number). */
  baselines: BaselineType;
  /** Random draws per example (default 5). */
  nSamples?: number;
  /** Standard deviation of the Gaussian noise added to the inputs (default 0), or one per input. */
  stdevs?: number | number[];
}

/** Expected gradients between random baselines and (noisy) inputs: SHAP values' approximation. */
export class GradientShap extends OptionsAttribution<GradientShapOptions, MultiplyByInputs> {
  readonly algorithm = "GradientShap";
}
