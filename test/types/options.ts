// Compiled, never run, by types.test.ts (tsc --strict): every algorithm
// rejects a misspelt option beside valid ones (each @ts-expect-error must
// fail to compile), and results follow returnConvergenceDelta.
import {
  Deconvolution, DeepLift, DeepLiftShap, FeatureAblation, FeaturePermutation, GradientShap, GuidedBackprop, GuidedGradCam,
  InputXGradient, IntegratedGradients, InternalInfluence, KernelShap, LayerActivation, LayerConductance, LayerDeepLift,
  LayerDeepLiftShap, LayerFeatureAblation, LayerGradCam, LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients,
  LayerLRP, Lime, LRP, Model, NeuronConductance, NeuronDeconvolution, NeuronDeepLift, NeuronDeepLiftShap, NeuronFeatureAblation,
  NeuronGradient, NeuronGradientShap, NeuronGuidedBackprop, NeuronIntegratedGradients, NoiseTunnel, Occlusion, Saliency,
  ShapleyValues, ShapleyValueSampling, Tensor, WithDelta,
} from "../../lib";

declare const model: Model;
declare const x: Tensor;
declare const flag: boolean;

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function is<T extends true>(): T | void {}

export async function options(): Promise<void> {
  const progress = { onProgress: (done: number, total: number) => void [done, total], showProgress: true };

  await new Saliency(model).attribute(x, { target: 0, abs: false, ...progress });
  // @ts-expect-error misspelt beside a valid option
  await new Saliency(model).attribute(x, { target: 0, ab: false });
  await new InputXGradient(model).attribute(x, { target: 0, internalBatchSize: 2 });
  // @ts-expect-error
  await new InputXGradient(model).attribute(x, { target: 0, internalBatchsize: 2 });
  await new GradientShap(model).attribute(x, { baselines: x, target: 0, nSamples: 3, stdevs: 0.1 });
  // @ts-expect-error
  await new GradientShap(model).attribute(x, { baselines: x, target: 0, nSample: 3 });
  await new IntegratedGradients(model).attribute(x, { target: 0, nSteps: 5, method: "riemann_left", ...progress });
  // @ts-expect-error
  await new IntegratedGradients(model).attribute(x, { target: 0, nStep: 5 });

  await new FeatureAblation(model).attribute(x, { target: 0, perturbationsPerEval: 2 });
  // @ts-expect-error
  await new FeatureAblation(model).attribute(x, { target: 0, perturbationPerEval: 2 });
  await new FeaturePermutation(model).attribute(x, { target: 0, featureMask: x });
  // @ts-expect-error
  await new FeaturePermutation(model).attribute(x, { target: 0, featureMasks: x });
  await new Occlusion(model).attribute(x, { target: 0, slidingWindowShapes: [1], strides: 1 });
  // @ts-expect-error
  await new Occlusion(model).attribute(x, { target: 0, slidingWindowShapes: [1], stride: 1 });
  await new ShapleyValues(model).attribute(x, { target: 0, baselines: 0 });
  // @ts-expect-error
  await new ShapleyValues(model).attribute(x, { target: 0, baseline: 0 });
  await new ShapleyValueSampling(model).attribute(x, { target: 0, nSamples: 3 });
  // @ts-expect-error
  await new ShapleyValueSampling(model).attribute(x, { target: 0, nSample: 3 });
  await new Lime(model).attribute(x, { target: 0, kernelWidth: 2, perturbFunc: (inputs) => [inputs.length] });
  // @ts-expect-error
  await new Lime(model).attribute(x, { target: 0, kernelwidth: 2 });
  await new KernelShap(model).attribute(x, { target: 0, nSamples: 5 });
  // @ts-expect-error
  await new KernelShap(model).attribute(x, { target: 0, samples: 5 });

  await new DeepLift(model).attribute(x, { target: 0, baselines: 0 });
  // @ts-expect-error
  await new DeepLift(model).attribute(x, { target: 0, baseline: 0 });
  await new DeepLiftShap(model).attribute(x, { target: 0, baselines: x });
  // @ts-expect-error
  await new DeepLiftShap(model).attribute(x, { target: 0, baselines: x, nSamples: 3 });
  await new GuidedBackprop(model).attribute(x, { target: 0 });
  // @ts-expect-error
  await new GuidedBackprop(model).attribute(x, { target: 0, abs: true });
  await new Deconvolution(model).attribute(x, { target: 0 });
  // @ts-expect-error
  await new Deconvolution(model).attribute(x, { target: 0, targets: 1 });
  await new LRP(model).attribute(x, { target: 0 });
  // @ts-expect-error
  await new LRP(model).attribute(x, { target: 0, epsilon: 1e-6 });

  await new LayerActivation(model, "fc").attribute(x, { attributeToLayerInput: true });
  // @ts-expect-error
  await new LayerActivation(model, "fc").attribute(x, { attributeToLayerInput: true, target: 0 });
  await new LayerGradientXActivation(model, "fc").attribute(x, { target: 0 });
  // @ts-expect-error
  await new LayerGradientXActivation(model, "fc").attribute(x, { target: 0, multiplyByInputs: false });
  await new LayerGradCam(model, "conv").attribute(x, { target: 0, reluAttributions: true });
  // @ts-expect-error
  await new LayerGradCam(model, "conv").attribute(x, { target: 0, reluAttribution: true });
  await new GuidedGradCam(model, "conv").attribute(x, { target: 0, interpolateMode: "bilinear" });
  // @ts-expect-error
  await new GuidedGradCam(model, "conv").attribute(x, { target: 0, interpolate: "bilinear" });
  await new LayerConductance(model, "fc").attribute(x, { target: 0, nSteps: 5 });
  // @ts-expect-error
  await new LayerConductance(model, "fc").attribute(x, { target: 0, nStep: 5 });
  await new InternalInfluence(model, "fc").attribute(x, { target: 0, nSteps: 5 });
  // @ts-expect-error
  await new InternalInfluence(model, "fc").attribute(x, { target: 0, nSteps: 5, returnConvergenceDelta: true });
  await new LayerIntegratedGradients(model, "fc").attribute(x, { target: 0, nSteps: 5 });
  // @ts-expect-error
  await new LayerIntegratedGradients(model, "fc").attribute(x, { target: 0, steps: 5 });
  await new LayerFeatureAblation(model, "fc").attribute(x, { target: 0, layerBaselines: 0 });
  // @ts-expect-error
  await new LayerFeatureAblation(model, "fc").attribute(x, { target: 0, layerBaseline: 0 });
  await new LayerDeepLift(model, "fc").attribute(x, { target: 0, baselines: 0 });
  // @ts-expect-error
  await new LayerDeepLift(model, "fc").attribute(x, { target: 0, baseline: 0 });
  await new LayerDeepLiftShap(model, "fc").attribute(x, { target: 0, baselines: x });
  // @ts-expect-error
  await new LayerDeepLiftShap(model, "fc").attribute(x, { target: 0, baselines: x, stdevs: 1 });
  await new LayerGradientShap(model, "fc").attribute(x, { target: 0, baselines: x });
  // @ts-expect-error
  await new LayerGradientShap(model, "fc").attribute(x, { target: 0, baselines: x, nSteps: 1 });
  await new LayerLRP(model, "fc").attribute(x, { target: 0 });
  // @ts-expect-error
  await new LayerLRP(model, "fc").attribute(x, { target: 0, rules: {} });

  await new NeuronGradient(model, "fc").attribute(x, { neuronSelector: 0 });
  // @ts-expect-error
  await new NeuronGradient(model, "fc").attribute(x, { neuronSelector: 0, target: 0 });
  await new NeuronIntegratedGradients(model, "fc").attribute(x, { neuronSelector: 0, nSteps: 5 });
  // @ts-expect-error
  await new NeuronIntegratedGradients(model, "fc").attribute(x, { neuronSelector: 0, nStep: 5 });
  await new NeuronConductance(model, "fc").attribute(x, { neuronSelector: 0, target: 0 });
  // @ts-expect-error
  await new NeuronConductance(model, "fc").attribute(x, { neuronSelector: 0, target: 0, neuronSelecter: 1 });
  await new NeuronDeepLift(model, "fc").attribute(x, { neuronSelector: 0, baselines: 0 });
  // @ts-expect-error
  await new NeuronDeepLift(model, "fc").attribute(x, { neuronSelector: 0, baseline: 0 });
  await new NeuronDeepLiftShap(model, "fc").attribute(x, { neuronSelector: 0, baselines: x });
  // @ts-expect-error
  await new NeuronDeepLiftShap(model, "fc").attribute(x, { neuronSelector: 0, baselines: x, target: 0 });
  await new NeuronGradientShap(model, "fc").attribute(x, { neuronSelector: 0, baselines: x });
  // @ts-expect-error
  await new NeuronGradientShap(model, "fc").attribute(x, { neuronSelector: 0, baselines: x, nSample: 2 });
  await new NeuronGuidedBackprop(model, "fc").attribute(x, { neuronSelector: (v) => v.shape });
  // @ts-expect-error
  await new NeuronGuidedBackprop(model, "fc").attribute(x, { neuronSelector: 0, attributeToNeuronInputs: true });
  await new NeuronDeconvolution(model, "fc").attribute(x, { neuronSelector: [0, 1] });
  // @ts-expect-error
  await new NeuronDeconvolution(model, "fc").attribute(x, { neuronSelector: [0, 1], abs: true });
  await new NeuronFeatureAblation(model, "fc").attribute(x, { neuronSelector: 0, perturbationsPerEval: 1 });
  // @ts-expect-error
  await new NeuronFeatureAblation(model, "fc").attribute(x, { neuronSelector: 0, perturbationPerEval: 1 });

  const nt = new NoiseTunnel(new IntegratedGradients(model));
  await nt.attribute(x, { target: 0, nSteps: 5, ntType: "vargrad", nSamples: 3 });
  // @ts-expect-error
  await nt.attribute(x, { target: 0, nSteps: 5, ntTyp: "vargrad" });
}

export async function results(): Promise<void> {
  const ig = new IntegratedGradients(model);
  const none = await ig.attribute(x);
  is<Equal<typeof none, Tensor>>();
  const plain = await ig.attribute(x, { target: 0 });
  is<Equal<typeof plain, Tensor>>();
  const off = await ig.attribute(x, { target: 0, returnConvergenceDelta: false });
  is<Equal<typeof off, Tensor>>();
  const on = await ig.attribute(x, { target: 0, returnConvergenceDelta: true });
  is<Equal<typeof on, WithDelta<Tensor>>>();
  const either = await ig.attribute(x, { target: 0, returnConvergenceDelta: flag });
  is<Equal<typeof either, Tensor | WithDelta<Tensor>>>();
  const several = await ig.attribute([x, x], { target: 0, returnConvergenceDelta: true });
  is<Equal<typeof several, WithDelta<Tensor[]>>>();

  const layers = await new LayerIntegratedGradients(model, ["a", "b"]).attribute(x, { target: 0, returnConvergenceDelta: flag });
  is<Equal<typeof layers, Tensor[] | WithDelta<Tensor[]>>>();
  const conductance = await new LayerConductance(model, "fc").attribute(x, { target: 0, returnConvergenceDelta: true });
  is<Equal<typeof conductance, WithDelta<Tensor>>>();
  const neuron = await new NeuronDeepLift(model, "fc").attribute(x, { neuronSelector: 0, returnConvergenceDelta: true });
  is<Equal<typeof neuron, WithDelta<Tensor>>>();
  const smooth = await new NoiseTunnel(new DeepLift(model)).attribute([x], { target: 0, returnConvergenceDelta: flag });
  is<Equal<typeof smooth, Tensor[] | WithDelta<Tensor[]>>>();
  // Callbacks' parameters are typed from the options without annotations.
  const withCallback = await ig.attribute(x, { target: 0, returnConvergenceDelta: true, onProgress: (done, total) => done / total });
  is<Equal<typeof withCallback, WithDelta<Tensor>>>();
  const lime = await new Lime(model).attribute(x, { target: 0, similarityFunc: (xs, ps, z) => xs.length + ps.length + z.shape.length });
  is<Equal<typeof lime, Tensor>>();

  // @ts-expect-error the delta needs returnConvergenceDelta: true
  void plain.delta;
  // @ts-expect-error a possible delta must be checked for first
  void either.delta;
}
