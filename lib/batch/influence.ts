// The command line's influence job: checkpoints, a training set and test
// examples in; per test example its proponents and opponents (JSON), and with
// --png a picture grid of them, out.
import * as fs from "fs";
import * as path from "path";
import { TorchExplainError } from "../errors";
import { loadModel, Model } from "../model";
import { Tensor, tensor } from "../tensor";
import { ImageOptions } from "../io/image";
import { writeAtomic, saveNpy } from "../io/npy";
import { openDataset, TrainingData, Dataset } from "../influence/data";
import { KMostInfluential } from "../influence/base";
import { TracInCP, TracInCPFast, TracInCPFastRandProj } from "../influence/tracin";
import { ArnoldiInfluenceFunction, NaiveInfluenceFunction } from "../influence/influence_function";
import { visualizeInfluence } from "../visualization/influence";
import { openInputs } from "./job";

export const INFLUENCE_METHODS = ["TracInCP", "TracInCPFast", "TracInCPFastRandProj", "NaiveInfluenceFunction", "ArnoldiInfluenceFunction"] as const;
export type InfluenceMethodName = (typeof INFLUENCE_METHODS)[number];

export interface InfluenceJobSpec {
  method: InfluenceMethodName;
  /** Checkpoint files, oldest first (the influence functions take the last). */
  checkpoints: string[];
  learningRates?: number[];
  /** The architecture (default: the last checkpoint). */
  model?: string;
  /** Training inputs: a .npy (with `trainLabels`), a .npz (inputs/x, labels/y) or a folder with a subfolder per class. */
  train: string;
  trainLabels?: string;
  /** Test inputs: a .npy, .npz, a folder of images, or a folder with a subfolder per class. */
  test: string;
  /** Test labels (.npy); by default a .npz's or class folders', else the model's predicted class. */
  testLabels?: string;
  /** Layers measured (TracInCP, influence functions), or the final linear layer (TracInCPFast, RandProj). */
  layer?: string[];
  k: number;
  init?: Record<string, unknown>;
  batchSize?: number;
  image?: ImageOptions;
  /** Also each training example's self-influence (self_influence.npy). */
  self?: boolean;
  png?: boolean;
  out: string;
}

function bad(message: string): never {
  throw new TorchExplainError(message, "ERR_BAD_OPTION");
}

/** A path as training data: .npy (+ labels), .npz, or a folder of class folders. */
function asData(file: string, labels: string | undefined, image: ImageOptions | undefined, what: string): TrainingData {
  const ext = path.extname(file).toLowerCase();
  if (fs.statSync(file).isDirectory()) return { imageFolder: file, image };
  if (ext === ".npy") return { inputs: file, ...(labels ? { labels } : {}) };
  if (ext === ".npz") return { npz: file, ...(labels ? { labels } : {}) } as TrainingData;
  return bad(`${what}: expected a .npy or .npz file or a folder of images, got ${file}`);
}

const hasClassFolders = (dir: string) => fs.readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory());

/** The test set in memory; labels from the files, or the model's predicted classes. */
async function testSet(spec: InfluenceJobSpec, model: Model): Promise<{ inputs: Tensor; labels: Tensor; predicted: boolean }> {
  let inputs: Tensor, labels: Tensor | undefined;
  if (fs.statSync(spec.test).isDirectory() && !hasClassFolders(spec.test)) {
    const src = await openInputs(spec.test, spec.image);
    inputs = (await src.rows(0, src.count)).tensor;
  } else {
    const set = await openDataset(asData(spec.test, spec.testLabels, spec.image, "test"), "test");
    try {
      const all = await set.readAll(Infinity, "the test set");
      inputs = all.inputs[0];
      labels = all.labels;
    } finally {
      await set.close();
    }
  }
  if (labels) return { inputs, labels, predicted: false };
  const out = await model.forward(inputs);
  const [n, c] = out.shape;
  const v = out.data() as Float32Array;
  const ids = BigInt64Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < c; j++) if (v[i * c + j] > v[i * c + best]) best = j;
    return BigInt(best);
  });
  out.dispose();
  return { inputs, labels: tensor(ids, [n], "int64"), predicted: true };
}

export async function runInfluenceJob(spec: InfluenceJobSpec, stderr: NodeJS.WritableStream = process.stderr): Promise<{ file: string; pictures?: string }> {
  if (!INFLUENCE_METHODS.includes(spec.method)) bad(`method: expected one of ${INFLUENCE_METHODS.join(", ")}, got '${spec.method}'`);
  if (spec.checkpoints.length === 0) bad("checkpoints: expected at least one checkpoint file");
  const model = await loadModel(spec.model ?? spec.checkpoints[spec.checkpoints.length - 1]);
  const ckpts = spec.checkpoints.map((p, i) => ({ path: p, learningRate: spec.learningRates?.[i] ?? 1 }));
  const train = asData(spec.train, spec.trainLabels, spec.image, "train");
  const init = { ...(spec.init ?? {}), ...(spec.batchSize ? { batchSize: spec.batchSize } : {}) };
  const fc = () => spec.layer?.[0] ?? bad(`layer: ${spec.method} needs the final linear layer (--layer NAME)`);
  const layers = spec.layer ? { layers: spec.layer } : {};
  const method =
    spec.method === "TracInCP" ? new TracInCP(model, train, ckpts, { ...init, ...layers })
    : spec.method === "TracInCPFast" ? new TracInCPFast(model, fc(), train, ckpts, init)
    : spec.method === "TracInCPFastRandProj" ? new TracInCPFastRandProj(model, fc(), train, ckpts, init)
    : spec.method === "NaiveInfluenceFunction" ? new NaiveInfluenceFunction(model, train, spec.checkpoints[spec.checkpoints.length - 1], { ...init, ...layers })
    : new ArnoldiInfluenceFunction(model, train, spec.checkpoints[spec.checkpoints.length - 1], { ...init, ...layers });
  const test = await testSet(spec, model);
  // On a terminal, the pass over the training set as it goes.
  const tty = (stderr as NodeJS.WriteStream).isTTY;
  const onProgress = (done: number, total: number) => void (tty && stderr.write(`\rtraining examples: ${done}/${total}${done === total ? "\n" : ""}`));
  const set: Dataset = await openDataset(train, "train");
  try {
    const data = { inputs: test.inputs, labels: test.labels };
    const pro = (await method.influence(data, { k: spec.k, proponents: true, onProgress } as never)) as KMostInfluential;
    const opp = (await method.influence(data, { k: spec.k, proponents: false, onProgress } as never)) as KMostInfluential;
    fs.mkdirSync(spec.out, { recursive: true });
    const trainLabel = async (i: number) => {
      if (!set.hasLabels) return undefined;
      const c = await set.read(i, i + 1);
      const l = Number((c.labels!.data() as ArrayLike<number | bigint>)[0]);
      c.inputs.forEach((t) => t.dispose());
      c.labels!.dispose();
      return l;
    };
    const list = async (r: KMostInfluential, t: number) => {
      const k = r.indices.shape[1];
      const idx = Array.from(r.indices.data() as BigInt64Array, Number).slice(t * k, (t + 1) * k);
      const scores = Array.from(r.influenceScores.data() as Float32Array).slice(t * k, (t + 1) * k);
      return Promise.all(idx.map(async (index, j) => ({ index, score: scores[j], label: await trainLabel(index) })));
    };
    const labels = Array.from(test.labels.data() as BigInt64Array, Number);
    const results = [];
    for (let t = 0; t < labels.length; t++)
      results.push({ index: t, [test.predicted ? "predicted" : "label"]: labels[t], proponents: await list(pro, t), opponents: await list(opp, t) });
    const file = path.join(spec.out, "influence.json");
    await writeAtomic(file, JSON.stringify({ method: spec.method, checkpoints: ckpts, train: spec.train, test: spec.test, k: spec.k, testLabels: test.predicted ? "predicted" : "given", results }, null, 1) + "\n");
    if (spec.self) await saveNpy(path.join(spec.out, "self_influence.npy"), await method.selfInfluence(undefined, { onProgress }));
    let pictures: string | undefined;
    if (spec.png) {
      if (test.inputs.shape.length !== 4) bad(`png: pictures are drawn for image inputs [N, C, H, W]; the test inputs are [${test.inputs.shape}]`);
      pictures = path.join(spec.out, "influence.png");
      const image = async (i: number) => {
        const c = await set.read(i, i + 1);
        const x = c.inputs[0];
        const out = { data: Float32Array.from(x.data() as Float32Array), shape: x.shape.slice(1) };
        c.inputs.forEach((t) => t.dispose());
        c.labels?.dispose();
        return out;
      };
      const trainLabels = new Map<number, number>();
      for (const r of results) for (const p of [...r.proponents, ...r.opponents]) if (p.label !== undefined) trainLabels.set(p.index, p.label);
      fs.writeFileSync(pictures, await visualizeInfluence(test.inputs, image, pro, opp, { trainLabels: (i) => trainLabels.get(i) ?? "", testLabels: labels }));
    }
    return { file, pictures };
  } finally {
    await set.close();
    await method.dispose();
    model.dispose();
  }
}
