// Fuzz case generator: makeCase(seed, i) is a pure function, so the parent
// (which labels and attributes cases) and the child (which runs them) agree
// on case i without passing anything but (seed, i). A case is plain data;
// markers ({$tensor}, {$fn}, {$signal}) are turned into live objects by child.js.
"use strict";

const G = "test/fixtures/golden/", M = "models/";
// Input shapes without the batch dimension, output width (0: one value per batch), layer output shapes.
const MODELS = {
  toy: { file: G + "toy.pt", inputs: [[3]], out: 2, layers: { lin1: [3], relu: [3], lin2: [2] } },
  mlp: { file: G + "mlp.pt", inputs: [[8]], out: 3, layers: { fc1: [16], act1: [16], fc2: [8], act2: [8], fc3: [3] } },
  cnn: {
    file: G + "cnn.pt", inputs: [[1, 8, 8]], out: 10,
    layers: { conv1: [4, 8, 8], relu1: [4, 8, 8], pool: [4, 4, 4], conv2: [8, 4, 4], relu2: [8, 4, 4], gap: [8, 2, 2], fc: [10] },
  },
  cnnFunctional: { file: G + "cnn_functional.pt", inputs: [[1, 8, 8]], out: 10, layers: { conv1: [4, 8, 8], conv2: [8, 4, 4], fc: [10] } },
  multi: { file: G + "multi.pt", inputs: [[4], [3]], args: [0.5], out: 2, layers: { fa: [6], fb: [6], relu: [6], head: [2] } },
  text: { file: G + "text.pt", inputs: [[7]], tokens: 20, out: 2, layers: { embedding: [7, 6], conv: [5, 6], relu: [5, 6], fc: [2] } },
  digits: {
    file: M + "digits_cnn.pt", inputs: [[1, 8, 8]], out: 10,
    layers: { conv1: [8, 8, 8], relu1: [8, 8, 8], pool: [8, 4, 4], conv2: [16, 4, 4], relu2: [16, 4, 4], gap: [16, 1, 1], fc: [10] },
  },
  linear: { file: M + "linear.pt", inputs: [[6]], out: 3, layers: { fc: [3] } },
  linearSum: { file: M + "linear_sum.pt", inputs: [[6]], out: 0, layers: { fc: [3] } },
  benchMlp: { file: M + "bench_mlp.pt", inputs: [[64]], out: 10, layers: { fc1: [32], relu: [32], fc2: [10] } },
  benchConv: {
    file: M + "bench_convnet.pt", inputs: [[3, 32, 32]], out: 10, heavy: true,
    layers: { conv1: [16, 32, 32], relu1: [16, 32, 32], pool1: [16, 16, 16], conv2: [32, 16, 16], relu2: [32, 16, 16], pool2: [32, 8, 8], fc: [10] },
  },
};

// Option keys per family ("!" marks a required key).
const GRAD = ["target", "additionalForwardArgs", "internalBatchSize", "devices"];
const PATH = [...GRAD, "baselines", "nSteps", "method", "returnConvergenceDelta"];
const SHAP = [...GRAD, "!shapBaselines", "nSamples", "stdevs", "returnConvergenceDelta"];
const PERT = ["target", "additionalForwardArgs", "perturbationsPerEval", "memoryBudget", "showProgress", "onProgress"];
const DL = [...GRAD, "baselines", "returnConvergenceDelta"];
const COMMON = [...GRAD, "returnConvergenceDelta", "memoryBudget", "showProgress", "onProgress"];
const LAYER = ["attributeToLayerInput"];
const NEURON = ["!neuronSelector", "attributeToNeuronInput"];
const ALGORITHMS = {
  Saliency: { keys: [...GRAD, "abs"] },
  InputXGradient: { keys: GRAD },
  IntegratedGradients: { keys: PATH, init: ["multiplyByInputs"] },
  GradientShap: { keys: SHAP, init: ["multiplyByInputs"] },
  NoiseTunnel: { keys: ["ntType", "ntSamples", "ntSamplesBatchSize", "stdevs", "drawBaselineFromDistrib"], wrapper: true },
  FeatureAblation: { keys: [...PERT, "featureMask", "baselines"], perturbation: true },
  FeaturePermutation: { keys: [...PERT, "featureMask"], perturbation: true },
  Occlusion: { keys: [...PERT, "!slidingWindowShapes", "strides", "baselines"], perturbation: true },
  ShapleyValues: { keys: [...PERT, "featureMask", "baselines"], perturbation: true, fewFeatures: true },
  ShapleyValueSampling: { keys: [...PERT, "featureMask", "baselines", "nSamples"], perturbation: true },
  Lime: {
    keys: [...PERT, "featureMask", "baselines", "nSamples", "interpretableModel", "alpha", "distanceMode", "kernelWidth", "returnInputShape", "perturbFunc", "similarityFunc"],
    perturbation: true,
  },
  KernelShap: { keys: [...PERT, "featureMask", "baselines", "nSamples", "returnInputShape"], perturbation: true },
  DeepLift: { keys: DL, init: ["multiplyByInputs", "captumCompatible"] },
  DeepLiftShap: { keys: [...GRAD, "!shapBaselines", "returnConvergenceDelta"], init: ["multiplyByInputs", "captumCompatible"] },
  GuidedBackprop: { keys: GRAD },
  Deconvolution: { keys: GRAD },
  LRP: { keys: [...GRAD, "returnConvergenceDelta"], init: ["rules", "preset", "epsilon", "gamma", "low", "high", "foldBatchNorm"] },
  LayerActivation: { layer: true, multiLayer: true, keys: ["additionalForwardArgs", ...LAYER] },
  LayerGradientXActivation: { layer: true, keys: ["target", "additionalForwardArgs", ...LAYER], init: ["multiplyByInputs"] },
  LayerGradCam: { layer: true, keys: ["target", "additionalForwardArgs", ...LAYER, "reluAttributions", "attrDimSummation"] },
  GuidedGradCam: { layer: true, toInputs: true, keys: ["target", "additionalForwardArgs", ...LAYER, "interpolateMode"] },
  LayerConductance: { layer: true, keys: [...PATH, ...LAYER] },
  InternalInfluence: { layer: true, keys: [...PATH.filter((k) => k !== "returnConvergenceDelta"), ...LAYER] },
  LayerIntegratedGradients: { layer: true, multiLayer: true, keys: [...PATH, ...LAYER], init: ["multiplyByInputs"] },
  LayerFeatureAblation: { layer: true, perturbation: true, keys: [...PERT, ...LAYER, "layerBaselines"] },
  LayerDeepLift: { layer: true, keys: [...DL, ...LAYER], init: ["multiplyByInputs", "captumCompatible"] },
  LayerDeepLiftShap: { layer: true, keys: [...GRAD, "!shapBaselines", "returnConvergenceDelta", ...LAYER], init: ["multiplyByInputs"] },
  LayerGradientShap: { layer: true, keys: [...SHAP, ...LAYER], init: ["multiplyByInputs"] },
  LayerLRP: { layer: true, keys: [...GRAD, "returnConvergenceDelta", ...LAYER], init: ["rules", "preset", "epsilon", "gamma", "foldBatchNorm"] },
  NeuronGradient: { neuron: true, keys: ["additionalForwardArgs", ...NEURON] },
  NeuronIntegratedGradients: { neuron: true, keys: [...PATH.filter((k) => k !== "target"), ...NEURON], init: ["multiplyByInputs"] },
  NeuronConductance: { neuron: true, keys: [...PATH.filter((k) => k !== "returnConvergenceDelta"), ...NEURON] },
  NeuronDeepLift: { neuron: true, keys: ["additionalForwardArgs", "baselines", "returnConvergenceDelta", ...NEURON], init: ["multiplyByInputs"] },
  NeuronDeepLiftShap: { neuron: true, keys: ["additionalForwardArgs", "!shapBaselines", "returnConvergenceDelta", ...NEURON] },
  NeuronGradientShap: { neuron: true, keys: [...SHAP.filter((k) => k !== "target" && k !== "returnConvergenceDelta"), ...NEURON] },
  NeuronGuidedBackprop: { neuron: true, keys: ["additionalForwardArgs", ...NEURON] },
  NeuronDeconvolution: { neuron: true, keys: ["additionalForwardArgs", ...NEURON] },
  NeuronFeatureAblation: { neuron: true, perturbation: true, keys: [...PERT.filter((k) => k !== "target"), "featureMask", "baselines", ...NEURON] },
};
// Robustness, metrics and concepts (issue 12): attacks perturb(), metrics are
// functions of (model, inputs, attributions), TCAV scores concept sets.
const EXTRA = {
  FGSM: { keys: ["!target", "!fgsmEpsilon", "targeted", "mask", "additionalForwardArgs"], init: ["lowerBound", "upperBound"] },
  PGD: { keys: ["!target", "!radius", "!stepSize", "!stepNum", "norm", "randomStart", "targeted", "mask", "additionalForwardArgs"], init: ["lowerBound", "upperBound"] },
  infidelity: { keys: ["target", "additionalForwardArgs", "baselines", "nPerturbSamples", "maxExamplesPerBatch", "normalize", "perturbSpec", "!attributions"] },
  sensitivityMax: { keys: ["target", "additionalForwardArgs", "perturbRadius", "nPerturbSamples", "normOrd", "maxExamplesPerBatch", "perturbSpec"] },
  deletionCurve: { keys: ["target", "additionalForwardArgs", "baselines", "steps", "order", "abs", "softmax", "batchSize", "!attributions"] },
  insertionCurve: { keys: ["target", "additionalForwardArgs", "baselines", "steps", "order", "abs", "softmax", "batchSize", "!attributions"] },
  faithfulnessCorrelation: { keys: ["target", "additionalForwardArgs", "baselines", "subsetSize", "nSamples", "seed", "softmax", "!attributions"] },
  TCAV: { keys: ["target", "additionalForwardArgs"], init: ["classifier", "layerAttrMethod"], layer: true },
};

// LLM attribution (issue 21): prompts, targets and options around a small GPT-2.
const LLM = {
  LLMAttribution: { methods: ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap"] },
  LLMGradientAttribution: { methods: ["LayerIntegratedGradients", "LayerGradientXActivation", "LayerGradientShap"] },
};
const LLM_FILES = { model: "test/fixtures/llm/gpt2.pt", tokenizer: "test/fixtures/llm/bpe.json", layer: "m.transformer.wte" };

// Training-data influence (issue 22): a training set, labels, checkpoints and options around the small models.
const INFLUENCE = ["TracInCP", "TracInCPFast", "TracInCPFastRandProj", "SimilarityInfluence", "NaiveInfluenceFunction", "ArnoldiInfluenceFunction"];

// Generator keys that set an option of another name.
const OPTION = { shapBaselines: "baselines", perturbSpec: "perturbFunc", fgsmEpsilon: "epsilon" };
const FUNCTIONS = ["loadModel", "tensor", "forward", "interpolate"];
// Options the cancellation / budget work adds: valid keys once it lands, unknown options until then.
const NEW_KEYS = ["timeoutMs", "signal", "memoryBudget", "allowNonFinite"];
const UNKNOWN_KEYS = ["nStep", "targets", "foo", "constructor", "toString", "__proto__"];

function rng(seed) {
  // mulberry32: small, fast, and the same on every platform.
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int, pick: (xs) => xs[Math.floor(next() * xs.length)], chance: (p) => next() < p };
}

const T = (shape, dtype = "float32", fill = "rand", k) => ({ $tensor: { shape, dtype, fill, ...(k !== undefined ? { k } : {}) } });
const numel = (shape) => shape.reduce((a, b) => a * b, 1);
const EXPENSIVE = Symbol.for("fuzz.expensive"); // tags a generated value as costly: the case then gets a timeoutMs
const costly = (v) => ({ value: v, [EXPENSIVE]: true });

/** The generator state for one case: its rng, model, inputs, and what was fuzzed. */
function context(r, modelName) {
  const model = MODELS[modelName];
  const batch = r.pick([1, 1, 2, 3]);
  return { r, modelName, model, batch, shapes: model.inputs.map((s) => [batch, ...s]), desc: [], expensive: false, nonFinite: false };
}

// Valid values for each option key, given the case's model and inputs.
const VALID = {
  target: (c) => (c.model.out === 0 ? undefined : c.r.pick([
    c.r.int(0, c.model.out - 1),
    Array.from({ length: c.batch }, () => c.r.int(0, c.model.out - 1)),
    [c.r.int(0, c.model.out - 1)],
    T([c.batch], "int64", "ids", c.model.out),
  ])),
  additionalForwardArgs: (c) => c.model.args,
  internalBatchSize: (c) => c.r.pick([1, 2, 7, 64]),
  devices: (c) => c.r.pick([["cpu"], ["cpu", "cpu"]]),
  baselines: (c) => {
    const one = (s) => c.model.tokens ? c.r.pick([0, T(s, "int64", "zeros")]) : c.r.pick([0, 0.1, T(s), T([1, ...s.slice(1)])]);
    return c.shapes.length === 1 ? one(c.shapes[0]) : c.shapes.map(one);
  },
  shapBaselines: (c) => {
    const k = c.r.int(1, 4);
    const one = (s) => T([k, ...s.slice(1)], c.model.tokens ? "int64" : "float32", c.model.tokens ? "zeros" : "rand");
    return c.shapes.length === 1 ? one(c.shapes[0]) : c.shapes.map(one);
  },
  nSteps: (c) => c.r.int(1, 20),
  method: (c) => c.r.pick(["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]),
  returnConvergenceDelta: (c) => c.r.chance(0.5),
  nSamples: (c) => c.r.int(1, 12),
  ntSamples: (c) => c.r.int(1, 4),
  stdevs: (c) => c.r.pick([0, 0.1, 0.5]),
  abs: (c) => c.r.chance(0.5),
  featureMask: (c) => {
    const one = (s) => {
      const per = numel(s.slice(1));
      return T([1, ...s.slice(1)], "int64", "ids", Math.max(1, Math.min(per, c.r.int(1, 6))));
    };
    return c.shapes.length === 1 ? one(c.shapes[0]) : c.shapes.map(one);
  },
  perturbationsPerEval: (c) => c.r.pick([1, 4, "auto"]),
  memoryBudget: (c) => c.r.pick([1 << 20, 1 << 28]),
  showProgress: (c) => c.r.chance(0.5),
  onProgress: (c) => ({ $fn: c.r.pick(["noop", "throws"]) }),
  slidingWindowShapes: (c) => {
    const one = (s) => s.slice(1).map((d) => c.r.int(1, d));
    return c.shapes.length === 1 ? one(c.shapes[0]) : c.shapes.map(one);
  },
  strides: (c) => c.r.pick([1, 2, 3]),
  interpretableModel: (c) => c.r.pick(["lasso", "ridge", "linear"]),
  alpha: (c) => c.r.pick([0.01, 1]),
  distanceMode: (c) => c.r.pick(["cosine", "euclidean"]),
  kernelWidth: (c) => c.r.pick([0.5, 1, 5]),
  returnInputShape: (c) => c.r.chance(0.7),
  perturbFunc: (c) => ({ $fn: "coalition", n: featureCount(c) }),
  similarityFunc: () => ({ $fn: "one" }),
  ntType: (c) => c.r.pick(["smoothgrad", "smoothgrad_sq", "vargrad"]),
  ntSamplesBatchSize: (c) => c.r.int(1, 3),
  drawBaselineFromDistrib: (c) => c.r.chance(0.3),
  attributeToLayerInput: (c) => c.r.chance(0.3),
  attributeToNeuronInput: (c) => c.r.chance(0.3),
  reluAttributions: (c) => c.r.chance(0.5),
  attrDimSummation: (c) => c.r.chance(0.7),
  interpolateMode: (c) => c.r.pick(["nearest", "area", "bilinear"]),
  layerBaselines: (c) => c.r.pick([0, 0.5]),
  neuronSelector: (c) => {
    const s = c.model.layers[c.layer] || [1];
    const index = s.map((d) => c.r.int(0, d - 1));
    return c.r.pick([s.length === 1 ? index[0] : index, index, { $fn: "selectFirst", rank: s.length }]);
  },
  // Constructor options.
  multiplyByInputs: (c) => c.r.chance(0.5),
  captumCompatible: (c) => c.r.chance(0.5),
  rules: (c) => ({ [c.r.pick(Object.keys(c.model.layers))]: c.r.pick(["epsilon", "gamma", "alpha1beta0", "zplus", { rule: "zbox", low: -1, high: 1 }, "identity"]) }),
  preset: (c) => c.r.pick(["epsilon", "epsilonPlus"]),
  epsilon: (c) => c.r.pick([1e-9, 1e-3]),
  gamma: (c) => c.r.pick([0.25, 1]),
  low: () => -1,
  high: () => 1,
  foldBatchNorm: (c) => c.r.chance(0.5),
  // Robustness, metrics and concepts.
  fgsmEpsilon: (c) => c.r.pick([0, 0.01, 0.3]),
  radius: (c) => c.r.pick([0, 0.05, 0.5]),
  stepSize: (c) => c.r.pick([0.01, 0.1]),
  stepNum: (c) => c.r.int(0, 5),
  norm: (c) => c.r.pick(["Linf", "L2"]),
  randomStart: (c) => c.r.chance(0.5),
  targeted: (c) => c.r.chance(0.3),
  mask: (c) => (c.shapes.length === 1 ? T(c.shapes[0], "float32", "ids", 2) : c.shapes.map((s) => T(s, "float32", "ids", 2))),
  lowerBound: (c) => c.r.pick([-1, -0.5]),
  upperBound: (c) => c.r.pick([0.5, 1]),
  nPerturbSamples: (c) => c.r.int(1, 6),
  maxExamplesPerBatch: (c) => c.r.int(1, 12),
  normalize: (c) => c.r.chance(0.5),
  perturbSpec: (c) => c.r.pick([{ type: "gaussian", stdev: 0.1 }, { type: "uniform", radius: 0.1 }, { type: "baseline", probability: 0.3 }]),
  attributions: (c) => (c.shapes.length === 1 ? T(c.shapes[0]) : c.shapes.map((s) => T(s))),
  perturbRadius: (c) => c.r.pick([0, 0.02, 0.3]),
  normOrd: (c) => c.r.pick(["fro", "inf", 1, 3]),
  steps: (c) => c.r.int(1, 8),
  order: (c) => c.r.pick(["most-relevant-first", "least-relevant-first"]),
  softmax: (c) => c.r.chance(0.3),
  batchSize: (c) => c.r.int(1, 40),
  subsetSize: (c) => c.r.int(1, 3),
  seed: (c) => c.r.int(0, 100),
  classifier: (c) => c.r.pick(["sgd", "logistic"]),
  layerAttrMethod: (c) => c.r.pick(["gradient", "gradientXActivation"]),
  // New options.
  timeoutMs: (c) => c.r.pick([c.r.int(1, 50), c.r.int(2000, 5000)]),
  signal: (c) => ({ $signal: c.r.pick([-1, 0, 1, 3, 10, 50]) }),
  allowNonFinite: (c) => c.r.chance(0.5),
};

function featureCount(c) {
  return c.shapes.reduce((a, s) => a + numel(s.slice(1)), 0);
}

// Invalid or edge values: per key, plus a generic pool for any key.
const GENERIC = [-1, 0, 1e9, NaN, Infinity, -Infinity, 2.5, "3", "", null, true, [], {}, [1, 2, 3], { $fn: "throws" }, 2 ** 53, -0];
const ODD = {
  target: (c) => [99, -99, Math.max(1, c.model.out), Array(c.batch + 2).fill(0), [[0, 0]], T([c.batch]), T([c.batch, 2], "int64", "zeros"), "a", 1.5, null, T([c.batch], "int64", "huge")],
  nSteps: () => [0, -5, costly(1e9), costly(100000), 2.5, "10"],
  nSamples: () => [0, -1, costly(1e9), costly(100000), 1.5],
  ntSamples: () => [0, -1, costly(1e7), 1.5],
  internalBatchSize: () => [0, -1, 1e12, 0.5, "2", 2 ** 31],
  devices: () => [["cpu:5"], ["cuda"], ["cuda:0"], Array(5).fill("cpu"), Array(64).fill("cpu"), [], "cpu", [""], [5], ["cpu", null], ["meta"]],
  baselines: (c) => [T([1, 2]), [0, 0, 0], NaN, Infinity, "zero", T([0, ...c.shapes[0].slice(1)]), T(c.shapes[0], "int64", "zeros"),
    T(c.shapes[0], "float32", "nan"), T([]), T([c.batch + 3, ...c.shapes[0].slice(1)]), T(c.shapes[0], "float64")],
  shapBaselines: (c) => [T([0, ...c.shapes[0].slice(1)]), T([1, 2]), 0, NaN, T([5]), T([2, ...c.shapes[0].slice(1)], "float32", "inf"), "refs"],
  stdevs: () => [-1, NaN, 1e30, [0.1, 0.1, 0.1], "x"],
  featureMask: (c) => [T([1, 2], "int64", "ids", 2), T(c.shapes[0]), T([1, ...c.shapes[0].slice(1)], "int64", "idsGap"),
    T([1, ...c.shapes[0].slice(1)], "int64", "idsNeg"), T([1, ...c.shapes[0].slice(1)], "int64", "huge"), T([0, ...c.shapes[0].slice(1)], "int64", "zeros"),
    T([c.batch + 1, ...c.shapes[0].slice(1)], "int64", "ids", 2), Array(3).fill(T([1, 1], "int64", "zeros")), T([1, ...c.shapes[0].slice(1)], "bool", "ids", 2)],
  perturbationsPerEval: () => [0, -1, "many", 1e9, 2.5],
  memoryBudget: () => [0, -1, 1, NaN, 1e30, "1GB"],
  slidingWindowShapes: (c) => [c.shapes[0].slice(1).map((d) => d + 1), c.shapes[0].slice(1).map(() => 0), [-1], [1, 1, 1, 1, 1], [], [1e9], "3"],
  strides: () => [0, [0, 0, 0], -1, 1e9, [1, 2], 0.5],
  neuronSelector: () => [99, -1, [99, 99, 99], [0], [0, 0, 0, 0, 0], "a", { $fn: "throws" }, { $fn: "garbage" }, { $fn: "selectHuge" }, { $fn: "perExample" }, 1.5, null],
  perturbFunc: () => [{ $fn: "throws" }, { $fn: "garbage" }, { $fn: "wrongLen" }, { $fn: "undefined" }, { $fn: "nan" }],
  similarityFunc: () => [{ $fn: "throws" }, { $fn: "nan" }, { $fn: "negative" }, { $fn: "garbage" }, { $fn: "huge" }],
  ntType: () => ["smooth", "", 5],
  method: () => ["simpson", "", 3],
  interpretableModel: () => ["tree", ""],
  distanceMode: () => ["manhattan"],
  kernelWidth: () => [0, -1, NaN, 1e-30],
  alpha: () => [-1, NaN, 1e30],
  interpolateMode: () => ["cubic", "bicubic", "trilinear", "linear"],
  rules: (c) => [{ nope: "gamma" }, { [Object.keys(c.model.layers)[0]]: "bogus" }, { [Object.keys(c.model.layers)[0]]: { rule: "zbox" } },
    { [Object.keys(c.model.layers)[0]]: { rule: "gamma", gamma: -1 } }, "gamma", { Conv2d: { rule: "zbox", low: T([2, 2]), high: T([2, 2]) } }],
  preset: () => ["bogus", "epsilonGammaBox"],
  epsilon: () => [0, -1, NaN],
  gamma: () => [-1, NaN, 1e30],
  low: () => [T([2, 2]), NaN, "a"],
  high: () => [T([2, 2]), NaN, "a"],
  layerBaselines: (c) => [T([1, 2]), NaN, "x", T([c.batch, 99])],
  fgsmEpsilon: () => [NaN, Infinity, -1, "0.1"],
  radius: () => [-1, NaN, Infinity, "1"],
  stepSize: () => [NaN, -1, Infinity],
  stepNum: () => [-1, 2.5, costly(1e9), "3"],
  norm: () => ["L3", "", 2],
  mask: (c) => [T([1, 2]), T([c.batch + 1, ...c.shapes[0].slice(1)]), T(c.shapes[0], "int64", "zeros"), [T([1])], 1],
  lowerBound: () => [NaN, 10, "a"],
  upperBound: () => [NaN, -10, "a"],
  nPerturbSamples: () => [0, -1, 2.5, costly(1e9)],
  maxExamplesPerBatch: () => [0, -1, 1e12, 0.5],
  perturbSpec: () => [{ type: "bogus" }, { type: "gaussian", stdev: -1 }, { type: "baseline", probability: 2 }, { $fn: "throws" }, { $fn: "garbage" }, { $fn: "undefined" }, "gaussian"],
  attributions: (c) => [T([1, 2]), T([c.batch + 1, ...c.shapes[0].slice(1)]), T(c.shapes[0], "float32", "nan"), [], null, "x"],
  perturbRadius: () => [-1, NaN, Infinity],
  normOrd: () => ["nuc", 0, -2, NaN, null],
  steps: () => [0, -1, 2.5, costly(1e7)],
  order: () => ["random", "", 1],
  batchSize: () => [0, -1, 0.5, 1e12],
  subsetSize: () => [0, -1, 1e9, 2.5],
  seed: () => [NaN, 2.5, "x"],
  classifier: () => ["svm", "", 1],
  layerAttrMethod: () => ["grad", 5],
  timeoutMs: () => [0, -1, 1, NaN, 1e12, "5"],
  signal: () => [{}, "abort", null, { aborted: true }],
  allowNonFinite: () => ["yes", 1],
};

function oddValue(c, key) {
  const pool = ODD[key] ? ODD[key](c) : [];
  return c.r.chance(0.8) && pool.length ? c.r.pick(pool) : c.r.pick(GENERIC);
}

/** Unwraps costly() values, marking the case expensive, and notes values that may make results non-finite. */
function take(c, v) {
  if (v && v[EXPENSIVE]) {
    c.expensive = true;
    v = v.value;
  }
  // Extreme magnitudes (an underflowing kernel width, an overflowing noise) may fairly give non-finite results.
  if (typeof v === "number" && (!Number.isFinite(v) || Math.abs(v) >= 1e20 || (v !== 0 && Math.abs(v) <= 1e-20))) c.nonFinite = true;
  if (v && v.$tensor && (v.$tensor.fill === "nan" || v.$tensor.fill === "inf")) c.nonFinite = true;
  return v;
}

const show = (v) => JSON.stringify(v, (k, x) => (typeof x === "number" && !Number.isFinite(x) ? String(x) : x)) ?? String(v);
const trim = (s) => (s.length > 80 ? s.slice(0, 77) + "..." : s);

/** Valid inputs for the context's model, then (sometimes) one mutation of them. */
function makeInputs(c) {
  const { r, model } = c;
  let shapes = c.shapes.map((s) => s.slice());
  let dtype = model.tokens ? "int64" : "float32", fill = model.tokens ? "tokens" : "rand";
  const mutation = r.chance(0.3) ? r.pick(["batch0", "rank", "size", "hugeEmpty", "dtype", "nan", "inf", "bigBatch", "bigInput", "arity", "notTensor", "tokens"]) : null;
  let asArray = shapes.length > 1 || r.chance(0.1);
  let raw;
  switch (mutation) {
    case "batch0": shapes = shapes.map((s) => [0, ...s.slice(1)]); c.batch = 0; break;
    case "rank": shapes = shapes.map((s) => r.pick([s.slice(1), [...s, 1], [], [1, ...s]])); break;
    case "size": shapes = shapes.map((s) => [...s.slice(0, -1), r.pick([0, s[s.length - 1] + 1, 1])]); break;
    case "hugeEmpty": shapes = shapes.map((s) => [s[0], 0, r.pick([2 ** 31, 2 ** 40, 1e9]), ...s.slice(2)]); break;
    case "dtype": dtype = r.pick(["float64", "int64", "int32", "bool", "float32"]); fill = dtype === "bool" || model.tokens ? "ids" : "rand"; break;
    case "nan": fill = "nan"; c.nonFinite = true; break;
    case "inf": fill = "inf"; c.nonFinite = true; break;
    case "bigBatch": shapes = shapes.map((s) => [64, ...s.slice(1)]); c.batch = 64; c.expensive = true; break;
    case "bigInput": // a larger image (the CNNs pool adaptively): cheap for gradients, costly for perturbations
      shapes = shapes.map((s) => (s.length === 4 ? [s[0], s[1], 64, 64] : [s[0], s[1] * 16])); c.expensive = true; break;
    case "arity": asArray = true; shapes = shapes.length > 1 ? shapes.slice(0, 1) : [shapes[0], shapes[0]]; break;
    case "notTensor": raw = r.pick([[1, 2, 3], 5, null, "x", [[0.1, 0.2, 0.3]], {}]); break;
    case "tokens": if (model.tokens) fill = r.pick(["huge", "idsNeg"]); else { dtype = "int64"; fill = "ids"; } break;
  }
  if (mutation) c.desc.push(`inputs:${mutation}`);
  c.shapes = shapes; // later options (baselines, masks) follow the mutated shapes
  if (raw !== undefined) return raw;
  const k = model.tokens ? model.tokens : 2;
  const list = shapes.map((s) => T(s, dtype, fill, k));
  return asArray ? list : list[0];
}

function attributeCase(c, algorithm) {
  const { r, model } = c;
  const spec = ALGORITHMS[algorithm];
  let base;
  if (spec.wrapper) {
    base = r.pick(["Saliency", "InputXGradient", "IntegratedGradients", "GradientShap", "DeepLift", "GuidedBackprop", "LRP", "FeatureAblation", "LayerGradCam"]);
    c.base = base;
  }
  const inner = base ? ALGORITHMS[base] : spec;
  const layers = Object.keys(model.layers);
  if (inner.layer || inner.neuron) {
    c.layer = r.pick(layers);
    if (inner.multiLayer && r.chance(0.2)) c.layer = [c.layer, r.pick(layers)];
  }
  const inputs = makeInputs(c);
  const keys = [...new Set([...(inner.keys || []), ...(base ? spec.keys : [])])];
  const options = {}, init = {};
  for (const k of keys) {
    const name = k.replace("!", "");
    if (k.startsWith("!") || r.chance(0.4) || (name === "additionalForwardArgs" && model.args) || (name === "target" && r.chance(0.8))) {
      const v = VALID[name](c);
      if (v !== undefined) options[OPTION[name] || name] = v;
    }
  }
  for (const k of inner.init || []) if (r.chance(0.3)) init[k] = VALID[k](c);
  // Perturbation methods cost one forward pass per feature (and sample): keep the default ones cheap.
  if (inner.perturbation && (model.heavy || featureCount(c) > 256) && !options.featureMask) c.expensive = true;
  if (algorithm === "ShapleyValues" && !options.featureMask && featureCount(c) > 12) options.featureMask = VALID.featureMask(c);

  // Mutations: 0 to 3 option values, sometimes a constructor value or the layer.
  const n = r.pick([0, 0, 0, 0, 1, 1, 1, 1, 2, 3]);
  for (let m = 0; m < n; m++) {
    const roll = r.next();
    if (roll < 0.6) {
      // Mostly the algorithm's own options: the shared ones (target, devices, ...) come up everywhere anyway.
      const own = keys.filter((k) => !COMMON.includes(k));
      const key = r.pick(own.length && r.chance(0.7) ? own : keys).replace("!", ""), name = OPTION[key] || key;
      options[name] = take(c, oddValue(c, key));
      c.desc.push(`${name}=${trim(show(options[name]))}`);
    } else if (roll < 0.65) {
      const key = r.pick(keys.filter((k) => k.startsWith("!")).concat(keys)).replace("!", ""), name = OPTION[key] || key;
      delete options[name];
      c.desc.push(`no ${name}`);
    } else if (roll < 0.75) {
      const key = r.pick(UNKNOWN_KEYS);
      Object.defineProperty(options, key, { value: r.pick([1, "x", {}]), enumerable: true, configurable: true, writable: true });
      c.desc.push(`unknown ${key}`);
    } else if (roll < 0.85 && (inner.init || []).length) {
      const key = r.pick(inner.init);
      init[key] = take(c, oddValue(c, key));
      c.desc.push(`init.${key}=${trim(show(init[key]))}`);
    } else if ((inner.layer || inner.neuron) && r.chance(0.5)) {
      c.layer = r.pick(["nope", "", [layers[0], "nope"], [], 5, null, layers[0] + ".weight", ".", layers[0] + "."]);
      c.desc.push(`layer=${show(c.layer)}`);
    } else {
      const key = r.pick(NEW_KEYS);
      options[key] = take(c, r.chance(0.5) ? VALID[key](c) : oddValue(c, key));
      c.desc.push(`${key}=${trim(show(options[key]))}`);
    }
  }
  // Cancellation: abort a running call after a few ms.
  if (r.chance(0.1)) {
    options.signal = { $signal: r.int(0, 20) };
    c.desc.push(`abort after ${options.signal.$signal} ms`);
  }
  if (r.chance(0.05)) {
    options.timeoutMs = r.int(1, 30);
    c.desc.push(`timeoutMs=${options.timeoutMs}`);
  }
  // Keep costly cases bounded once timeoutMs exists (until then they are rejected as unknown options).
  if (c.expensive && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0 && options.timeoutMs <= 5000)) {
    options.timeoutMs = r.int(500, 2000);
    c.desc.push(`timeoutMs=${options.timeoutMs} (costly)`);
  }
  return { kind: "attribute", algorithm, base, layer: c.layer, init, inputs, options, aggregate: model.out === 0, returnInputShape: options.returnInputShape };
}

function extraCase(c, name) {
  const { r, model } = c;
  const spec = EXTRA[name];
  const inputs = makeInputs(c);
  const options = {}, init = {};
  for (const k of spec.keys) {
    const key = k.replace("!", "");
    if (k.startsWith("!") || r.chance(0.4) || (key === "additionalForwardArgs" && model.args) || (key === "target" && r.chance(0.8))) {
      const v = VALID[key](c);
      if (v !== undefined) options[OPTION[key] || key] = v;
    }
  }
  for (const k of spec.init || []) if (r.chance(0.4)) init[k] = VALID[k](c);
  if (spec.layer) c.layer = [r.pick(Object.keys(model.layers))];
  const n = r.pick([0, 0, 0, 1, 1, 2]);
  for (let m = 0; m < n; m++) {
    const roll = r.next();
    if (roll < 0.7) {
      const key = r.pick(spec.keys).replace("!", ""), name2 = OPTION[key] || key;
      options[name2] = take(c, oddValue(c, key));
      c.desc.push(`${name2}=${trim(show(options[name2]))}`);
    } else if (roll < 0.8) {
      const key = r.pick(spec.keys).replace("!", ""), name2 = OPTION[key] || key;
      delete options[name2];
      c.desc.push(`no ${name2}`);
    } else if (roll < 0.9 && (spec.init || []).length) {
      const key = r.pick(spec.init);
      init[key] = take(c, oddValue(c, key));
      c.desc.push(`init.${key}=${trim(show(init[key]))}`);
    } else if (spec.layer) {
      c.layer = r.pick([["nope"], [], "fc", [5]]);
      c.desc.push(`layers=${show(c.layer)}`);
    } else {
      const key = r.pick(UNKNOWN_KEYS);
      Object.defineProperty(options, key, { value: 1, enumerable: true, configurable: true, writable: true });
      c.desc.push(`unknown ${key}`);
    }
  }
  if (r.chance(0.1)) {
    options.signal = { $signal: r.int(0, 20) };
    c.desc.push(`abort after ${options.signal.$signal} ms`);
  }
  if (c.expensive) {
    options.timeoutMs = r.int(500, 2000);
    c.desc.push(`timeoutMs=${options.timeoutMs} (costly)`);
  }
  // TCAV's concepts: examples shaped like the inputs (sometimes none).
  const concepts = spec.layer ? [0, 1].map((id) => T([r.pick([0, 2, 4, 6]), ...c.shapes[0].slice(1)], model.tokens ? "int64" : "float32", model.tokens ? "tokens" : "rand", model.tokens)) : undefined;
  return { kind: "extra", algorithm: name, layer: c.layer, init, inputs, options, concepts };
}

function llmCase(c, name) {
  const { r } = c;
  const spec = LLM[name];
  // Mostly the class's own methods; sometimes the other class's, a plain gradient method, or none.
  const method = r.chance(0.85) ? r.pick(spec.methods) : r.pick(["Saliency", "IntegratedGradients", ...LLM[name === "LLMAttribution" ? "LLMGradientAttribution" : "LLMAttribution"].methods]);
  const words = ["dave", "paris", "the cat", "", " ", "ünïcödé ✓", "{}", "x".repeat(300), "\u0000", "a\nb"];
  const kind = r.pick(["template", "template", "text", "text"]);
  const input = { kind };
  if (kind === "template") {
    const n = r.pick([1, 2, 3, 0, 12]);
    input.values = Array.from({ length: n }, () => r.pick(words));
    const placeholders = r.chance(0.85) ? n : r.pick([0, n + 1, Math.max(0, n - 1)]);
    input.template = Array.from({ length: placeholders }, () => "{}").join(r.pick([" lives in ", " ", ""])) || r.pick(["no placeholders", ""]);
    if (r.chance(0.4)) input.baselines = r.pick([input.values.map(() => r.pick(words)), [], ["a"], 5, null, [1, 2]]);
    if (r.chance(0.2)) input.mask = r.pick([input.values.map((_, i) => i % 2), [0], [-1, 2], "x"]);
  } else {
    input.text = r.pick(["the cat sat on", "", "the", "x ".repeat(100), "ünïcödé ✓", "a\u0000b"]);
    if (r.chance(0.3)) input.baselines = r.pick([0, 5, "the", -1, 1e9, 2.5, null]);
    if (r.chance(0.2)) input.skipTokens = r.pick([["the"], [0], [-1], ["nope"], "the"]);
  }
  const options = {};
  const t = r.next();
  if (t < 0.5) options.target = r.pick([" he is happy", " the mat", " x".repeat(100), "", "ünï"]);
  else if (t < 0.65) options.target = r.pick([[5, 6], [], [-1], [1e9], [2.5], 3, -2]);
  else if (t < 0.9) options.genArgs = r.pick([{ maxNewTokens: 2 }, { maxNewTokens: 0 }, { maxNewTokens: -1 }, { maxNewTokens: 2.5 }, { maxNewTokens: 500 }, { maxNewTokens: 2, eosTokenId: 3 }, "x"]);
  const init = {};
  if (r.chance(0.3)) init.attrTarget = r.pick(["logProb", "prob", "logits", 5]);
  if (r.chance(0.2)) options.numTrials = r.pick([1, 2, 0, -1, 2.5]);
  if (r.chance(0.3)) options.nSamples = r.pick([1, 3, 0, -2, 40]);
  if (r.chance(0.2)) options.nSteps = r.pick([1, 4, 0, -3]);
  if (r.chance(0.1)) options.memoryBudget = r.pick([1, 1000, 1e6, -1]);
  if (r.chance(0.1)) options.baselines = 0; // refused: baselines belong to the input
  if (r.chance(0.05)) Object.defineProperty(options, r.pick(UNKNOWN_KEYS), { value: 1, enumerable: true, configurable: true, writable: true });
  if (r.chance(0.1)) options.signal = { $signal: r.int(0, 20) };
  // Generation and sampling on 300-character prompts cost seconds: bound them.
  options.timeoutMs = r.int(1000, 3000);
  c.desc.push(`${method} ${kind}`, trim(show(input)), trim(show(options)), ...(Object.keys(init).length ? [`init=${show(init)}`] : []));
  return { kind: "llm", algorithm: name, method, input, options, init, ...LLM_FILES };
}

function influenceCase(c, name) {
  const { r, model } = c;
  const n = r.pick([1, 4, 9, 16]);
  // Inputs for n examples (makeInputs mutates its context: a copy per set, sharing the description).
  const inputsOf = (rows) => {
    const sub = { ...c, batch: rows, shapes: model.inputs.map((s) => [rows, ...s]) };
    const x = makeInputs(sub);
    c.nonFinite = c.nonFinite || sub.nonFinite;
    return x;
  };
  const train = inputsOf(n);
  const classes = Math.max(1, model.out);
  const labelKind = r.chance(0.75) ? "ids" : r.pick(["float", "short", "neg", "big", "scalar", "bool"]);
  const labels = {
    ids: T([n], "int64", "ids", classes), float: T([n, classes], "float32", "rand"), short: T([Math.max(0, n - 1)], "int64", "ids", classes),
    neg: T([n], "int64", "idsNeg"), big: T([n], "int64", "huge"), scalar: T([], "int64", "ids", classes), bool: T([n], "bool", "ids"),
  }[labelKind];
  const testN = r.pick([1, 2, 3]);
  const test = inputsOf(testN);
  const testLabels = T([testN], "int64", "ids", classes);
  const layerNames = Object.keys(model.layers);
  const checkpoints = Array.from({ length: r.pick([1, 2, 3]) }, () =>
    r.chance(0.93) ? { path: model.file, learningRate: r.chance(0.9) ? r.pick([1, 0.5, 1e-3]) : r.pick([-1, NaN, 0]) } : r.pick(["missing.pt", MODELS.toy.file, 5, { path: 3 }, null]));
  const init = {};
  if (r.chance(0.6)) init.lossFn = r.pick(["crossEntropy", "crossEntropy", "mse", "nll", "bce", "hinge", { name: "mse", reduction: "mean" }, { name: "x" }, 5]);
  if (r.chance(0.3)) init.batchSize = r.chance(0.8) ? r.pick([1, 3, 64]) : r.pick([0, -2, 2.5]);
  if (r.chance(0.3)) init.layers = r.chance(0.7) ? r.pick([[r.pick(layerNames)], layerNames.slice(0, 2)]) : r.pick([["nope"], [], "fc", [5]]);
  // A Hessian over every parameter of a CNN costs seconds: mostly the last layer's.
  else if (name.endsWith("InfluenceFunction") && r.chance(0.8)) init.layers = [layerNames[layerNames.length - 1]];
  if (r.chance(0.1)) init.memoryBudget = r.pick([1, 1e3, 1e9, -1]);
  if (name === "TracInCPFastRandProj" && r.chance(0.6)) init.projectionDim = r.chance(0.8) ? r.pick([1, 4, 64]) : r.pick([0, 2.5]);
  if (name === "ArnoldiInfluenceFunction") init.arnoldiDim = r.chance(0.85) ? r.pick([2, 5, 10]) : r.pick([1, 0]);
  if (name.endsWith("InfluenceFunction") && r.chance(0.5)) init.projectionDim = r.chance(0.85) ? r.pick([1, 3, 50]) : 0;
  if (name === "SimilarityInfluence" && r.chance(0.5)) init.similarityMetric = r.pick(["cosine", "euclidean", "dot", 5]);
  const fcLayer = r.chance(0.8) ? (layerNames.includes("fc") ? "fc" : layerNames[layerNames.length - 1]) : r.pick(["nope", "relu", 5, ""]);
  const options = {};
  if (r.chance(0.5)) options.k = r.chance(0.75) ? r.pick([1, 2, n]) : r.pick([n + 1, 0, -1, 2.5, null]);
  if (r.chance(0.3)) options.proponents = r.chance(0.85) ? r.pick([true, false]) : "yes";
  if (r.chance(0.2)) options.aggregate = r.chance(0.85) ? r.pick([true, false]) : 1;
  if (r.chance(0.1)) options.signal = { $signal: r.int(0, 20) };
  if (r.chance(0.05)) options.timeoutMs = r.int(1, 30);
  const call = r.pick(["influence", "influence", "selfInfluence"]);
  c.desc.push(`${call} n=${n} labels:${labelKind}`, `ckpts=${trim(show(checkpoints))}`, `init=${trim(show(init))}`, trim(show(options)));
  return { kind: "influence", algorithm: name, train, labels, test, testLabels, checkpoints, init, fcLayer, options, call };
}

function loadModelCase(c) {
  const { r } = c;
  const target = r.pick(["missing", "directory", "fifo", "nul", "empty", "truncated", "flipped", "flipped", "json", "valid", "notString", "relative"]);
  const source = MODELS[r.pick(Object.keys(MODELS).filter((k) => !MODELS[k].heavy))].file;
  const flips = Array.from({ length: r.int(1, 16) }, () => [r.next(), r.int(1, 255)]); // (relative offset, xor mask)
  const device = r.chance(0.7) ? undefined : r.pick(["cpu", "cuda", "cuda:0", "cpu:5", "tpu", "", 5, null, "cuda:-1", "meta"]);
  c.desc.push(`path:${target}`, ...(device !== undefined ? [`device=${show(device)}`] : []));
  return { kind: "loadModel", target, source, cut: r.next(), flips, device, notString: r.pick([42, null, undefined, {}, ["a"]]) };
}

function tensorCase(c) {
  const { r } = c;
  const len = r.pick([0, 1, 6, 12]);
  const data = r.pick(["array", "nested", "ragged", "float32", "float64", "int32", "bigint64", "uint8", "int8", "uint16", "strings", "objects", "bools", "null", "number", "mixed", "holes", "nan"]);
  const shape = r.pick([undefined, [len], [len / 2, 2], [], [0], [-1], [2.5], [NaN], ["2"], [2 ** 31, 0], [2 ** 53, 0], [0, 2 ** 40], [1e20, 0],
    [2 ** 31, 2 ** 31, 0], [-(2 ** 31), 0], Array(64).fill(1), Array(2000).fill(1), "2", null, [Infinity, 0], [len + 1], [2 ** 32 + len]]);
  const dtype = r.pick([undefined, undefined, "float32", "float64", "int64", "int32", "bool", "float16", "", 5]);
  const then = r.pick(["data", "toArray", "toString", "cpu", "cuda", "cpu:5", "meta", "cuda:99", "", "none"]);
  c.desc.push(`data:${data}[${len}]`, `shape=${trim(show(shape))}`, `dtype=${show(dtype)}`, `then ${then}`);
  return { kind: "tensor", len, data, shape, dtype, then };
}

function forwardCase(c) {
  const inputs = makeInputs(c);
  const args = c.r.chance(0.6) ? c.model.args : c.r.pick([[], ["x"], [0.5, 1], [{}], [null], [T([1])], [[0.5]], "x"]);
  if (args !== c.model.args) c.desc.push(`args=${show(args)}`);
  return { kind: "forward", inputs, args };
}

function interpolateCase(c) {
  const { r } = c;
  const shape = r.pick([[2, 3, 4, 4], [1, 1, 8], [1, 2, 2, 2, 2], [0, 1, 4, 4], [2, 0, 4, 4], [4], [], [1, 1, 0, 0]]);
  const size = r.pick([[8, 8], [1, 1], [0, 0], [-1, 4], [2 ** 40, 2 ** 40], [NaN, 2], [4], [4, 4, 4], [], "8", [256, 256], [2.5, 3]]);
  const mode = r.pick(["nearest", "area", "linear", "bilinear", "bicubic", "trilinear", "cubic", undefined, 5]);
  const fill = r.pick(["rand", "rand", "nan"]);
  c.desc.push(`input [${shape}]`, `size=${show(size)}`, `mode=${show(mode)}`, ...(fill !== "rand" ? [fill] : []));
  return { kind: "interpolate", input: T(shape, r.pick(["float32", "float32", "float64", "int64"]), fill), size, mode };
}

/** Case i of the run with this seed: { i, name, desc, nonFinite, ... what child.js needs }. */
function makeCase(seed, i) {
  const r = rng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const names = [...Object.keys(ALGORITHMS), ...Object.keys(EXTRA), ...Object.keys(LLM), ...INFLUENCE, ...FUNCTIONS];
  const name = r.chance(0.12) ? r.pick(FUNCTIONS) : r.pick(names);
  // The heavy model (a 3x32x32 convnet) only where its size stays cheap: not for perturbation methods.
  let modelName = r.pick(Object.keys(MODELS));
  if (MODELS[modelName].heavy && ((ALGORITHMS[name] || {}).perturbation || EXTRA[name] || INFLUENCE.includes(name))) modelName = "cnn";
  const c = context(r, modelName);
  let body;
  if (name === "loadModel") body = loadModelCase(c);
  else if (name === "tensor") body = tensorCase(c);
  else if (name === "forward") body = forwardCase(c);
  else if (name === "interpolate") body = interpolateCase(c);
  else if (EXTRA[name]) body = extraCase(c, name);
  else if (LLM[name]) body = llmCase(c, name);
  else if (INFLUENCE.includes(name)) body = influenceCase(c, name);
  else body = attributeCase(c, name);
  const where = body.kind === "attribute" || body.kind === "forward" || body.kind === "influence" ? `/${modelName}` : body.kind === "llm" ? `(${body.method})/gpt2` : "";
  const label = `${name}${c.base ? `(${c.base})` : ""}${where}${c.layer !== undefined ? `[${trim(show(c.layer))}]` : ""}`;
  return { i, name, label, model: modelName, modelFile: MODELS[modelName].file, desc: c.desc, nonFinite: c.nonFinite, batch: c.batch, ...body };
}

module.exports = { makeCase, MODELS, ALGORITHMS, EXTRA, LLM, INFLUENCE, FUNCTIONS, show };
