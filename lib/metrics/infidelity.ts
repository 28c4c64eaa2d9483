// Infidelity (Captum's captum.metrics.infidelity): how far attributions times
// a perturbation are from the change of the output that perturbation causes.
import { Inputs, runAlgorithm } from "../attribution";
import { Model } from "../model";
import { Tensor } from "../tensor";
import { tensorCallback } from "../options";
import type { AttributeOptions, BaselineType, ForwardArg, TargetType } from "../types";

/**
 * A perturbation: a built-in kind drawn natively, or a function with the
 * reference's contract, `(inputs, baselines?) => [perturbations, perturbedInputs]`
 * (synchronous; one Tensor per input, or arrays for several inputs).
 * - gaussian: I ~ N(0, stdev²) (default stdev 0.01), perturbed = x - I;
 * - uniform: I ~ U(-radius, radius) (default 0.02), perturbed = x - I;
 * - baseline: each feature swapped to its baseline with `probability` (default 0.5).
 */
export type PerturbFunc =
  | { type: "gaussian"; stdev?: number }
  | { type: "uniform"; radius?: number }
  | { type: "baseline"; probability?: number }
  | ((inputs: Tensor | Tensor[], baselines?: Tensor | Tensor[]) => [Tensor | Tensor[], Tensor | Tensor[]]);

export interface InfidelityOptions extends AttributeOptions {
  target?: TargetType;
  baselines?: BaselineType;
  additionalForwardArgs?: ForwardArg[];
  /** Perturbations per example (default 10). */
  nPerturbSamples?: number;
  /** Most perturbed rows per batch (default: all samples at once, within the memory budget). */
  maxExamplesPerBatch?: number;
  /** Scale the attributions by the factor that minimises infidelity first (default false). */
  normalize?: boolean;
}

/** Infidelity of `attributions` per example: a Tensor [batch]. Lower is better. */
export async function infidelity(
  model: Model,
  perturbFunc: PerturbFunc | undefined,
  inputs: Inputs,
  attributions: Inputs,
  options: InfidelityOptions = {},
): Promise<Tensor> {
  const perturb = typeof perturbFunc === "function" ? tensorCallback(perturbFunc) : perturbFunc;
  const r = await runAlgorithm(model, "Infidelity", inputs, { ...options, perturbFunc: perturb, attributions: Array.isArray(attributions) ? attributions : [attributions] });
  return r.attributions[0];
}
