// The algorithms by Captum's class names, for the command line and batch jobs.
import { Attribution } from "../attribution";
import { Model } from "../model";
import { TorchExplainError } from "../errors";
import { Saliency, InputXGradient, GradientShap } from "../algorithms/gradient";
import { IntegratedGradients } from "../algorithms/integrated_gradients";
import { NoiseTunnel } from "../algorithms/noise_tunnel";
import {
  FeatureAblation, FeaturePermutation, Occlusion, ShapleyValues, ShapleyValueSampling, Lime, KernelShap,
} from "../algorithms/perturbation";
import { DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution, LRP } from "../algorithms/rules";
import {
  LayerActivation, LayerGradientXActivation, LayerGradCam, GuidedGradCam, LayerConductance, InternalInfluence, LayerIntegratedGradients,
  LayerFeatureAblation, LayerDeepLift, LayerDeepLiftShap, LayerGradientShap, LayerLRP,
} from "../algorithms/layer";
import {
  NeuronGradient, NeuronIntegratedGradients, NeuronConductance, NeuronDeepLift, NeuronDeepLiftShap, NeuronGradientShap,
  NeuronGuidedBackprop, NeuronDeconvolution, NeuronFeatureAblation,
} from "../algorithms/neuron";

type Ctor = new (...args: any[]) => Attribution; // eslint-disable-line @typescript-eslint/no-explicit-any

interface MethodInfo {
  ctor: Ctor;
  /** Takes a layer name after the model. */
  layer?: boolean;
  /** Takes `target` (neuron methods and LayerActivation do not). */
  target: boolean;
  /** Can return a convergence delta. */
  delta?: boolean;
  /** Its baselines are a distribution of references (all rows go to every example). */
  distribution?: boolean;
}

const M = (ctor: Ctor, extra: Partial<MethodInfo> = {}): MethodInfo => ({ ctor, target: true, ...extra });

export const METHODS: Record<string, MethodInfo> = {
  Saliency: M(Saliency),
  InputXGradient: M(InputXGradient),
  IntegratedGradients: M(IntegratedGradients, { delta: true }),
  GradientShap: M(GradientShap, { delta: true, distribution: true }),
  FeatureAblation: M(FeatureAblation),
  FeaturePermutation: M(FeaturePermutation),
  Occlusion: M(Occlusion),
  ShapleyValues: M(ShapleyValues),
  ShapleyValueSampling: M(ShapleyValueSampling),
  Lime: M(Lime),
  KernelShap: M(KernelShap),
  DeepLift: M(DeepLift, { delta: true }),
  DeepLiftShap: M(DeepLiftShap, { delta: true, distribution: true }),
  GuidedBackprop: M(GuidedBackprop),
  Deconvolution: M(Deconvolution),
  LRP: M(LRP, { delta: true }),
  GuidedGradCam: M(GuidedGradCam, { layer: true }),
  LayerActivation: M(LayerActivation, { layer: true, target: false }),
  LayerGradientXActivation: M(LayerGradientXActivation, { layer: true }),
  LayerGradCam: M(LayerGradCam, { layer: true }),
  LayerConductance: M(LayerConductance, { layer: true, delta: true }),
  InternalInfluence: M(InternalInfluence, { layer: true }),
  LayerIntegratedGradients: M(LayerIntegratedGradients, { layer: true, delta: true }),
  LayerFeatureAblation: M(LayerFeatureAblation, { layer: true }),
  LayerDeepLift: M(LayerDeepLift, { layer: true, delta: true }),
  LayerDeepLiftShap: M(LayerDeepLiftShap, { layer: true, delta: true, distribution: true }),
  LayerGradientShap: M(LayerGradientShap, { layer: true, delta: true, distribution: true }),
  LayerLRP: M(LayerLRP, { layer: true, delta: true }),
  NeuronGradient: M(NeuronGradient, { layer: true, target: false }),
  NeuronIntegratedGradients: M(NeuronIntegratedGradients, { layer: true, target: false }),
  NeuronConductance: M(NeuronConductance, { layer: true }),
  NeuronDeepLift: M(NeuronDeepLift, { layer: true, target: false, delta: true }),
  NeuronDeepLiftShap: M(NeuronDeepLiftShap, { layer: true, target: false, delta: true, distribution: true }),
  NeuronGradientShap: M(NeuronGradientShap, { layer: true, target: false, distribution: true }),
  NeuronGuidedBackprop: M(NeuronGuidedBackprop, { layer: true, target: false }),
  NeuronDeconvolution: M(NeuronDeconvolution, { layer: true, target: false }),
  NeuronFeatureAblation: M(NeuronFeatureAblation, { layer: true, target: false }),
};

export interface ResolvedMethod {
  name: string;
  /** What the method can do, NoiseTunnel's wrapped method's for "NoiseTunnel:X". */
  info: MethodInfo;
  make(model: Model): Attribution;
}

/**
 * A method by name: a class name ("IntegratedGradients"), or
 * "NoiseTunnel:<name>" for NoiseTunnel around an input method. `init` is the
 * constructor's options, `layer` the layer for layer and neuron methods.
 */
export function resolveMethod(name: string, layer?: string, init: object = {}): ResolvedMethod {
  const tunnel = /^NoiseTunnel:(.+)$/.exec(name ?? "");
  const base = tunnel ? tunnel[1] : name;
  const info = METHODS[base];
  if (!info || (tunnel && info.layer && base !== "GuidedGradCam")) {
    const known = Object.keys(METHODS).join(", ");
    throw new TorchExplainError(`method: unknown method '${name}' (known: ${known}; NoiseTunnel:<method> wraps one)`, "ERR_BAD_OPTION");
  }
  if (info.layer && !layer) throw new TorchExplainError(`layer: ${base} needs a layer (--layer NAME; 'torchexplain info MODEL' lists them)`, "ERR_BAD_OPTION");
  if (!info.layer && layer) throw new TorchExplainError(`layer: ${base} is not a layer or neuron method; leave out the layer`, "ERR_BAD_OPTION");
  const make = (model: Model): Attribution => {
    const inner = info.layer ? new info.ctor(model, layer, init) : new info.ctor(model, init);
    return tunnel ? new NoiseTunnel(inner) : inner;
  };
  return { name, info: tunnel ? { ...info, delta: false } : info, make };
}
