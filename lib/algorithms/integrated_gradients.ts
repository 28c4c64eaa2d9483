import { Attribution, AttributionResult, Inputs } from "../attribution";
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
export class IntegratedGradients extends Attribution<MultiplyByInputs> {
  readonly algorithm = "IntegratedGradients";
  attribute<I extends Inputs, O extends IntegratedGradientsOptions = IntegratedGradientsOptions>(inputs: I, options?: O): Promise<AttributionResult<I, O>> {
    return this.run(inputs, options);
  }
}
