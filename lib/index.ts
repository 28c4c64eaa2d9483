export { loadModel, Model, LoadOptions } from "./model";
export type { MemoryFormat } from "./native";
export { tensor, Tensor, DType, TypedData, NestedArray, manualSeed } from "./tensor";
export { Attribution, AttributionResult, Attributions, Exact, Inputs, MaybeDelta, WithDelta } from "./attribution";
export * from "./types";
export { Saliency, SaliencyOptions, InputXGradient, InputXGradientOptions, GradientShap, GradientShapOptions, MultiplyByInputs } from "./algorithms/gradient";
export { IntegratedGradients, IntegratedGradientsOptions } from "./algorithms/integrated_gradients";
export { NoiseTunnel, NoiseTunnelOptions } from "./algorithms/noise_tunnel";

export { TorchExplainError, ErrorCode } from "./errors";

import { native } from "./native";
import { guard } from "./errors";
/** The LibTorch version, CUDA availability and the native algorithms. */
export function buildInfo() {
  return guard(() => native.info());
}

export interface SchedulerSettings {
  /** Requests run at once on their own compute workers (default 2); long requests yield to waiting ones between chunks. */
  workers?: number;
  /**
   * LibTorch intra-op threads per worker. By default the machine's cores, but
   * at each request's start no more than the cores other processes leave idle
   * (an OpenMP team waits at every barrier for its slowest thread: on a busy
   * machine a team larger than the idle cores stalls). A number set here is
   * used as it is.
   */
  threads?: number;
}
/** Sets the compute workers and threads; returns the settings in force. */
export function configure(settings: SchedulerSettings = {}): Required<SchedulerSettings> {
  return guard(() => native.configure(settings));
}
export {
  FeatureAblation, FeatureAblationOptions, FeaturePermutation, FeaturePermutationOptions, Occlusion, OcclusionOptions,
  ShapleyValues, ShapleyValuesOptions, ShapleyValueSampling, ShapleyValueSamplingOptions, PerturbationOptions, FeatureMaskOptions,
  Lime, LimeOptions, KernelShap, KernelShapOptions,
} from "./algorithms/perturbation";
export {
  DeepLift, DeepLiftInit, DeepLiftOptions, DeepLiftShap, DeepLiftShapOptions, GuidedBackprop, GuidedBackpropOptions, Deconvolution,
  LRP, LRPInit, LRPOptions, LRPRule, LRPRuleName, LRPRuleSpec,
} from "./algorithms/rules";
export {
  LayerMethod, LayerResult, LayerOptions, LayerActivation, LayerActivationOptions, LayerGradientXActivation, LayerGradientXActivationOptions,
  LayerGradCam, LayerGradCamOptions, GuidedGradCam, GuidedGradCamOptions, LayerConductance, InternalInfluence, LayerPathOptions,
  LayerIntegratedGradients, LayerIntegratedGradientsOptions, LayerFeatureAblation, LayerFeatureAblationOptions, LayerDeepLift,
  LayerDeepLiftShap, LayerGradientShap, LayerLRP, InterpolateMode, interpolate,
} from "./algorithms/layer";
export {
  NeuronMethod, NeuronSelector, NeuronOptions, NeuronGradient, NeuronIntegratedGradients, NeuronConductance, NeuronConductanceOptions,
  NeuronDeepLift, NeuronDeepLiftOptions, NeuronDeepLiftShap, NeuronGradientShap, NeuronGuidedBackprop, NeuronDeconvolution,
  NeuronFeatureAblation,
} from "./algorithms/neuron";
export * from "./io";
export * from "./visualization";

export type { InsightsOptions, InsightsMetric, MetricContext, StartInsightsOptions, InsightsHandle, InsightsInfluenceOptions } from "./insights/types";
export type { Dataset, DatasetInput, InputKind } from "./insights/dataset";
/**
 * Serves Insights, the explorer in the browser (as `torchexplain insights`); resolves once it
 * listens. The server (and fastify) load on first use, through a plain require() that keeps
 * fastify's typings out of these.
 */
export async function startInsights(options: import("./insights/types").StartInsightsOptions): Promise<import("./insights/types").InsightsHandle> {
  const { startInsights: start } = require("./insights/server"); // eslint-disable-line @typescript-eslint/no-var-requires
  const s = await start(options);
  return { url: s.url, dataset: s.dataset, close: async () => void (await s.app.close()) };
}
export { FGSM, PGD, FGSMOptions, PGDOptions, AttackBounds, AttackOptions, Perturbed } from "./robust/attacks";
export { infidelity, InfidelityOptions, PerturbFunc } from "./metrics/infidelity";
export { sensitivityMax, SensitivityOptions, Explainer } from "./metrics/sensitivity";
export { Concept, ConceptData, TCAV, TCAVInit, TCAVOptions, TCAVScore, TCAVScores, CAV, SignificanceResult } from "./concept/tcav";
export { AttackComparator, AttackComparatorOptions, AddAttackOptions, EvaluateOptions as AttackComparatorEvaluateOptions, Attack, AttackStats, Aggregated, ComparatorResult, ComparatorSummary, MetricValue } from "./robust/attack_comparator";
export { MinParamPerturbation, MinParamPerturbationOptions, MinParamEvaluateOptions, CorrectFn } from "./robust/min_param_perturbation";
export { ForwardFunc } from "./robust/tensor_ops";
export { deletionCurve, insertionCurve, faithfulnessCorrelation, sparseness, CurveOptions, CurveResult, FaithfulnessOptions, RelevanceOrder } from "./metrics/curves";
export { parameterRandomization, RandomizationOptions, RandomizationResult } from "./metrics/randomization";
export * from "./llm";
export * from "./influence";
