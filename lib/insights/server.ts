// Insights: a local web app to browse a model's examples and explain them,
// served by fastify from this process (the page and its script ship in web/insights,
// nothing is fetched from elsewhere). An explanation is a job: it runs in the
// background, reports progress (server-sent events, or polling), can be cancelled,
// and keeps its pictures and raw attributions for download.
import * as fs from "fs";
import * as path from "path";
import { fastify, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Model, loadModel } from "../model";
import { Tensor, tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import { interpolate } from "../algorithms/layer";
import { toNpy } from "../io/npy";
import type { ImageOptions } from "../io/image";
import { visualizeImageAttr, VisualizeSign, SIGNS, ImageVisualizationMethod, IMAGE_METHODS } from "../visualization/image";
import { METHODS, resolveMethod, ResolvedMethod } from "../batch/methods";
import { Dataset, DatasetInput, loadDataset, applyLabels, rows, exampleValues } from "./dataset";
import { registerInfluence } from "./influence";
import { httpError } from "./http";
import type { InsightsOptions, InsightsMetric, StartInsightsOptions } from "./types";
export type { InsightsOptions, InsightsMetric, MetricContext, StartInsightsOptions, InsightsHandle, InsightsInfluenceOptions } from "./types";

/** Where the page's files are: web/insights at the package's root (from lib/insights and dist/insights alike). */
export const WEB_ROOT = path.resolve(__dirname, "..", "..", "web", "insights");

const STEPS = new Set(["IntegratedGradients", "LayerConductance", "InternalInfluence", "LayerIntegratedGradients", "NeuronIntegratedGradients", "NeuronConductance"]);
const SAMPLES = new Set(["GradientShap", "ShapleyValueSampling", "Lime", "KernelShap", "LayerGradientShap", "NeuronGradientShap"]);
const BASELINES = new Set([
  "IntegratedGradients", "GradientShap", "FeatureAblation", "Occlusion", "ShapleyValues", "ShapleyValueSampling", "Lime", "KernelShap", "DeepLift",
  "DeepLiftShap", "LayerConductance", "InternalInfluence", "LayerIntegratedGradients", "LayerDeepLift", "LayerDeepLiftShap", "LayerGradientShap",
  "NeuronIntegratedGradients", "NeuronGradientShap", "NeuronFeatureAblation", "NeuronConductance", "NeuronDeepLift", "NeuronDeepLiftShap",
]);
/** The methods offered, in the page's order: the common ones first. */
export const INSIGHTS_METHODS = [
  "IntegratedGradients", "Saliency", "InputXGradient", "GradientShap", "DeepLift", "DeepLiftShap", "GuidedBackprop", "Deconvolution", "LRP",
  "NoiseTunnel:IntegratedGradients", "NoiseTunnel:Saliency", "FeatureAblation", "Occlusion", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap",
  "FeaturePermutation", ...Object.keys(METHODS).filter((m) => m.startsWith("Layer") || m.startsWith("Neuron") || m === "GuidedGradCam" || m === "InternalInfluence"),
];
// Step and sample counts the page may set, in its fields or its options.
const COUNT_OPTIONS = ["nSteps", "nSamples", "ntSamples", "internalBatchSize", "ntSamplesBatchSize", "perturbationsPerEval"];
const FORBIDDEN_OPTIONS = ["target", "signal", "onProgress", "showProgress", "devices", "additionalForwardArgs", "memoryBudget"];

/**
 * The library's infidelity and sensitivityMax (lib/metrics), when lib/index exports them, as
 * Insights metrics; none otherwise. infidelity(model, perturbFunc, inputs, attributions, options)
 * with the library's default perturbation (Gaussian noise), and sensitivityMax(explainer, inputs,
 * options) with the explanation's own method and options; 10 perturbations each.
 */
export function libraryMetrics(lib: Record<string, unknown> = require("../index")): Record<string, InsightsMetric> {
  const out: Record<string, InsightsMetric> = {};
  const infidelity = lib.infidelity as ((...a: unknown[]) => Promise<Tensor>) | undefined;
  const sensitivityMax = lib.sensitivityMax as ((...a: unknown[]) => Promise<Tensor>) | undefined;
  if (typeof infidelity === "function")
    out.infidelity = async (c) => {
      if (c.layerAttributions) throw new Error("n/a: infidelity needs attributions shaped like the inputs; these are a layer's");
      const { target, additionalForwardArgs } = c.options;
      const o: Record<string, unknown> = { nPerturbSamples: 10, signal: c.signal, onProgress: c.onProgress };
      if (target !== undefined) o.target = target;
      if (additionalForwardArgs !== undefined) o.additionalForwardArgs = additionalForwardArgs;
      return infidelity(c.model, undefined, c.inputs, c.attributions, o);
    };
  if (typeof sensitivityMax === "function")
    out.sensitivity = async (c) => {
      // Token ids have no small perturbations: a sensitivity of them means nothing.
      const xs = Array.isArray(c.inputs) ? c.inputs : [c.inputs];
      if (xs.some((x) => x.dtype === "int64" || x.dtype === "int32")) throw new Error("n/a: sensitivity perturbs inputs by small amounts, which token ids do not have");
      return sensitivityMax(c.algorithm, c.inputs, { ...c.options, nPerturbSamples: 10, signal: c.signal, onProgress: c.onProgress });
    };
  return out;
}

/**
 * Where GradCAM and the other layer methods start on an image model: the last
 * top-level convolutional block (resnet's layer4, a VGG's features, a small
 * net's conv2), whose maps are the most semantic that are still spatial.
 */
export function lastConvBlock(layers: string[]): string | null {
  const top = layers.filter((l) => !l.includes("."));
  const conv = /conv|features|^layer\d|block|stage/i;
  return [...top].reverse().find((l) => conv.test(l)) ?? [...layers].reverse().find((l) => conv.test(l)) ?? layers[0] ?? null;
}

function scalar(v: unknown): number {
  if (v instanceof Tensor) {
    const n = Number((v.data() as ArrayLike<number | bigint>)[0]);
    v.dispose();
    return n;
  }
  if (Array.isArray(v)) return Number(v[0]);
  if (v && typeof v === "object" && "attributions" in v) return scalar((v as { attributions: unknown }).attributions);
  return Number(v);
}

interface Rendered {
  /** Which model input it belongs to (or -1: a layer's attribution not shown over an input). */
  input: number;
  title: string;
  kind: "image" | "text" | "tabular";
  picture?: string;
  tokens?: { text: string; value: number }[];
  bars?: { name: string; value: number }[];
  npy: string;
  shape: number[];
  sum: number;
}

interface Job {
  id: string;
  status: "running" | "done" | "error" | "cancelled";
  method: string;
  example: number;
  started: number;
  progress: { done: number; total: number };
  /** What runs now: "attribution", then each metric by name. */
  phase: string;
  controller: AbortController;
  listeners: Set<() => void>;
  error?: { message: string; code: string };
  result?: { target: number | null; delta?: number; timeMs: number; outputs: Rendered[]; metrics: Record<string, number | string> };
  files: Map<string, Buffer>;
}


const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Softmax top class per row of an [N, K] output (as is when rows already are probabilities). */
function topClasses(values: ArrayLike<number>, n: number, k: number): { cls: number[]; prob: number[] } {
  const cls: number[] = [], prob: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: k }, (_, j) => Number(values[i * k + j]));
    const max = Math.max(...row);
    const sum = row.reduce((a, b) => a + b, 0);
    const p = row.every((x) => x >= 0 && x <= 1) && Math.abs(sum - 1) < 1e-3 ? row : row.map((x) => Math.exp(x - max));
    const s = p.reduce((a, b) => a + b, 0);
    const c = row.indexOf(max);
    cls.push(c);
    prob.push(p[c] / s);
  }
  return { cls, prob };
}

/** The page's scalar fields and JSON options, checked; what attribute() gets. */
interface ExplainBody {
  example?: unknown;
  method?: unknown;
  layer?: unknown;
  target?: unknown;
  nSteps?: unknown;
  nSamples?: unknown;
  baselines?: unknown;
  options?: unknown;
  init?: unknown;
  sign?: unknown;
  visualization?: unknown;
  metrics?: unknown;
}

function jsonObject(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined || value === null || value === "") return {};
  let v = value;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch (e) {
      throw httpError(400, `${name}: not valid JSON (${(e as Error).message})`);
    }
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw httpError(400, `${name}: expected a JSON object, e.g. {"internalBatchSize": 16}`);
  return v as Record<string, unknown>;
}

export interface InsightsServer {
  app: FastifyInstance;
  dataset: Dataset;
  model: Model;
  /** Per example: the top class and its probability (null when the output is not [N, classes]). */
  predictions: { cls: (number | null)[]; prob: (number | null)[] };
}

/** The page's files (web/insights, read once): `index` at /, every file at /static/NAME. */
export function serveWebRoot(app: FastifyInstance, index: string): void {
  const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml" };
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const f of fs.readdirSync(WEB_ROOT)) files.set(f, { body: fs.readFileSync(path.join(WEB_ROOT, f)), type: TYPES[path.extname(f)] ?? "application/octet-stream" });
  const sendFile = (name: string, reply: FastifyReply) => {
    const f = files.get(name);
    if (!f) throw httpError(404, `no such file: ${name}`, "ERR_NOT_FOUND");
    return reply.type(f.type).header("cache-control", "no-cache").send(f.body);
  };
  app.get("/", (_req, reply) => sendFile(index, reply));
  app.get<{ Params: { file: string } }>("/static/:file", (req, reply) => sendFile(req.params.file, reply));
}

/** Errors as { error, code } with a status: 400 for bad input, 499 for a cancelled request, 404 for unknown routes. */
export function errorHandler(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    let status = err.statusCode ?? 500;
    let message = err.message;
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") message = `request body too large: at most ${bodyLimit} bytes`;
    if (err instanceof TorchExplainError) status = err.code === "ERR_ABORTED" ? 499 : err.code.startsWith("ERR_BAD") ? 400 : 500;
    reply.status(status).send({ error: message, code: err.code ?? "ERR_SERVER" });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: `no such route: ${req.method} ${req.url}`, code: "ERR_NOT_FOUND" }));
}

/** Builds the app (not listening): load the model and examples, predict every example once. */
export async function createInsightsServer(options: InsightsOptions): Promise<InsightsServer> {
  const maxSteps = options.maxSteps ?? 10000;
  const maxRunning = options.maxRunning ?? 4;
  const bodyLimit = options.bodyLimit ?? 64 * 1024;
  const ownModel = typeof options.model === "string";
  const model = typeof options.model === "string" ? await loadModel(options.model) : options.model;
  const modelName = typeof options.model === "string" ? path.basename(options.model) : "model";
  const dataset = typeof options.inputs === "string" ? await loadDataset(options.inputs, options.image) : options.inputs;
  if (options.labels) await applyLabels(dataset, options.labels);
  const layers = model.layers();

  // Predictions, in batches of 64.
  const cls: (number | null)[] = new Array(dataset.count).fill(null);
  const prob: (number | null)[] = new Array(dataset.count).fill(null);
  let outputShape: number[] = [];
  for (let b = 0; b < dataset.count; b += 64) {
    const e = Math.min(dataset.count, b + 64);
    const xs = rows(dataset, b, e);
    try {
      const out = await model.forward(xs.length === 1 ? xs[0] : xs, dataset.additionalForwardArgs);
      outputShape = out.shape.slice(1);
      if (out.shape.length === 2) {
        const t = topClasses(out.data() as ArrayLike<number>, e - b, out.shape[1]);
        t.cls.forEach((c, i) => ((cls[b + i] = c), (prob[b + i] = t.prob[i])));
      }
      out.dispose();
    } finally {
      xs.forEach((x) => x.dispose());
    }
  }
  const classCount = outputShape.length === 1 ? outputShape[0] : dataset.classes?.length ?? 0;
  const className = (c: number | null) => (c === null ? null : dataset.classes?.[c] ?? String(c));

  const app = fastify({ logger: options.logger ?? false, bodyLimit });
  const influence = options.influence ? registerInfluence(app, model, dataset, cls, { image: options.image, ...options.influence }) : null;
  const jobs = new Map<string, Job>();
  let nextId = 1;

  serveWebRoot(app, "index.html");
  errorHandler(app, bodyLimit);

  // ---- what the page needs to know -----------------------------------------------------------
  const inputsInfo = dataset.inputs.map((x) => ({ name: x.name, kind: x.kind, shape: x.exampleShape, dtype: x.dtype }));
  const hasText = dataset.inputs.some((x) => x.kind === "text");
  const metrics = options.metrics ?? libraryMetrics();
  const metricFns = Object.fromEntries(Object.entries(metrics).map(([k, f]) => [k, typeof f === "function"]));
  app.get("/api/info", async () => ({
    model: modelName,
    signature: model.signature,
    layers,
    inputs: inputsInfo,
    count: dataset.count,
    classes: Array.from({ length: classCount }, (_, c) => className(c)),
    hasLabels: dataset.labels.some((l) => l !== null),
    methods: INSIGHTS_METHODS.map((name) => {
      const base = name.replace(/^NoiseTunnel:/, "");
      const info = METHODS[base];
      return { name, layer: !!info.layer, target: info.target, steps: STEPS.has(base), samples: SAMPLES.has(base) || name.startsWith("NoiseTunnel:"), baselines: BASELINES.has(base), delta: !!info.delta && !name.startsWith("NoiseTunnel:") };
    }),
    // Token inputs go through an embedding: a layer method at that layer explains them.
    defaultMethod: hasText ? "LayerIntegratedGradients" : "IntegratedGradients",
    defaultLayer: hasText ? layers.find((l) => /emb/i.test(l)) ?? layers[0] ?? null : lastConvBlock(layers),
    signs: SIGNS,
    visualizations: IMAGE_METHODS,
    metrics: metricFns,
    limits: { maxSteps, bodyLimit },
    influence: influence?.info ?? null,
  }));

  const exampleRecord = (i: number) => ({
    index: i,
    name: dataset.names[i],
    label: dataset.labels[i],
    labelName: className(dataset.labels[i]),
    predicted: cls[i],
    predictedName: className(cls[i]),
    probability: prob[i],
    correct: dataset.labels[i] === null || cls[i] === null ? null : dataset.labels[i] === cls[i],
    inputs: dataset.inputs.map((x, k) => {
      if (x.kind === "image") return { kind: x.kind, name: x.name, preview: `/api/examples/${i}/inputs/${k}.png` };
      if (x.kind === "text") return { kind: x.kind, name: x.name, text: wordsOf(x, i).join(" ") };
      const v = exampleValues(x, i);
      return { kind: x.kind, name: x.name, text: Array.from(v.subarray(0, 6), (n) => +n.toFixed(3)).join(", ") + (v.length > 6 ? `, … (${v.length})` : "") };
    }),
  });

  app.get<{ Querystring: { class?: string; correct?: string; offset?: string; limit?: string } }>("/api/examples", async (req) => {
    const q = req.query;
    let klass: number | undefined;
    if (q.class !== undefined && q.class !== "") {
      klass = Number(q.class);
      if (!Number.isInteger(klass) || klass < 0) throw httpError(400, `class: expected a class index; got '${q.class}'`);
    }
    if (q.correct !== undefined && q.correct !== "" && !["true", "false"].includes(q.correct)) throw httpError(400, `correct: expected true or false; got '${q.correct}'`);
    const offset = Math.max(0, Number(q.offset ?? 0) | 0);
    const limit = Math.min(500, Math.max(1, Number(q.limit ?? 200) | 0));
    const hasLabels = dataset.labels.some((l) => l !== null);
    const chosen: number[] = [];
    for (let i = 0; i < dataset.count; i++) {
      // With true labels the class filter is on them (as the reference's tool), else on the prediction.
      if (klass !== undefined && (hasLabels ? dataset.labels[i] : cls[i]) !== klass) continue;
      if (q.correct === "true" || q.correct === "false") {
        const ok = dataset.labels[i] !== null && cls[i] !== null && dataset.labels[i] === cls[i];
        if (ok !== (q.correct === "true") || dataset.labels[i] === null) continue;
      }
      chosen.push(i);
    }
    return { total: chosen.length, offset, examples: chosen.slice(offset, offset + limit).map(exampleRecord) };
  });

  function exampleIndex(v: unknown): number {
    const i = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i >= dataset.count) throw httpError(400, `example: expected an index from 0 to ${dataset.count - 1}; got ${JSON.stringify(v)}`);
    return i;
  }
  function wordsOf(x: DatasetInput, i: number): string[] {
    return x.words?.[i] ?? Array.from(exampleValues(x, i), String);
  }
  const previewScale = (x: DatasetInput) => Math.max(1, Math.round(160 / Math.max(x.exampleShape[1], x.exampleShape[2])));
  // The image as shown: normalised inputs (mean/std, values below 0) are stretched to [0, 1] first.
  const imageOf = (x: DatasetInput, i: number) => {
    const data = exampleValues(x, i);
    let lo = Infinity, hi = -Infinity;
    for (const v of data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    if (lo < 0) for (let j = 0; j < data.length; j++) data[j] = hi > lo ? (data[j] - lo) / (hi - lo) : 0;
    return { data, shape: x.exampleShape };
  };
  const previews = new Map<string, Buffer>();
  app.get<{ Params: { i: string; k: string } }>("/api/examples/:i/inputs/:k.png", async (req, reply) => {
    const i = exampleIndex(req.params.i);
    const x = dataset.inputs[Number(req.params.k)];
    if (!x || x.kind !== "image") throw httpError(404, `input ${req.params.k} is not an image input`, "ERR_NOT_FOUND");
    const key = `${i}/${req.params.k}`;
    let png = previews.get(key);
    if (!png) {
      png = await visualizeImageAttr(imageOf(x, i), imageOf(x, i), { method: "original_image", scale: previewScale(x) });
      if (previews.size > 2000) previews.clear();
      previews.set(key, png);
    }
    return reply.type("image/png").header("cache-control", "max-age=3600").send(png);
  });

  // ---- explanations -----------------------------------------------------------------------------
  function countOption(v: unknown, name: string): number | undefined {
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1) throw httpError(400, `${name}: expected a positive integer; got ${JSON.stringify(v)}`);
    if (n > maxSteps) throw httpError(400, `${name}: at most ${maxSteps} in Insights (got ${n}); start it with a higher limit, or use the library or 'torchexplain explain' for more`);
    return n;
  }

  function baselinesFor(choice: unknown, method: ResolvedMethod, distribution: boolean): { value: unknown; tensors: Tensor[] } {
    const tensors: Tensor[] = [];
    const n = dataset.inputs.length;
    const rowsOf = (x: DatasetInput, idx: number[]) => {
      const per = prod(x.exampleShape);
      const out = new Float64Array(idx.length * per);
      idx.forEach((i, r) => out.set(exampleValues(x, i), r * per));
      return out;
    };
    const make = (x: DatasetInput, values: Float64Array, batch: number) => {
      const data = x.dtype === "int64" ? BigInt64Array.from(values, (v) => BigInt(Math.round(v))) : x.dtype === "float64" ? values : Float32Array.from(values);
      const t = tensor(data, [batch, ...x.exampleShape], x.dtype === "int64" || x.dtype === "float64" ? x.dtype : x.dtype === "int32" ? "int32" : "float32");
      tensors.push(t);
      return t;
    };
    if (choice === undefined || choice === null || choice === "" || choice === "zero" || typeof choice === "number" || (typeof choice === "string" && /^-?\d+(\.\d+)?$/.test(choice))) {
      const v = choice === undefined || choice === null || choice === "" || choice === "zero" ? 0 : Number(choice);
      if (!Number.isFinite(v)) throw httpError(400, `baselines: expected a finite number; got ${JSON.stringify(choice)}`);
      if (!distribution) return { value: n === 1 ? v : new Array(n).fill(v), tensors };
      // Reference distributions are tensors: one row of that value.
      const value = dataset.inputs.map((x) => make(x, new Float64Array(prod(x.exampleShape)).fill(v), 1));
      return { value: n === 1 ? value[0] : value, tensors };
    }
    if (choice === "mean" || choice === "sample") {
      const count = Math.min(dataset.count, choice === "mean" ? dataset.count : 16);
      const idx = Array.from({ length: count }, (_, i) => i);
      const value = dataset.inputs.map((x) => {
        const all = rowsOf(x, idx);
        if (choice === "sample") return make(x, all, count);
        const per = prod(x.exampleShape);
        const mean = new Float64Array(per);
        for (let r = 0; r < count; r++) for (let j = 0; j < per; j++) mean[j] += all[r * per + j] / count;
        return make(x, mean, 1);
      });
      return { value: n === 1 ? value[0] : value, tensors };
    }
    throw httpError(400, `baselines: expected zero, mean, sample or a number; got ${JSON.stringify(choice)} (${method.name})`);
  }

  function notify(job: Job) {
    for (const l of job.listeners) l();
  }
  const snapshot = (job: Job) => ({
    id: job.id,
    status: job.status,
    method: job.method,
    example: job.example,
    progress: job.progress,
    phase: job.phase,
    elapsedMs: Date.now() - job.started,
    ...(job.error ? { error: job.error } : {}),
    ...(job.result ? { result: job.result } : {}),
  });

  app.post<{ Body: ExplainBody }>("/api/explain", async (req, reply) => {
    const body = req.body;
    if (!body || typeof body !== "object" || Array.isArray(body)) throw httpError(400, "body: expected a JSON object { example, method, ... }");
    const i = exampleIndex(body.example);
    if (typeof body.method !== "string") throw httpError(400, `method: expected a method name (${INSIGHTS_METHODS.slice(0, 4).join(", ")}, ...)`);
    const layer = typeof body.layer === "string" && body.layer !== "" ? body.layer : undefined;
    const init = jsonObject(body.init, "init");
    let method: ResolvedMethod;
    try {
      method = resolveMethod(body.method, layer, init);
    } catch (e) {
      throw httpError(400, (e as Error).message.replace("(--layer NAME; 'torchexplain info MODEL' lists them)", "(pick one)"));
    }
    if (layer !== undefined && !layers.includes(layer)) throw httpError(400, `layer: the model has no submodule '${layer}' (layers: ${layers.join(", ")})`);
    const user = jsonObject(body.options, "options");
    for (const k of FORBIDDEN_OPTIONS) if (k in user) throw httpError(400, `options: ${k} cannot be set here${k === "target" ? " (use the target field)" : ""}`);
    for (const k of COUNT_OPTIONS) if (k in user && k !== "perturbationsPerEval") countOption(user[k], k);
    const base = body.method.replace(/^NoiseTunnel:/, "");
    const opts: Record<string, unknown> = { ...user };
    const nSteps = countOption(body.nSteps, "nSteps");
    const nSamples = countOption(body.nSamples, "nSamples");
    if (nSteps !== undefined && STEPS.has(base)) opts.nSteps = nSteps;
    if (nSamples !== undefined && (SAMPLES.has(base) || body.method.startsWith("NoiseTunnel:"))) opts.nSamples = nSamples;
    let target: number | null = null;
    if (method.info.target) {
      const t = body.target ?? "predicted";
      if (t === "predicted") target = cls[i];
      else if (t === "label") target = dataset.labels[i];
      else target = typeof t === "string" && /^\d+$/.test(t) ? Number(t) : (t as number);
      if (t === "label" && target === null) throw httpError(400, "target: this example has no true label; pick predicted or a class");
      if (typeof target !== "number" || !Number.isInteger(target) || target < 0 || (classCount > 0 && target >= classCount))
        throw httpError(400, `target: expected predicted, label or a class index from 0 to ${Math.max(0, classCount - 1)}; got ${JSON.stringify(t)}`);
      opts.target = target;
    }
    const sign = (body.sign ?? "absolute_value") as VisualizeSign;
    if (!SIGNS.includes(sign)) throw httpError(400, `sign: expected one of ${SIGNS.join(", ")}; got ${JSON.stringify(body.sign)}`);
    const vis = (body.visualization ?? "blended_heat_map") as ImageVisualizationMethod;
    if (!IMAGE_METHODS.includes(vis)) throw httpError(400, `visualization: expected one of ${IMAGE_METHODS.join(", ")}; got ${JSON.stringify(body.visualization)}`);
    if (body.metrics !== undefined && typeof body.metrics !== "boolean") throw httpError(400, `metrics: expected true or false; got ${JSON.stringify(body.metrics)}`);
    const running = [...jobs.values()].filter((j) => j.status === "running").length;
    if (running >= maxRunning) throw httpError(429, `${running} explanations are running; wait for one or cancel it`, "ERR_BUSY");

    const distribution = !!method.info.distribution;
    const bl = BASELINES.has(base) ? baselinesFor(body.baselines, method, distribution) : { value: undefined, tensors: [] };
    if (bl.value !== undefined) opts.baselines = bl.value;
    if (dataset.additionalForwardArgs) opts.additionalForwardArgs = dataset.additionalForwardArgs;
    if (base === "Occlusion" && !("slidingWindowShapes" in opts)) {
      // A default window: a quarter of each spatial side, every channel.
      const w = dataset.inputs.map((x) => x.exampleShape.map((d, j) => (x.kind === "image" && j === 0 ? d : Math.max(1, Math.floor(d / 4)))));
      opts.slidingWindowShapes = w.length === 1 ? w[0] : w;
    }
    if (method.info.delta) opts.returnConvergenceDelta = true;

    const id = String(nextId++);
    const job: Job = { id, status: "running", method: body.method, example: i, started: Date.now(), progress: { done: 0, total: 0 }, phase: "attribution", controller: new AbortController(), listeners: new Set(), files: new Map() };
    jobs.set(id, job);
    // Keep the last 100 jobs (their pictures and attributions).
    if (jobs.size > 100) for (const [k, j] of jobs) if (j.status !== "running" && jobs.size > 100) jobs.delete(k);
    opts.signal = job.controller.signal;
    opts.onProgress = (done: number, total: number) => {
      job.progress = { done, total };
      notify(job);
    };
    void run(job, method, i, opts, sign, vis, target, layer, body.metrics !== false).finally(() => bl.tensors.forEach((t) => t.dispose()));
    return reply.status(202).send(snapshot(job));
  });

  async function run(job: Job, method: ResolvedMethod, i: number, opts: Record<string, unknown>, sign: VisualizeSign, vis: ImageVisualizationMethod, target: number | null, layer: string | undefined, withMetrics: boolean) {
    const xs = rows(dataset, i, i + 1);
    const toDispose: Tensor[] = [...xs];
    try {
      const algorithm = method.make(model) as unknown as { attribute(x: Tensor | Tensor[], o: object): Promise<unknown> };
      const t0 = Date.now();
      const r = (await algorithm.attribute(xs.length === 1 ? xs[0] : xs, opts)) as Tensor | Tensor[] | { attributions: Tensor | Tensor[]; delta: Tensor };
      const timeMs = Date.now() - t0;
      const attrs = (r as { attributions?: Tensor | Tensor[] }).attributions ?? (r as Tensor | Tensor[]);
      const list = Array.isArray(attrs) ? attrs : [attrs];
      toDispose.push(...list);
      const deltaT = (r as { delta?: Tensor }).delta;
      if (deltaT) toDispose.push(deltaT);
      const outputs: Rendered[] = [];
      for (const [k, a] of list.entries()) outputs.push(await render(job, k, a, list.length, i, sign, vis, layer));
      const metrics = withMetrics ? await computeMetrics(job, method, xs, list, opts) : {};
      const delta = deltaT ? Number((deltaT.data() as ArrayLike<number>)[0]) : undefined;
      job.result = { target, ...(delta !== undefined ? { delta } : {}), timeMs, outputs, metrics };
      job.status = "done";
    } catch (e) {
      const err = e as TorchExplainError;
      job.status = err.code === "ERR_ABORTED" ? "cancelled" : "error";
      job.error = { message: err.message, code: err.code ?? "ERR_NATIVE" };
    } finally {
      for (const t of toDispose) if (!t.disposed) t.dispose();
      notify(job);
    }
  }

  /** One attribution tensor drawn for the page: over its input when it has the input's shape, else as the layer's map. */
  async function render(job: Job, k: number, a: Tensor, n: number, i: number, sign: VisualizeSign, vis: ImageVisualizationMethod, layer?: string): Promise<Rendered> {
    const shape = a.shape.slice(1);
    const values = Float64Array.from(a.data() as ArrayLike<number>, Number);
    const npy = `attributions-${k}.npy`;
    job.files.set(npy, toNpy({ data: Float32Array.from(values), shape: a.shape }));
    const sum = values.reduce((s, v) => s + v, 0);
    const x = n === dataset.inputs.length ? dataset.inputs[k] : dataset.inputs.length === 1 ? dataset.inputs[0] : undefined;
    const sameShape = x !== undefined && shape.join() === x.exampleShape.join();
    const title = x ? `${x.name}${sameShape ? "" : ` (at layer ${layer ?? "?"}, [${shape}])`}` : `output ${k}`;
    const base: Omit<Rendered, "kind"> = { input: x ? dataset.inputs.indexOf(x) : -1, title, npy: `/api/jobs/${job.id}/${npy}`, shape: a.shape, sum };
    const picture = async (png: Buffer) => {
      const name = `picture-${k}.png`;
      job.files.set(name, png);
      return `/api/jobs/${job.id}/${name}`;
    };
    // Images, and image-like layer maps ([C, h, w]) resized to the image as the reference's LayerAttribution.interpolate.
    if (x && x.kind === "image" && shape.length === 3) {
      const scale = previewScale(x);
      const sized = sameShape ? a : interpolate(a, x.exampleShape.slice(1), "bilinear");
      try {
        const attr = sized === a ? { data: values, shape } : { data: Float64Array.from(sized.data() as ArrayLike<number>, Number), shape: sized.shape.slice(1) };
        const signUsed = sign; // as chosen on the page, layer maps too
        const method = (vis === "masked_image" || vis === "alpha_scaling") && signUsed === "all" ? "blended_heat_map" : vis;
        return { ...base, kind: "image", picture: await picture(await visualizeImageAttr(attr, imageOf(x, i), { method, sign: signUsed, scale })) };
      } finally {
        if (sized !== a) sized.dispose();
      }
    }
    // Tokens: [T] or [T, E] (an embedding layer's attribution), summed over E, scaled to [-1, 1].
    if (x && x.kind === "text" && (shape.length === 1 || shape.length === 2) && shape[0] === prod(x.exampleShape)) {
      const per = shape.length === 2 ? shape[1] : 1;
      const words = wordsOf(x, i);
      const raw = Array.from({ length: shape[0] }, (_, t) => values.subarray(t * per, (t + 1) * per).reduce((s, v) => s + v, 0));
      const m = Math.max(1e-12, ...raw.map(Math.abs));
      return { ...base, kind: "text", tokens: raw.map((v, t) => ({ text: words[t] ?? String(t), value: v / m })) };
    }
    // Other maps with two or three dimensions: a heat map of their own.
    if (shape.length === 3 || (shape.length === 2 && shape[0] > 1 && shape[1] > 1)) {
      const scale = Math.max(1, Math.round(160 / Math.max(shape[shape.length - 1], shape[shape.length - 2])));
      return { ...base, kind: "image", picture: await picture(await visualizeImageAttr({ data: values, shape }, null, { method: "heat_map", sign, scale })) };
    }
    const names = x?.features && sameShape ? x.features : undefined;
    const bars = Array.from(values.subarray(0, 512), (v, j) => ({ name: names?.[j] ?? `f${j}`, value: v }));
    return { ...base, kind: "tabular", bars };
  }

  /** The metrics next to each explanation (errors are shown in their place, "n/a: why" as it is; the explanation stays). */
  async function computeMetrics(job: Job, method: ResolvedMethod, xs: Tensor[], attrs: Tensor[], opts: Record<string, unknown>): Promise<Record<string, number | string>> {
    const out: Record<string, number | string> = {};
    const { signal, onProgress: _p, returnConvergenceDelta: _d, ...explainOptions } = opts;
    const layerShaped = attrs.some((a, k) => a.shape.join() !== xs[k]?.shape.join());
    for (const [name, fn] of Object.entries(metrics)) {
      if (!fn) continue;
      job.phase = name;
      job.progress = { done: 0, total: 0 };
      notify(job);
      const onProgress = (done: number, total: number) => {
        job.progress = { done, total };
        notify(job);
      };
      try {
        const v = await fn({ model, algorithm: method.make(model), inputs: xs.length === 1 ? xs[0] : xs, attributions: attrs.length === 1 ? attrs[0] : attrs, layerAttributions: layerShaped, options: explainOptions, signal: signal as AbortSignal, onProgress });
        out[name] = scalar(v);
      } catch (e) {
        // Cancelled while measuring: the whole explanation is cancelled.
        if ((e as TorchExplainError).code === "ERR_ABORTED") throw e;
        const message = (e as Error).message.split("\n")[0];
        out[name] = message.startsWith("n/a") ? message : `unavailable: ${message}`;
      }
    }
    return out;
  }

  function getJob(id: string): Job {
    const job = jobs.get(id);
    if (!job) throw httpError(404, `no explanation ${id} (finished ones are kept for the last 100)`, "ERR_NOT_FOUND");
    return job;
  }
  app.get<{ Params: { id: string } }>("/api/jobs/:id", async (req) => snapshot(getJob(req.params.id)));
  app.post<{ Params: { id: string } }>("/api/jobs/:id/cancel", async (req) => {
    const job = getJob(req.params.id);
    if (job.status === "running") job.controller.abort(new Error("cancelled from the page"));
    return { id: job.id, status: job.status };
  });
  // Server-sent events: "progress" while it runs, then one "end" with the job.
  app.get<{ Params: { id: string } }>("/api/jobs/:id/events", (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const job = getJob(req.params.id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    let last = 0;
    const send = () => {
      if (job.status !== "running") {
        res.write(`event: end\ndata: ${JSON.stringify(snapshot(job))}\n\n`);
        job.listeners.delete(send);
        res.end();
        return;
      }
      const now = Date.now();
      if (now - last < 50) return;
      last = now;
      res.write(`event: progress\ndata: ${JSON.stringify({ progress: job.progress, phase: job.phase, elapsedMs: now - job.started })}\n\n`);
    };
    job.listeners.add(send);
    res.on("close", () => {
      job.listeners.delete(send);
      // The page went away (closed, reloaded) mid-explanation and nobody else watches: stop the work.
      if (!res.writableEnded && job.status === "running" && job.listeners.size === 0) job.controller.abort(new Error("the page closed"));
    });
    send();
  });
  app.get<{ Params: { id: string; file: string } }>("/api/jobs/:id/:file", async (req, reply) => {
    const job = getJob(req.params.id);
    const body = job.files.get(req.params.file);
    if (!body) throw httpError(404, `explanation ${job.id} has no file ${req.params.file}`, "ERR_NOT_FOUND");
    const png = req.params.file.endsWith(".png");
    const download = `${job.method.replace(/[^\w-]+/g, "_")}-example${job.example}-${req.params.file}`;
    return reply
      .type(png ? "image/png" : "application/octet-stream")
      .header("content-disposition", `${png ? "inline" : "attachment"}; filename="${download}"`)
      .send(body);
  });

  app.addHook("onClose", async () => {
    for (const j of jobs.values()) if (j.status === "running") j.controller.abort(new Error("the server is closing"));
    // Let cancelled requests finish before the model goes.
    const deadline = Date.now() + 5000;
    while ([...jobs.values()].some((j) => j.status === "running") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await influence?.close();
    if (ownModel) model.dispose();
  });

  return { app, dataset, model, predictions: { cls, prob } };
}

/** Serves Insights on host:port (port 0: a free one); resolves to its address. */
export async function startInsights(options: StartInsightsOptions): Promise<InsightsServer & { url: string }> {
  const server = await createInsightsServer(options);
  await server.app.listen({ port: options.port ?? 0, host: options.host ?? "127.0.0.1" });
  const addr = server.app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : options.port;
  return { ...server, url: `http://${options.host ?? "127.0.0.1"}:${port}` };
}
