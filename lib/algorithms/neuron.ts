// Neuron attribution: the input methods with one unit of a layer's value as
// the quantity explained, chosen by `neuronSelector`.
import { Attribution, AttributionResult, Exact, Inputs } from "../attribution";
import { Model } from "../model";
import type { NativeTensor } from "../native";
import { toNative } from "../options";
import { Tensor } from "../tensor";
import type { BaselineType, BatchOptions, DeltaOptions, TargetOptions } from "../types";
import type { GradientShapOptions, MultiplyByInputs } from "./gradient";
import type { IntegratedGradientsOptions } from "./integrated_gradients";
import { withLayer } from "./layer";
import type { FeatureAblationOptions } from "./perturbation";
import type { DeepLiftInit } from "./rules";

/**
 * Which unit of the layer's value (without the batch dimension) to explain:
 * a number (for layers with one dimension after the batch), an index array,
 * or a function of the layer's value ([batch, ...]) at the inputs that
 * returns either, or one index array per example (for instance the most
 * active unit). Captum's callable selectors are torch code; here the
 * function chooses the unit and the native core differentiates.
 */
export type NeuronSelector = number | number[] | ((layerValue: Tensor) => number | number[] | number[][] | Tensor);

export interface NeuronOptions {
  neuronSelector: NeuronSelector;
  /** The unit is in the layer's input rather than its output (default false). */
  attributeToNeuronInput?: boolean;
}

type Untargeted<O> = Omit<O, "target">;

/** A method attributing one unit of a layer to the inputs: `new NeuronGradient(model, "fc2")`. */
export abstract class NeuronMethod<O extends object, Init extends object = object> extends Attribution<Init & { layer: string }> {
  declare readonly optionsType?: O & NeuronOptions;
  constructor(model: Model, readonly layer: string, init?: Init) {
    super(model, withLayer(layer, init));
  }
  attribute<I extends Inputs, P extends O & NeuronOptions>(inputs: I, options: Exact<O & NeuronOptions, P>): Promise<AttributionResult<I, P>> {
    const selector = options?.neuronSelector;
    if (typeof selector !== "function") return this.run(inputs, options);
    const wrapped = (value: NativeTensor) => toNative(selector(new Tensor(value)));
    return this.run(inputs, { ...options, neuronSelector: wrapped });
  }
}

/** Gradient of the neuron with respect to the inputs. */
export class NeuronGradient extends NeuronMethod<Untargeted<TargetOptions>> {
  readonly algorithm = "NeuronGradient";
}

/** Integrated gradients of the neuron. */
export class NeuronIntegratedGradients extends NeuronMethod<Untargeted<IntegratedGradientsOptions>, MultiplyByInputs> {
  readonly algorithm = "NeuronIntegratedGradients";
}

export interface NeuronConductanceOptions extends TargetOptions, BatchOptions {
  baselines?: BaselineType;
  /** Points on the path (default 50). */
  nSteps?: number;
  /** Quadrature rule (default "riemann_trapezoid", as Captum's NeuronConductance). */
  method?: IntegratedGradientsOptions["method"];
}

/** Conductance of the target output through the neuron: the inputs' share of the flow via that unit. */
export class NeuronConductance extends NeuronMethod<NeuronConductanceOptions, MultiplyByInputs> {
  readonly algorithm = "NeuronConductance";
}

export interface NeuronDeepLiftOptions extends Untargeted<TargetOptions> {
  baselines?: BaselineType;
}

/** DeepLift of the neuron (the layer's own ops keep plain gradients, as Captum). */
export class NeuronDeepLift extends NeuronMethod<NeuronDeepLiftOptions & DeltaOptions, DeepLiftInit> {
  readonly algorithm = "NeuronDeepLift";
}

/** NeuronDeepLift averaged over a distribution of references. */
export class NeuronDeepLiftShap extends NeuronMethod<NeuronDeepLiftOptions & DeltaOptions & { baselines: BaselineType }, DeepLiftInit> {
  readonly algorithm = "NeuronDeepLiftShap";
}

/** GradientShap of the neuron. */
export class NeuronGradientShap extends NeuronMethod<Untargeted<GradientShapOptions>, MultiplyByInputs> {
  readonly algorithm = "NeuronGradientShap";
}

/** Guided backprop of the neuron. */
export class NeuronGuidedBackprop extends NeuronMethod<Untargeted<TargetOptions>> {
  readonly algorithm = "NeuronGuidedBackprop";
}

/** Deconvolution of the neuron. */
export class NeuronDeconvolution extends NeuronMethod<Untargeted<TargetOptions>> {
  readonly algorithm = "NeuronDeconvolution";
}

/** Change of the neuron when each input feature is replaced by its baseline. */
export class NeuronFeatureAblation extends NeuronMethod<Untargeted<FeatureAblationOptions>> {
  readonly algorithm = "NeuronFeatureAblation";
}
