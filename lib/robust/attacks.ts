// Adversarial attacks (Captum's captum.robust): FGSM and PGD. Every step runs
// natively; the loss is the reference's default, the negative log of the
// target output (models that end in a softmax).
import { Inputs, runAlgorithm } from "../attribution";
import { Model } from "../model";
import { Tensor } from "../tensor";
import type { AttributeOptions, ForwardArg, TargetType } from "../types";
import { TorchExplainError } from "../errors";

export interface AttackBounds {
  /** Smallest value a perturbed input may take (default -Infinity). */
  lowerBound?: number;
  /** Largest value a perturbed input may take (default Infinity). */
  upperBound?: number;
}

export interface AttackOptions extends AttributeOptions {
  /** The true labels (or, for a targeted attack, the class to reach). */
  target: TargetType;
  additionalForwardArgs?: ForwardArg[];
  /** Move towards the target instead of away from it (default false). */
  targeted?: boolean;
  /** Zeros and ones, shaped like the inputs (one per input): which elements may move. */
  mask?: Tensor | Tensor[];
}

export interface FGSMOptions extends AttackOptions {
  /** Size of the signed-gradient step. */
  epsilon: number;
}

export interface PGDOptions extends AttackOptions {
  /** Largest distance from the original inputs, in `norm`. */
  radius: number;
  /** Size of each signed-gradient step. */
  stepSize: number;
  /** Number of steps. */
  stepNum: number;
  /** The ball the perturbation stays in (default "Linf"). */
  norm?: "Linf" | "L2";
  /** Start from a random point of the ball (default false). */
  randomStart?: boolean;
}

/** The perturbed inputs: a Tensor for a single input, an array for several. */
export type Perturbed<I extends Inputs> = I extends Tensor[] ? Tensor[] : Tensor;

abstract class Attack<O extends object> {
  abstract readonly algorithm: string;
  constructor(
    readonly model: Model,
    readonly bounds: AttackBounds = {},
  ) {
    if (!(model instanceof Model)) throw new TorchExplainError("model: expected a Model from loadModel()", "ERR_BAD_OPTION");
  }
  /** The inputs moved by the attack, within the bounds. */
  async perturb<I extends Inputs>(inputs: I, options: O): Promise<Perturbed<I>> {
    const r = await runAlgorithm(this.model, this.algorithm, inputs, { ...this.bounds, ...options });
    return (Array.isArray(inputs) ? r.attributions : r.attributions[0]) as Perturbed<I>;
  }
}

/** Fast Gradient Sign Method: one step of size epsilon along the sign of the loss gradient. */
export class FGSM extends Attack<FGSMOptions> {
  readonly algorithm = "FGSM";
}

/** Projected Gradient Descent: FGSM steps, each projected back into the ball around the inputs. */
export class PGD extends Attack<PGDOptions> {
  readonly algorithm = "PGD";
}
