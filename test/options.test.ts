// Every option an algorithm's types accept (its attribute() options and its
// constructor options) is one the native core reads, and every algorithm
// reports progress. The core names the options it read when it rejects an
// unknown one; the key lists below must name every key of the types (a
// missing one is a compile error).
import * as path from "path";
import * as tx from "../lib";
import { MODELS } from "./helpers";

type Keys<O> = Record<keyof Required<O>, true>;
// Handled in JavaScript or by the binding before the core sees the options.
const NOT_NATIVE = new Set(["signal", "timeoutMs", "onProgress", "showProgress"]);

const request = { signal: true, timeoutMs: true, memoryBudget: true, allowNonFinite: true, showProgress: true, onProgress: true } as const;
const target = { ...request, target: true, additionalForwardArgs: true } as const;
const batch = { internalBatchSize: true, devices: true } as const;
const delta = { returnConvergenceDelta: true } as const;
const path_ = { baselines: true, nSteps: true, method: true } as const;
const perturbation = { ...target, perturbationsPerEval: true } as const;
const shapley = { ...perturbation, baselines: true, featureMask: true } as const;
const mul = { multiplyByInputs: true } as const;
const deepLiftInit = { ...mul, captumCompatible: true } as const;
const lrpInit = { rules: true, preset: true, epsilon: true, gamma: true, low: true, high: true, foldBatchNorm: true } as const;
const layer = { attributeToLayerInput: true } as const;
const neuron = { neuronSelector: true, attributeToNeuronInput: true } as const;
const untargeted = (({ target: _, ...rest }) => rest)(target);
const shap = { ...target, ...batch, ...delta, baselines: true, nSamples: true, stdevs: true } as const;

interface Case {
  make: (m: tx.Model) => tx.Attribution;
  options: Record<string, unknown>;
  keys: Record<string, true>;
}

let model: tx.Model;
let x: tx.Tensor, mask: tx.Tensor;
const selector = [0, 1, 1];
const cases: Record<string, () => Case> = {
  Saliency: () => ({ make: (m) => new tx.Saliency(m), options: { target: 3 }, keys: { ...target, ...batch, abs: true } satisfies Keys<tx.SaliencyOptions> }),
  InputXGradient: () => ({ make: (m) => new tx.InputXGradient(m), options: { target: 3 }, keys: { ...target, ...batch } satisfies Keys<tx.InputXGradientOptions> }),
  GradientShap: () => ({
    make: (m) => new tx.GradientShap(m, {}), options: { target: 3, baselines: x },
    keys: { ...(shap satisfies Keys<tx.GradientShapOptions>), ...(mul satisfies Keys<tx.MultiplyByInputs>) },
  }),
  IntegratedGradients: () => ({
    make: (m) => new tx.IntegratedGradients(m), options: { target: 3, nSteps: 4 },
    keys: { ...target, ...batch, ...delta, ...path_, ...mul } satisfies Keys<tx.IntegratedGradientsOptions & tx.MultiplyByInputs>,
  }),
  FeatureAblation: () => ({
    make: (m) => new tx.FeatureAblation(m), options: { target: 3, featureMask: mask },
    keys: { ...shapley } satisfies Keys<tx.FeatureAblationOptions>,
  }),
  FeaturePermutation: () => ({
    make: (m) => new tx.FeaturePermutation(m), options: { target: 3, featureMask: mask },
    keys: { ...perturbation, featureMask: true } satisfies Keys<tx.FeaturePermutationOptions>,
  }),
  Occlusion: () => ({
    make: (m) => new tx.Occlusion(m), options: { target: 3, slidingWindowShapes: [1, 4, 4], strides: 4 },
    keys: { ...perturbation, slidingWindowShapes: true, strides: true, baselines: true } satisfies Keys<tx.OcclusionOptions>,
  }),
  ShapleyValues: () => ({ make: (m) => new tx.ShapleyValues(m), options: { target: 3, featureMask: mask }, keys: { ...shapley } satisfies Keys<tx.ShapleyValuesOptions> }),
  ShapleyValueSampling: () => ({
    make: (m) => new tx.ShapleyValueSampling(m), options: { target: 3, featureMask: mask, nSamples: 2 },
    keys: { ...shapley, nSamples: true } satisfies Keys<tx.ShapleyValueSamplingOptions>,
  }),
  Lime: () => ({
    make: (m) => new tx.Lime(m), options: { target: 3, featureMask: mask, nSamples: 5 },
    keys: {
      ...shapley, nSamples: true, interpretableModel: true, alpha: true, distanceMode: true, kernelWidth: true, returnInputShape: true,
      perturbFunc: true, similarityFunc: true,
    } satisfies Keys<tx.LimeOptions>,
  }),
  KernelShap: () => ({
    make: (m) => new tx.KernelShap(m), options: { target: 3, featureMask: mask, nSamples: 5 },
    keys: { ...shapley, nSamples: true, returnInputShape: true } satisfies Keys<tx.KernelShapOptions>,
  }),
  DeepLift: () => ({
    make: (m) => new tx.DeepLift(m), options: { target: 3 },
    keys: { ...target, ...batch, ...delta, baselines: true, ...deepLiftInit } satisfies Keys<tx.DeepLiftOptions & tx.DeepLiftInit>,
  }),
  DeepLiftShap: () => ({
    make: (m) => new tx.DeepLiftShap(m), options: { target: 3, baselines: x },
    keys: { ...target, ...batch, ...delta, baselines: true, ...deepLiftInit } satisfies Keys<tx.DeepLiftShapOptions & tx.DeepLiftInit>,
  }),
  GuidedBackprop: () => ({ make: (m) => new tx.GuidedBackprop(m), options: { target: 3 }, keys: { ...target, ...batch } satisfies Keys<tx.GuidedBackpropOptions> }),
  Deconvolution: () => ({ make: (m) => new tx.Deconvolution(m), options: { target: 3 }, keys: { ...target, ...batch } satisfies Keys<tx.GuidedBackpropOptions> }),
  LRP: () => ({
    make: (m) => new tx.LRP(m), options: { target: 3 },
    keys: { ...target, ...batch, ...delta, ...lrpInit } satisfies Keys<tx.LRPOptions & tx.LRPInit>,
  }),
  LayerActivation: () => ({
    make: (m) => new tx.LayerActivation(m, "conv2"), options: {},
    keys: { ...untargeted, ...layer } satisfies Keys<tx.LayerActivationOptions>,
  }),
  LayerGradientXActivation: () => ({
    make: (m) => new tx.LayerGradientXActivation(m, "conv2"), options: { target: 3 },
    keys: { ...target, ...layer, ...mul } satisfies Keys<tx.LayerGradientXActivationOptions & tx.MultiplyByInputs>,
  }),
  LayerGradCam: () => ({
    make: (m) => new tx.LayerGradCam(m, "conv2"), options: { target: 3 },
    keys: { ...target, ...layer, reluAttributions: true, attrDimSummation: true } satisfies Keys<tx.LayerGradCamOptions>,
  }),
  GuidedGradCam: () => ({
    make: (m) => new tx.GuidedGradCam(m, "conv2"), options: { target: 3 },
    keys: { ...target, ...layer, interpolateMode: true } satisfies Keys<tx.GuidedGradCamOptions>,
  }),
  LayerConductance: () => ({
    make: (m) => new tx.LayerConductance(m, "conv2"), options: { target: 3, nSteps: 4 },
    keys: { ...target, ...batch, ...layer, ...path_, ...delta } satisfies Keys<tx.LayerPathOptions & tx.DeltaOptions>,
  }),
  InternalInfluence: () => ({
    make: (m) => new tx.InternalInfluence(m, "conv2"), options: { target: 3, nSteps: 4 },
    keys: { ...target, ...batch, ...layer, ...path_ } satisfies Keys<tx.LayerPathOptions>,
  }),
  LayerIntegratedGradients: () => ({
    make: (m) => new tx.LayerIntegratedGradients(m, "conv2"), options: { target: 3, nSteps: 4 },
    keys: { ...target, ...batch, ...delta, ...path_, ...layer, ...mul } satisfies Keys<tx.LayerIntegratedGradientsOptions & tx.MultiplyByInputs>,
  }),
  LayerFeatureAblation: () => ({
    make: (m) => new tx.LayerFeatureAblation(m, "conv2"), options: { target: 3 },
    keys: { ...perturbation, ...layer, layerBaselines: true, layerMask: true } satisfies Keys<tx.LayerFeatureAblationOptions>,
  }),
  LayerDeepLift: () => ({
    make: (m) => new tx.LayerDeepLift(m, "conv2"), options: { target: 3 },
    keys: { ...target, ...batch, ...delta, baselines: true, ...layer, ...deepLiftInit } satisfies Keys<tx.DeepLiftOptions & tx.LayerOptions & tx.DeepLiftInit>,
  }),
  LayerDeepLiftShap: () => ({
    make: (m) => new tx.LayerDeepLiftShap(m, "conv2"), options: { target: 3, baselines: x },
    keys: { ...target, ...batch, ...delta, baselines: true, ...layer, ...deepLiftInit } satisfies Keys<tx.DeepLiftShapOptions & tx.LayerOptions & tx.DeepLiftInit>,
  }),
  LayerGradientShap: () => ({
    make: (m) => new tx.LayerGradientShap(m, "conv2"), options: { target: 3, baselines: x },
    keys: { ...shap, ...layer, ...mul } satisfies Keys<tx.GradientShapOptions & tx.LayerOptions & tx.MultiplyByInputs>,
  }),
  LayerLRP: () => ({
    make: (m) => new tx.LayerLRP(m, "conv2"), options: { target: 3 },
    keys: { ...target, ...batch, ...delta, ...layer, ...lrpInit } satisfies Keys<tx.LRPOptions & tx.LayerOptions & tx.LRPInit>,
  }),
  NeuronGradient: () => ({
    make: (m) => new tx.NeuronGradient(m, "conv2"), options: { neuronSelector: selector },
    keys: { ...untargeted, ...neuron } satisfies Keys<Omit<tx.TargetOptions, "target"> & tx.NeuronOptions>,
  }),
  NeuronIntegratedGradients: () => ({
    make: (m) => new tx.NeuronIntegratedGradients(m, "conv2"), options: { neuronSelector: selector, nSteps: 4 },
    keys: { ...untargeted, ...batch, ...delta, ...path_, ...neuron, ...mul } satisfies Keys<
      Omit<tx.IntegratedGradientsOptions, "target"> & tx.NeuronOptions & tx.MultiplyByInputs
    >,
  }),
  NeuronConductance: () => ({
    make: (m) => new tx.NeuronConductance(m, "conv2"), options: { neuronSelector: selector, target: 3, nSteps: 4 },
    keys: { ...target, ...batch, ...path_, ...neuron, ...mul } satisfies Keys<tx.NeuronConductanceOptions & tx.NeuronOptions & tx.MultiplyByInputs>,
  }),
  NeuronDeepLift: () => ({
    make: (m) => new tx.NeuronDeepLift(m, "conv2"), options: { neuronSelector: selector },
    keys: { ...untargeted, ...delta, baselines: true, ...neuron, ...deepLiftInit } satisfies Keys<
      tx.NeuronDeepLiftOptions & tx.DeltaOptions & tx.NeuronOptions & tx.DeepLiftInit
    >,
  }),
  NeuronDeepLiftShap: () => ({
    make: (m) => new tx.NeuronDeepLiftShap(m, "conv2"), options: { neuronSelector: selector, baselines: x },
    keys: { ...untargeted, ...delta, baselines: true, ...neuron, ...deepLiftInit } satisfies Keys<
      tx.NeuronDeepLiftOptions & tx.DeltaOptions & tx.NeuronOptions & tx.DeepLiftInit
    >,
  }),
  NeuronGradientShap: () => ({
    make: (m) => new tx.NeuronGradientShap(m, "conv2"), options: { neuronSelector: selector, baselines: x },
    keys: { ...untargeted, ...batch, ...delta, baselines: true, nSamples: true, stdevs: true, ...neuron, ...mul } satisfies Keys<
      Omit<tx.GradientShapOptions, "target"> & tx.NeuronOptions & tx.MultiplyByInputs
    >,
  }),
  NeuronGuidedBackprop: () => ({
    make: (m) => new tx.NeuronGuidedBackprop(m, "conv2"), options: { neuronSelector: selector },
    keys: { ...untargeted, ...neuron } satisfies Keys<Omit<tx.TargetOptions, "target"> & tx.NeuronOptions>,
  }),
  NeuronDeconvolution: () => ({
    make: (m) => new tx.NeuronDeconvolution(m, "conv2"), options: { neuronSelector: selector },
    keys: { ...untargeted, ...neuron } satisfies Keys<Omit<tx.TargetOptions, "target"> & tx.NeuronOptions>,
  }),
  NeuronFeatureAblation: () => ({
    make: (m) => new tx.NeuronFeatureAblation(m, "conv2"), options: { neuronSelector: selector, featureMask: mask },
    keys: { ...untargeted, perturbationsPerEval: true, baselines: true, featureMask: true, ...neuron } satisfies Keys<
      Omit<tx.FeatureAblationOptions, "target"> & tx.NeuronOptions
    >,
  }),
};

beforeAll(async () => {
  model = await tx.loadModel(path.join(MODELS, "digits_cnn.pt"));
  x = tx.tensor(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.abs(Math.sin(i * 0.7))), [2, 1, 8, 8]);
  // 4 features: the image's quadrants.
  mask = tx.tensor(Array.from({ length: 64 }, (_, i) => 2 * Math.floor(i / 32) + Math.floor((i % 8) / 4)), [1, 1, 8, 8], "int64");
});

// attribute() untyped, so that the test can pass what the types forbid.
const attribute = (c: Case, options: object) =>
  (c.make(model).attribute as (x: tx.Tensor, o: object) => Promise<unknown>)(x, options).catch((e: Error) => e);

describe.each(Object.keys(cases))("%s", (name) => {
  test("the core reads every option its types accept", async () => {
    const c = cases[name]();
    const err = await attribute(c, { ...c.options, notAnOption: 1 });
    expect(err).toBeInstanceOf(tx.TorchExplainError);
    const known = /unknown option notAnOption \(known: (.*)\)$/.exec((err as Error).message);
    expect(known).not.toBeNull();
    const read = new Set(known![1].split(", "));
    // Options that a layer or neuron method (or the request itself) consumes
    // before its inner algorithm sees the rest are not in that list: a value
    // of the wrong kind must then be rejected naming the option.
    const unread: string[] = [];
    for (const key of Object.keys(c.keys).filter((k) => !NOT_NATIVE.has(k) && !read.has(k))) {
      const named = async (bad: unknown) => {
        const e = await attribute(c, { ...c.options, [key]: bad });
        return e instanceof tx.TorchExplainError && new RegExp(`\\b${key}\\b`).test(e.message);
      };
      if (!(await named({ notAValue: true })) && !(await named("notAValue"))) unread.push(key);
    }
    expect(unread).toEqual([]);
  });

  test("onProgress sees the work done, ending with done = total", async () => {
    const c = cases[name]();
    const calls: [number, number][] = [];
    const r = await attribute(c, { ...c.options, onProgress: (done: number, total: number) => calls.push([done, total]) });
    expect(r).not.toBeInstanceOf(Error);
    await new Promise((r) => setImmediate(r)); // progress arrives through the event loop
    expect(calls.length).toBeGreaterThan(0);
    const [done, total] = calls[calls.length - 1];
    expect(total).toBeGreaterThan(0);
    expect(done).toBe(total);
  });
});

test("NoiseTunnel reports its wrapped method's progress", async () => {
  const calls: [number, number][] = [];
  await new tx.NoiseTunnel(new tx.IntegratedGradients(model)).attribute(x, {
    target: 3, nSteps: 4, nSamples: 3, onProgress: (done, total) => calls.push([done, total]),
  });
  await new Promise((r) => setImmediate(r));
  const [done, total] = calls[calls.length - 1];
  expect(total).toBe(3 * 4 * 2); // noisy copies x path points x examples
  expect(done).toBe(total);
});
