// Insights' option types, apart from the server so that the package's main types
// (lib/index.ts) do not pull in fastify's (whose typings need esModuleInterop).
import type { Model } from "../model";
import type { Tensor } from "../tensor";
import type { Attribution } from "../attribution";
import type { ImageOptions } from "../io/image";
import type { Dataset } from "./dataset";
import type { Checkpoint, LossFn } from "../influence/base";
import type { TrainingData } from "../influence/data";

/** The influence panel: which training examples the chosen example's prediction owes to. */
export interface InsightsInfluenceOptions {
  /** TorchScript checkpoints of the model (paths or { path, learningRate }). */
  checkpoints: Checkpoint[];
  /** The training set: a .npy (labels in trainLabels), a .npz, a folder of class folders, or training data as the influence classes take it. */
  train: string | TrainingData;
  trainLabels?: string;
  /** "TracInCP" (default) or "TracInCPFast" (the final linear layer: `layers[0]`, else the model's last layer). */
  method?: "TracInCP" | "TracInCPFast";
  layers?: string[];
  lossFn?: LossFn;
  batchSize?: number;
  /** Proponents and opponents shown (default 5). */
  k?: number;
  image?: ImageOptions;
}

export interface InsightsOptions {
  /** A TorchScript file, or a loaded Model (left undisposed at close). */
  model: string | Model;
  /** The examples: a file or folder (see loadDataset), or a Dataset. */
  inputs: string | Dataset;
  /** A labels file: class names, true labels, or both (see applyLabels). */
  labels?: string;
  /** How images are read (size, channels, mean, std). */
  image?: ImageOptions;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
  /** Largest nSteps / nSamples / ntSamples a page may ask for (default 10,000). */
  maxSteps?: number;
  /** Explanations running at once (default 4); more are refused with 429. */
  maxRunning?: number;
  /** fastify's logger (default off). */
  logger?: boolean;
  /** Metrics shown next to each explanation, by name (default: libraryMetrics()). */
  metrics?: Record<string, InsightsMetric | undefined>;
  /** Show each example's most influential training examples (TracIn on these checkpoints). */
  influence?: InsightsInfluenceOptions;
}

/** What a metric gets: the explanation's inputs, attributions, the method (a fresh instance) and its options (target, baselines, ...). */
export interface MetricContext {
  model: Model;
  algorithm: Attribution;
  inputs: Tensor | Tensor[];
  attributions: Tensor | Tensor[];
  /** The attributions are a layer's (a layer or neuron method), not shaped like the inputs. */
  layerAttributions: boolean;
  options: Record<string, unknown>;
  signal: AbortSignal;
  /** Reports the metric's progress to the page (done, total). */
  onProgress: (done: number, total: number) => void;
}
/** A metric of one explanation: a number, or a tensor (or number array) whose first value is shown. */
export type InsightsMetric = (context: MetricContext) => Promise<number | number[] | Tensor>;

/** Where and how to listen. */
export interface StartInsightsOptions extends InsightsOptions {
  /** Default 0 here (a free port); the command's default is 7070. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** A running Insights server, as startInsights() resolves it. */
export interface InsightsHandle {
  /** http://host:port */
  url: string;
  dataset: Dataset;
  /** Cancels running explanations, stops listening and frees the model it loaded. */
  close(): Promise<void>;
}
