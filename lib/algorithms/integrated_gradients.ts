import { OptionsAttribution } from "../attribution";
import type { ApproximationMethod, BaselineType, BatchOptions, DeltaOptions, TargetOptions } from "../types";
import type { MultiplyByInputs } from "./gradient";

export interface IntegratedGradientsOptions extends TargetOptions, BatchOptions, DeltaOptions {
  /** Start of the path (default 0). */
  baselines?: BaselineType;
  /** Points on the path (default 50). */
  nSteps?: number;
  /** Quadrature rule (default "gausslegendre"). */
  method?: ApproximationMethod;
}

/** Path integral of gradients from baselines to inputs. */
export class IntegratedGradients extends OptionsAttribution<IntegratedGradientsOptions, MultiplyByInputs> {
  readonly algorithm = "IntegratedGradients";
}
