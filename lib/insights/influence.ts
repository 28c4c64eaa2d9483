// Insights' influence panel: for the chosen example, the training examples
// that most support and most oppose its prediction (TracIn on the given
// checkpoints), with their pictures.
import type { FastifyInstance } from "fastify";
import { Model } from "../model";
import { Tensor, tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import { visualizeImageAttr } from "../visualization/image";
import { Dataset as TrainingSet, openDataset, TrainingData } from "../influence/data";
import { KMostInfluential } from "../influence/base";
import { TracInCP, TracInCPFast } from "../influence/tracin";
import type { InsightsInfluenceOptions } from "./types";
import { Dataset, exampleValues } from "./dataset";
import { httpError } from "./http";


/** Training data from a path (.npy with labels beside it, .npz, a folder of class folders) or as given. */
function trainingData(o: InsightsInfluenceOptions): TrainingData {
  if (typeof o.train !== "string") return o.train;
  if (/\.npz$/i.test(o.train)) return { npz: o.train, ...(o.trainLabels ? { labels: o.trainLabels } : {}) } as TrainingData;
  if (/\.npy$/i.test(o.train)) return { inputs: o.train, ...(o.trainLabels ? { labels: o.trainLabels } : {}) };
  return { imageFolder: o.train, image: o.image };
}

/**
 * Adds GET /api/examples/:i/influence?k= (proponents and opponents of example
 * i for its true label, or its predicted class) and GET /api/train/:j.png.
 * Returns what /api/info tells the page, and a function that frees it all.
 */
export function registerInfluence(
  app: FastifyInstance,
  model: Model,
  dataset: Dataset,
  predicted: (number | null)[],
  options: InsightsInfluenceOptions,
): { info: { method: string; k: number; checkpoints: number }; close: () => Promise<void> } {
  const method = options.method ?? "TracInCP";
  if (method !== "TracInCP" && method !== "TracInCPFast") throw new TorchExplainError(`influence.method: expected TracInCP or TracInCPFast, got '${method}'`, "ERR_BAD_OPTION");
  const data = trainingData(options);
  const init = { ...(options.lossFn ? { lossFn: options.lossFn } : {}), ...(options.batchSize ? { batchSize: options.batchSize } : {}) };
  const fc = options.layers?.[0] ?? model.layers()[model.layers().length - 1];
  const tracin = method === "TracInCP"
    ? new TracInCP(model, data, options.checkpoints, { ...init, ...(options.layers ? { layers: options.layers } : {}) })
    : new TracInCPFast(model, fc, data, options.checkpoints, init);
  let set: Promise<TrainingSet> | undefined;
  const train = () => (set ??= openDataset(data, "influence.train"));
  const defaultK = options.k ?? 5;
  const cache = new Map<string, unknown>();

  const exampleTensors = (i: number): Tensor[] =>
    dataset.inputs.map((x) => {
      const v = exampleValues(x, i);
      return x.dtype === "int64" ? tensor(BigInt64Array.from(v, (n) => BigInt(n)), [1, ...x.exampleShape], "int64") : tensor(Float32Array.from(v), [1, ...x.exampleShape], "float32");
    });

  app.get<{ Params: { i: string }; Querystring: { k?: string } }>("/api/examples/:i/influence", async (req) => {
    const i = Number(req.params.i);
    if (!Number.isInteger(i) || i < 0 || i >= dataset.count) throw httpError(400, `example: expected an index from 0 to ${dataset.count - 1}; got '${req.params.i}'`);
    const k = req.query.k === undefined ? defaultK : Number(req.query.k);
    const n = (await train()).count;
    if (!Number.isInteger(k) || k < 1 || k > Math.min(50, n)) throw httpError(400, `k: expected an integer from 1 to ${Math.min(50, n)}; got '${req.query.k}'`);
    const label = dataset.labels[i] ?? predicted[i];
    if (label === null) throw httpError(400, "influence: the example has neither a label nor a predicted class");
    const key = `${i}/${k}`;
    if (cache.has(key)) return cache.get(key);
    const inputs = exampleTensors(i);
    const labels = tensor(BigInt64Array.from([BigInt(label)]), [1], "int64");
    try {
      const test = { inputs: inputs.length === 1 ? inputs[0] : inputs, labels };
      const list = async (r: KMostInfluential) => {
        const idx = Array.from(r.indices.data() as BigInt64Array, Number), scores = Array.from(r.influenceScores.data() as Float32Array);
        r.indices.dispose();
        r.influenceScores.dispose();
        const s = await train();
        return Promise.all(idx.map(async (index, j) => {
          let trainLabel: number | null = null;
          if (s.hasLabels) {
            const c = await s.read(index, index + 1);
            trainLabel = Number((c.labels!.data() as ArrayLike<number | bigint>)[0]);
            c.inputs.forEach((t) => t.dispose());
            c.labels!.dispose();
          }
          return { index, score: scores[j], label: trainLabel, preview: `/api/train/${index}.png` };
        }));
      };
      const body = {
        example: i,
        label,
        labelKind: dataset.labels[i] !== null ? "label" : "predicted",
        method,
        proponents: await list(await tracin.influence(test, { k })),
        opponents: await list(await tracin.influence(test, { k, proponents: false })),
      };
      if (cache.size > 500) cache.clear();
      cache.set(key, body);
      return body;
    } finally {
      inputs.forEach((t) => t.dispose());
      labels.dispose();
    }
  });

  const previews = new Map<number, Buffer>();
  app.get<{ Params: { j: string } }>("/api/train/:j.png", async (req, reply) => {
    const j = Number(req.params.j);
    const s = await train();
    if (!Number.isInteger(j) || j < 0 || j >= s.count) throw httpError(404, `training example ${req.params.j} does not exist`, "ERR_NOT_FOUND");
    let png = previews.get(j);
    if (!png) {
      const c = await s.read(j, j + 1);
      const x = c.inputs[0];
      const shape = x.shape.slice(1);
      c.labels?.dispose();
      if (shape.length !== 3 || (shape[0] !== 1 && shape[0] !== 3)) {
        c.inputs.forEach((t) => t.dispose());
        throw httpError(404, `training example ${j} is not an image`, "ERR_NOT_FOUND");
      }
      const data = Float64Array.from(x.data() as Float32Array);
      c.inputs.forEach((t) => t.dispose());
      let lo = Infinity, hi = -Infinity;
      for (const v of data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
      for (let q = 0; q < data.length; q++) data[q] = hi > lo ? (data[q] - lo) / (hi - lo) : 0;
      const image = { data, shape };
      png = await visualizeImageAttr(image, image, { method: "original_image", scale: Math.max(1, Math.round(64 / Math.max(shape[1], shape[2]))) });
      if (previews.size > 2000) previews.clear();
      previews.set(j, png);
    }
    return reply.type("image/png").header("cache-control", "max-age=3600").send(png);
  });

  return {
    info: { method, k: defaultK, checkpoints: Array.isArray(options.checkpoints) ? options.checkpoints.length : 1 },
    close: async () => {
      await tracin.dispose();
      const s = set ? await set.catch(() => undefined) : undefined;
      await s?.close();
    },
  };
}
