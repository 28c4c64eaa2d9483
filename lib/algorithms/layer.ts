// Layer attribution: attributions to the output (or input) of a named
// submodule, reached natively by surgery on the TorchScript graph.
import { Attribution, Attributions, Exact, Inputs, MaybeDelta } from "../attribution";
import { Model } from "../model";
import { native } from "../native";
import { guard, TorchExplainError } from "../errors";
import { Tensor } from "../tensor";
import type { ApproximationMethod, BaselineType, BatchOptions, DeltaOptions, TargetOptions } from "../types";
import type { GradientShapOptions, MultiplyByInputs } from "./gradient";
import type { IntegratedGradientsOptions } from "./integrated_gradients";
import type { FeatureMaskOptions, PerturbationOptions } from "./perturbation";
import type { DeepLiftInit, DeepLiftOptions, DeepLiftShapOptions, LRPInit, LRPOptions } from "./rules";

export interface LayerOptions {
  /** Attribute to the layer's input instead of its output (default false). */
  attributeToLayerInput?: boolean;
}

/** What a layer method resolves to: one tensor per layer (an array when several are given), plus the delta when asked for. */
export type LayerResult<L, P> = MaybeDelta<L extends string[] ? Tensor[] : Tensor, P>;

/** @internal The constructor options of a layer or neuron method, the layer checked. */
export function withLayer<Init extends object, L>(layer: L, init: Init | undefined): Init & { layer: L } {
  if (typeof layer !== "string" && !(Array.isArray(layer) && layer.length > 0 && layer.every((l) => typeof l === "string")))
    throw new TorchExplainError("layer: expected a submodule name (model.layers() lists them)", "ERR_BAD_OPTION");
  return { ...(init ?? ({} as Init)), layer };
}

/**
 * A method attributing to a layer: `new LayerGradCam(model, "features.3", options)`.
 * The layer is a dotted submodule name, as `model.layers()` lists them.
 */
export abstract class LayerMethod<O extends object, Init extends object = object, L extends string | string[] = string> extends Attribution<
  Init & { layer: L }
> {
  /** @internal Type-only: lets wrappers (NoiseTunnel) name this method's options. */
  declare readonly optionsType?: O;
  constructor(model: Model, readonly layer: L, init?: Init) {
    super(model, withLayer(layer, init));
  }
  attribute<P extends O = never>(inputs: Inputs, ...options: {} extends O ? [Exact<O, P>?] : [Exact<O, P>]): Promise<LayerResult<L, P>> {
    return this.run(inputs, options[0], {}, this.algorithm, Array.isArray(this.layer));
  }
}

export type LayerActivationOptions = LayerOptions & Omit<TargetOptions, "target">;

/** The layer's value(s): with several layers, one tensor per layer. */
export class LayerActivation<L extends string | string[] = string> extends LayerMethod<LayerActivationOptions, object, L> {
  readonly algorithm = "LayerActivation";
}

export type LayerGradientXActivationOptions = TargetOptions & LayerOptions;

/** The layer's value times the gradient of the target output with respect to it. */
export class LayerGradientXActivation extends LayerMethod<LayerGradientXActivationOptions, MultiplyByInputs> {
  readonly algorithm = "LayerGradientXActivation";
}

export interface LayerGradCamOptions extends TargetOptions, LayerOptions {
  /** Keep only positive attributions (default false). */
  reluAttributions?: boolean;
  /** Sum over channels (default true); false keeps one map per channel. */
  attrDimSummation?: boolean;
}

/** GradCAM: channel weights (the layer gradient averaged over space) times activations, summed over channels. */
export class LayerGradCam extends LayerMethod<LayerGradCamOptions> {
  readonly algorithm = "LayerGradCam";
}

export interface GuidedGradCamOptions extends TargetOptions, LayerOptions {
  /** How the GradCAM map is resized to the input (default "nearest"). */
  interpolateMode?: InterpolateMode;
}

/**
 * Guided backprop times the layer's GradCAM map resized to the input. Its
 * result is shaped like the inputs: a Tensor, or an array for an array of inputs.
 */
export class GuidedGradCam extends Attribution<{ layer: string }> {
  readonly algorithm = "GuidedGradCam";
  /** @internal Type-only: lets wrappers (NoiseTunnel) name this method's options. */
  declare readonly optionsType?: GuidedGradCamOptions;
  constructor(model: Model, readonly layer: string, init?: object) {
    super(model, withLayer(layer, init));
  }
  attribute<I extends Inputs>(inputs: I, options?: GuidedGradCamOptions): Promise<Attributions<I>> {
    return this.run(inputs, options);
  }
}

export interface LayerPathOptions extends TargetOptions, BatchOptions, LayerOptions {
  /** Start of the input path (default 0). */
  baselines?: BaselineType;
  /** Points on the path (default 50). */
  nSteps?: number;
  /** Quadrature rule (default "gausslegendre"). */
  method?: ApproximationMethod;
}

/** Conductance of the layer's units: their share of the integrated gradient; sums to IG's total. */
export class LayerConductance extends LayerMethod<LayerPathOptions & DeltaOptions> {
  readonly algorithm = "LayerConductance";
}

/** Gradients at the layer integrated along the input path (no multiplication by the layer's change). */
export class InternalInfluence extends LayerMethod<LayerPathOptions> {
  readonly algorithm = "InternalInfluence";
}

export type LayerIntegratedGradientsOptions = IntegratedGradientsOptions & LayerOptions;

/**
 * Integrated gradients of the layer's value, from its value at the baselines
 * to its value at the inputs. Works on embedding layers fed integer tokens
 * (baselines are then token tensors). Several layers: one result each.
 */
export class LayerIntegratedGradients<L extends string | string[] = string> extends LayerMethod<LayerIntegratedGradientsOptions, MultiplyByInputs, L> {
  readonly algorithm = "LayerIntegratedGradients";
}

export interface LayerFeatureAblationOptions extends TargetOptions, PerturbationOptions, LayerOptions {
  /** What an ablated unit of the layer is replaced with (default 0). */
  layerBaselines?: number | Tensor;
  /** Groups of the layer's units ablated together (default: each unit alone). */
  layerMask?: FeatureMaskOptions["featureMask"];
}

/** Output change when each unit (or group) of the layer is replaced by its baseline. */
export class LayerFeatureAblation extends LayerMethod<LayerFeatureAblationOptions> {
  readonly algorithm = "LayerFeatureAblation";
}

/** DeepLift multipliers at the layer times the layer's change from the baselines. */
export class LayerDeepLift extends LayerMethod<DeepLiftOptions & LayerOptions, DeepLiftInit> {
  readonly algorithm = "LayerDeepLift";
}

/** LayerDeepLift averaged over a distribution of references. */
export class LayerDeepLiftShap extends LayerMethod<DeepLiftShapOptions & LayerOptions, DeepLiftInit> {
  readonly algorithm = "LayerDeepLiftShap";
}

/** GradientShap at the layer: expected layer gradients times the layer's change. */
export class LayerGradientShap extends LayerMethod<GradientShapOptions & LayerOptions, MultiplyByInputs> {
  readonly algorithm = "LayerGradientShap";
}

/** The LRP relevance arriving at the layer. */
export class LayerLRP extends LayerMethod<LRPOptions & LayerOptions, LRPInit> {
  readonly algorithm = "LayerLRP";
}

export type InterpolateMode = "nearest" | "area" | "linear" | "bilinear" | "bicubic" | "trilinear";

/**
 * Resizes layer attributions ([batch, channels, ...spatial]) to `size`
 * (the spatial sizes, e.g. the input's height and width), as Captum's
 * LayerAttribution.interpolate.
 */
export function interpolate(layerAttribution: Tensor, size: number[], mode: InterpolateMode = "nearest"): Tensor {
  if (!(layerAttribution instanceof Tensor)) throw new TorchExplainError("layerAttribution: expected a Tensor", "ERR_BAD_OPTION");
  return new Tensor(guard(() => native.interpolate(layerAttribution.native, size, mode)));
}
