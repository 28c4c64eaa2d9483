// Batch attribution jobs: inputs split into shards (row ranges), each shard
// attributed and written to its own files atomically, the result assembled
// from the shards. The same shard code runs in-process and in queue workers.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createHash } from "crypto";
import { Model, loadModel } from "../model";
import { Tensor, tensor, TypedData } from "../tensor";
import { TorchExplainError } from "../errors";
import { NpyArray, parseNpy, parseNpz, saveNpy, writeAtomic, toNpy } from "../io/npy";
import { ImageOptions, listImages, loadImageFiles, IMAGE_EXTENSIONS } from "../io/image";
import { parseJsonLines } from "../io/jsonl";
import { visualizeImageAttr, VisualizeSign } from "../visualization/image";
import { visualizeText } from "../visualization/text";
import { interpolate } from "../algorithms/layer";
import { resolveMethod } from "./methods";

/** Everything a shard needs to run, as written to DIR/job.json (paths absolute). */
export interface JobSpec {
  model: string;
  method: string;
  layer?: string;
  /** A class index, or "predicted" (the model's top class per example). Without it: the `targets` file, else the inputs' own, else "predicted". */
  target?: number | "predicted";
  /** attribute()'s options (JSON). */
  options?: Record<string, unknown>;
  /** The constructor's options (JSON). */
  init?: Record<string, unknown>;
  /** A .npy/.npz file, a JSON Lines file, an image, or a folder of images. */
  inputs: string;
  /** uint8 .npy/.npz inputs as float32 in [0, 1] (each value / 255) rather than 0-255. */
  scaleUint8?: boolean;
  /** A .npy file of one integer target per example (the inputs' own targets otherwise: JSON Lines "target"s, a .npz's labels). */
  targets?: string;
  /** A .npy file of baselines: one row per example, one row for all, or a distribution for *Shap methods. */
  baselines?: string;
  /** Options for reading images. */
  image?: ImageOptions;
  /** Rows per attribute() call within a shard. */
  batchSize: number;
  /** Rows per shard. */
  shardSize: number;
  /** Write a heat map PNG per example. */
  png?: boolean;
  /** Write an HTML page per example of token inputs (int64 rows), tokens coloured by attribution; --png does too for such rows. */
  html?: boolean;
  pngSign?: VisualizeSign;
  pngScale?: number;
  /**
   * An input that cannot be read (a corrupt image) is skipped and reported
   * (its row of attributions NaN, its record's `error` saying why) instead of
   * failing the job. Not part of the job's identity: a job resumed with it
   * goes on past the input that stopped it.
   */
  skipBadInputs?: boolean;
  out: string;
}

/** What index.json says of one example. */
export interface ExampleRecord {
  index: number;
  source: string;
  target: number | number[] | null;
  predicted: number | null;
  probability: number | null;
  delta?: number | number[];
  /** Milliseconds: the example's share of its batch's attribution time. */
  timeMs: number;
  heatmap?: string;
  /** The example's HTML page (token inputs). */
  page?: string;
  /** Why the input was skipped (skipBadInputs): its attributions are NaN. */
  error?: string;
}

export interface ShardResult {
  /** How targets were chosen: "predicted", "given" (--target), "rows" (the inputs' own), or "none" (the method takes none). */
  targetMode: "predicted" | "given" | "rows" | "none";
  shard: number;
  start: number;
  end: number;
  shape: number[];
  examples: ExampleRecord[];
  timeMs: number;
  worker: string;
}

// ---- inputs ---------------------------------------------------------------------

/** A view of the inputs: their count, one example's shape, and a way to read rows. */
export interface InputSource {
  count: number;
  exampleShape: number[];
  rows(start: number, end: number): Promise<{ tensor: Tensor; sources: string[]; targets?: (number | undefined)[]; errors?: (string | undefined)[] }>;
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

// Parsed files are kept per process (workers run many shards of one job): keyed by path, size and time.
const fileCache = new Map<string, { key: string; value: unknown }>();
async function cached<T>(file: string, parse: (bytes: Buffer) => T): Promise<T> {
  const st = await fs.promises.stat(file);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = fileCache.get(file);
  if (hit && hit.key === key) return hit.value as T;
  const value = parse(await fs.promises.readFile(file));
  if (fileCache.size > 8) fileCache.clear();
  fileCache.set(file, { key, value });
  return value;
}

const LABEL_KEYS = ["labels", "targets", "y"];

/** Per-example targets from an array: one non-negative integer per example. */
function targetList(a: NpyArray, count: number, what: string): number[] {
  if (a.shape.length !== 1 || a.shape[0] !== count)
    throw new TorchExplainError(`targets: ${what} has shape [${a.shape}]; expected one target per example, [${count}]`, "ERR_BAD_TARGET");
  const out = Array.from(a.data as ArrayLike<number | bigint>, Number);
  const wrong = out.findIndex((t) => !Number.isInteger(t) || t < 0);
  if (wrong >= 0) throw new TorchExplainError(`targets: ${what}[${wrong}] is ${out[wrong]}; expected class indices (non-negative integers)`, "ERR_BAD_TARGET");
  return out;
}

function withTargets(src: InputSource, targets: number[]): InputSource {
  return {
    ...src,
    async rows(start, end) {
      return { ...(await src.rows(start, end)), targets: targets.slice(start, end) };
    },
  };
}

function npyRows(a: NpyArray, label: string, scaleUint8: boolean): InputSource {
  if (a.shape.length < 1 || a.shape[0] < 1) throw new TorchExplainError(`inputs: ${label} has shape [${a.shape}]; expected examples along the first dimension`, "ERR_BAD_SHAPE");
  const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
  // uint8 (images saved as bytes) becomes float32: tensors have no uint8, and models take floats.
  const data: TypedData = a.dtype === "uint8" ? Float32Array.from(a.data as Uint8Array, (v) => (scaleUint8 ? v / 255 : v)) : (a.data as TypedData);
  const dtype = a.dtype === "uint8" ? "float32" : a.dtype;
  return {
    count: a.shape[0],
    exampleShape: a.shape.slice(1),
    async rows(start, end) {
      const view = data.subarray(start * per, end * per) as TypedData; // a view: tensor() copies it once, natively
      return { tensor: tensor(view, [end - start, ...a.shape.slice(1)], dtype), sources: range(start, end).map((i) => `${label}[${i}]`) };
    },
  };
}

/** Per token: its attributions summed (over an embedding's dimensions), scaled by the largest magnitude for colour. */
function tokenScores(values: Float32Array, tokens: number): { scaled: number[]; sum: number } {
  const per = values.length / tokens;
  const sums = Array.from({ length: tokens }, (_, t) => values.subarray(t * per, (t + 1) * per).reduce((a, v) => a + v, 0));
  const top = Math.max(...sums.map(Math.abs)) || 1;
  return { scaled: sums.map((v) => v / top), sum: sums.reduce((a, v) => a + v, 0) };
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/**
 * Opens the inputs of a job: .npy, .npz (its "inputs" or "x" array, else its
 * first, with targets from its "labels", "targets" or "y"), JSON Lines, an
 * image, or a folder of images; `targets`, a .npy of one target per example.
 */
export async function openInputs(file: string, image: ImageOptions = {}, options: { skipBad?: boolean; targets?: string; scaleUint8?: boolean } = {}): Promise<InputSource> {
  const { targets } = options;
  const src = await openRows(file, image, !!options.skipBad, !!options.scaleUint8);
  if (targets === undefined) return src;
  if (!fs.existsSync(targets)) throw bad("targets", `no such file: ${targets}`);
  return withTargets(src, targetList(await cached(targets, (b) => parseNpy(b, `targets '${targets}'`)), src.count, path.basename(targets)));
}

async function openRows(file: string, image: ImageOptions, skipBad: boolean, scaleUint8: boolean): Promise<InputSource> {
  const st = await fs.promises.stat(file).catch(() => undefined);
  if (!st) throw bad("inputs", `no such file or folder: ${file}`);
  const base = path.basename(file);
  if (st.isDirectory()) {
    const names = await listImages(file);
    if (names.length === 0) throw bad("inputs", `no images (${IMAGE_EXTENSIONS.join(", ")}) in the folder ${file}`);
    const first = await loadImageFiles([path.join(file, names[0])], image);
    const exampleShape = first.shape.slice(1);
    first.dispose();
    return {
      count: names.length,
      exampleShape,
      async rows(start, end) {
        const chosen = names.slice(start, end);
        const paths = chosen.map((n) => path.join(file, n));
        try {
          return { tensor: await loadImageFiles(paths, image), sources: chosen };
        } catch (e) {
          if (!skipBad) throw e;
        }
        // One at a time: a file that does not read stands as zeros, with its error.
        const per = exampleShape.reduce((a, b) => a * b, 1);
        const all = new Float32Array(per * chosen.length);
        const errors: (string | undefined)[] = [];
        for (const [i, p] of paths.entries()) {
          try {
            const t = await loadImageFiles([p], image);
            if (t.shape.slice(1).join() !== exampleShape.join()) throw bad("size", `${chosen[i]} is [${t.shape.slice(1)}], the others [${exampleShape}]; pass size to resize them all`);
            all.set(t.data() as Float32Array, i * per);
            t.dispose();
            errors.push(undefined);
          } catch (e) {
            errors.push((e as Error).message.split("\n")[0]);
          }
        }
        return { tensor: tensor(all, [chosen.length, ...exampleShape], "float32"), sources: chosen, errors };
      },
    };
  }
  const ext = path.extname(file).toLowerCase();
  if (ext === ".npy") return npyRows(await cached(file, (b) => parseNpy(b, `inputs '${file}'`)), base, scaleUint8);
  if (ext === ".npz") {
    const arrays = await cached(file, (b) => parseNpz(b, `inputs '${file}'`));
    const labelKey = LABEL_KEYS.find((k) => k in arrays);
    const key = ["inputs", "x"].find((k) => k in arrays) ?? Object.keys(arrays).find((k) => k !== labelKey);
    if (!key) throw bad("inputs", `${file} holds no input array (it has ${Object.keys(arrays).join(", ") || "none"})`);
    const rows = npyRows(arrays[key], `${base}:${key}`, scaleUint8);
    return labelKey ? withTargets(rows, targetList(arrays[labelKey], rows.count, `${base}:${labelKey}`)) : rows;
  }
  if (ext === ".jsonl" || ext === ".ndjson") {
    const parsed = await cached(file, (b) => {
      const batch = parseJsonLines(b.toString("utf8"));
      const data = batch.inputs.data() as Float32Array | BigInt64Array;
      const { shape, dtype } = batch.inputs;
      batch.inputs.dispose();
      return { data, shape, dtype, targets: batch.targets, ids: batch.ids };
    });
    const per = parsed.shape.slice(1).reduce((x, y) => x * y, 1);
    return {
      count: parsed.shape[0],
      exampleShape: parsed.shape.slice(1),
      async rows(start, end) {
        return {
          tensor: tensor(parsed.data.subarray(start * per, end * per), [end - start, ...parsed.shape.slice(1)], parsed.dtype),
          sources: parsed.ids.slice(start, end),
          targets: parsed.targets.slice(start, end),
        };
      },
    };
  }
  if (IMAGE_EXTENSIONS.includes(ext)) {
    return {
      count: 1,
      exampleShape: (await loadImageFiles([file], image)).shape.slice(1),
      async rows() {
        return { tensor: await loadImageFiles([file], image), sources: [base] };
      },
    };
  }
  throw bad("inputs", `cannot read '${base}': expected .npy, .npz, .jsonl, an image (${IMAGE_EXTENSIONS.join(", ")}) or a folder of images`);
}

// ---- the job's files ----------------------------------------------------------------

export function shardCount(count: number, shardSize: number): number {
  return Math.ceil(count / shardSize);
}

export function shardRange(spec: Pick<JobSpec, "shardSize">, count: number, shard: number): [number, number] {
  return [shard * spec.shardSize, Math.min(count, (shard + 1) * spec.shardSize)];
}

const pad = (n: number) => String(n).padStart(6, "0");
export const shardFiles = (out: string, shard: number) => ({
  npy: path.join(out, "shards", `shard-${pad(shard)}.npy`),
  json: path.join(out, "shards", `shard-${pad(shard)}.json`),
});

/** The job's identity: what determines its results (not where the output goes or how it is sharded across machines). */
export function jobHash(spec: JobSpec): string {
  const { out: _out, skipBadInputs: _skip, ...rest } = spec;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex").slice(0, 16);
}

export interface JobManifest {
  hash: string;
  count: number;
  shards: number;
  exampleShape: number[];
  spec: JobSpec;
}

/**
 * Prepares DIR for a job: DIR/job.json, DIR/shards/. With `resume`, the
 * shards already done for the same job are kept (a different job in DIR is an
 * error); without it, any old shards are removed. Returns the manifest and the
 * shards still to do.
 */
export async function prepareJob(spec: JobSpec, resume: boolean): Promise<{ manifest: JobManifest; todo: number[] }> {
  const inputs = await openInputs(spec.inputs, spec.image, { targets: spec.targets, scaleUint8: spec.scaleUint8 });
  const manifest: JobManifest = {
    hash: jobHash(spec),
    count: inputs.count,
    shards: shardCount(inputs.count, spec.shardSize),
    exampleShape: inputs.exampleShape,
    spec,
  };
  const jobFile = path.join(spec.out, "job.json");
  await fs.promises.mkdir(path.join(spec.out, "shards"), { recursive: true });
  if (resume && fs.existsSync(jobFile)) {
    const old = JSON.parse(await fs.promises.readFile(jobFile, "utf8")) as JobManifest;
    if (old.hash !== manifest.hash || old.count !== manifest.count)
      throw bad("resume", `${spec.out} holds a different job (other model, method, inputs, options or shard size); use another --out or leave out --resume`);
  } else {
    await fs.promises.rm(path.join(spec.out, "shards"), { recursive: true, force: true });
    await fs.promises.rm(path.join(spec.out, "heatmaps"), { recursive: true, force: true });
    await fs.promises.rm(path.join(spec.out, "pages"), { recursive: true, force: true });
    await fs.promises.mkdir(path.join(spec.out, "shards"), { recursive: true });
  }
  await writeAtomic(jobFile, JSON.stringify(manifest, null, 2) + "\n");
  const todo = range(0, manifest.shards).filter((s) => !fs.existsSync(shardFiles(spec.out, s).json));
  return { manifest, todo };
}

export async function readManifest(out: string): Promise<JobManifest> {
  const file = path.join(out, "job.json");
  try {
    return JSON.parse(await fs.promises.readFile(file, "utf8")) as JobManifest;
  } catch (e) {
    throw bad("job", `cannot read ${file} (${(e as Error).message})`);
  }
}

// ---- running a shard ------------------------------------------------------------------

const models = new Map<string, Promise<Model>>();
/** One loaded model per file and process (workers run many shards). */
export function sharedModel(file: string): Promise<Model> {
  let m = models.get(file);
  if (!m) {
    m = loadModel(file);
    m.catch(() => models.delete(file));
    models.set(file, m);
  }
  return m;
}

export function disposeModels(): void {
  for (const m of models.values()) m.then((x) => x.dispose(), () => undefined);
  models.clear();
}

/** Per example: the top class and its probability, from a [N, K] output (probabilities when rows already are, else softmax). */
function predictions(out: Tensor): { cls: number[]; prob: number[] } | undefined {
  const shape = out.shape;
  if (shape.length !== 2) return undefined;
  const [n, k] = shape;
  const v = Array.from(out.data() as ArrayLike<number>, Number);
  const cls: number[] = [], prob: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = v.slice(i * k, (i + 1) * k);
    const max = Math.max(...row);
    const sum = row.reduce((a, b) => a + b, 0);
    const isProb = row.every((x) => x >= 0 && x <= 1) && Math.abs(sum - 1) < 1e-3;
    let p: number[];
    if (isProb) p = row;
    else {
      const e = row.map((x) => Math.exp(x - max));
      const s = e.reduce((a, b) => a + b, 0);
      p = e.map((x) => x / s);
    }
    const c = row.indexOf(max);
    cls.push(c);
    prob.push(p[c]);
  }
  return { cls, prob };
}

async function baselinesFor(spec: JobSpec, distribution: boolean, start: number, end: number, count: number): Promise<Tensor | number | undefined> {
  if (spec.baselines === undefined) return undefined;
  if (/^-?\d+(\.\d+)?$/.test(spec.baselines)) return Number(spec.baselines);
  const a = await cached(spec.baselines, (b) => parseNpy(b, `baselines '${spec.baselines}'`));
  const data = (a.dtype === "uint8" ? Float32Array.from(a.data as Uint8Array) : a.data) as TypedData;
  const dtype = a.dtype === "uint8" ? "float32" : a.dtype;
  // One row per example (and not a reference distribution): the shard's rows.
  if (!distribution && a.shape[0] === count && count > 1) {
    const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
    return tensor(data.subarray(start * per, end * per) as TypedData, [end - start, ...a.shape.slice(1)], dtype);
  }
  return tensor(data, a.shape, dtype);
}

/**
 * Attributes one shard and writes DIR/shards/shard-N.npy (float32) and then
 * shard-N.json, each through a temporary file and a rename: a shard is done
 * exactly when its .json exists, and a shard run twice (a retry after a
 * worker died) replaces its files with the same content.
 */
export async function runShard(manifest: JobManifest, shard: number, onRows?: (rows: number) => void): Promise<ShardResult> {
  const spec = manifest.spec;
  const [start, end] = shardRange(spec, manifest.count, shard);
  if (!(start < end)) throw bad("shard", `shard ${shard} is out of range (${manifest.shards} shards)`);
  const method = resolveMethod(spec.method, spec.layer, spec.init ?? {});
  const model = await sharedModel(spec.model);
  const algorithm = method.make(model);
  const inputs = await openInputs(spec.inputs, spec.image, { skipBad: spec.skipBadInputs, targets: spec.targets, scaleUint8: spec.scaleUint8 });
  const began = Date.now();
  const examples: ExampleRecord[] = [];
  const chunks: Float32Array[] = [];
  let shape: number[] | undefined;
  let targetMode: ShardResult["targetMode"] = "none";
  for (let b = start; b < end; b += spec.batchSize) {
    const e = Math.min(end, b + spec.batchSize);
    const rows = await inputs.rows(b, e);
    const toDispose: Tensor[] = [rows.tensor];
    try {
      const out = await model.forward(rows.tensor);
      toDispose.push(out);
      const pred = predictions(out);
      let target: number[] | undefined;
      if (method.info.target) {
        if (spec.target === "predicted" || (spec.target === undefined && !rows.targets?.some((t) => t !== undefined))) {
          if (!pred) throw new TorchExplainError(`target: 'predicted' needs a model output of shape [batch, classes]; the output is [${out.shape}] (give --target)`, "ERR_BAD_TARGET");
          target = pred.cls;
          targetMode = "predicted";
        } else if (spec.target !== undefined) {
          target = new Array(e - b).fill(spec.target);
          targetMode = "given";
        } else {
          targetMode = "rows";
          const missing = rows.targets!.findIndex((t) => t === undefined);
          if (missing >= 0) throw new TorchExplainError(`target: ${rows.sources[missing]} has no "target" while other rows do (give --target)`, "ERR_BAD_TARGET");
          target = rows.targets as number[];
        }
      }
      const options: Record<string, unknown> = { ...(spec.options ?? {}) };
      if (target) options.target = target;
      const baselines = await baselinesFor(spec, !!method.info.distribution, b, e, manifest.count);
      if (baselines instanceof Tensor) toDispose.push(baselines);
      if (baselines !== undefined) options.baselines = baselines;
      const wantDelta = method.info.delta && options.returnConvergenceDelta !== false;
      if (wantDelta) options.returnConvergenceDelta = true;
      const t0 = Date.now();
      const result = (await (algorithm as unknown as { attribute(i: Tensor, o: object): Promise<unknown> }).attribute(rows.tensor, options)) as
        | Tensor
        | Tensor[]
        | { attributions: Tensor | Tensor[]; delta: Tensor };
      const ms = Date.now() - t0;
      let attr = (result as { attributions?: Tensor | Tensor[] }).attributions ?? (result as Tensor | Tensor[]);
      if (Array.isArray(attr)) {
        if (attr.length !== 1) throw bad("method", `${spec.method} returned ${attr.length} tensors; batch jobs take one`);
        attr = attr[0];
      }
      const delta = (result as { delta?: Tensor }).delta;
      toDispose.push(attr);
      if (delta) toDispose.push(delta);
      const aShape = attr.shape;
      if (aShape[0] !== e - b) throw new TorchExplainError(`method: ${spec.method} returned ${aShape[0]} rows for ${e - b} examples`, "ERR_BAD_SHAPE");
      shape = aShape.slice(1);
      const values = Float32Array.from(attr.data() as ArrayLike<number>, Number);
      const per0 = shape.reduce((x, y) => x * y, 1);
      rows.errors?.forEach((err, i) => err && values.fill(NaN, i * per0, (i + 1) * per0)); // skipped inputs: no attributions
      chunks.push(values);
      const deltas = delta ? Array.from(delta.data() as ArrayLike<number>, Number) : undefined;
      const per = shape.reduce((x, y) => x * y, 1);
      // A layer's map ([C, h, w], GradCAM's 7x7 on a 224 image) is drawn at the image's size, resized
      // as the reference's LayerAttribution.interpolate (bilinear); the .npy keeps the layer's own.
      let picture = { values, shape, per };
      const inputShape = rows.tensor.shape.slice(1);
      // One row of token ids per example, with attributions per token (or per token and embedding dimension).
      const tokenRows = rows.tensor.dtype === "int64" && inputShape.length === 1 && shape[0] === inputShape[0] ? { length: inputShape[0] } : undefined;
      if (spec.png && shape.length === 3 && inputShape.length === 3 && (shape[1] !== inputShape[1] || shape[2] !== inputShape[2])) {
        const sized = interpolate(attr, inputShape.slice(1), "bilinear");
        toDispose.push(sized);
        const s = sized.shape.slice(1);
        picture = { values: Float32Array.from(sized.data() as ArrayLike<number>, Number), shape: s, per: s.reduce((x, y) => x * y, 1) };
      }
      for (let i = 0; i < e - b; i++) {
        const rec: ExampleRecord = {
          index: b + i,
          source: rows.sources[i],
          target: target ? target[i] : null,
          predicted: pred ? pred.cls[i] : null,
          probability: pred ? pred.prob[i] : null,
          timeMs: ms / (e - b),
        };
        if (deltas) {
          const k = deltas.length / (e - b); // DeepLiftShap-like methods: one delta per example and reference
          rec.delta = k === 1 ? deltas[i] : deltas.slice(i * k, (i + 1) * k);
        }
        if (rows.errors?.[i]) {
          rec.error = rows.errors[i];
          rec.predicted = rec.probability = null;
          delete rec.delta;
        } else if (tokenRows && (spec.png || spec.html)) {
          // Token ids: a page of the tokens coloured by their attribution (summed over the embedding), not a 16x4 picture.
          const name = `${String(b + i).padStart(6, "0")}.html`;
          const ids = Array.from((rows.tensor.data() as BigInt64Array).subarray(i * tokenRows.length, (i + 1) * tokenRows.length), Number);
          const scores = tokenScores(values.subarray(i * per, (i + 1) * per), ids.length);
          const html = visualizeText([{ wordAttributions: scores.scaled, predProb: rec.probability ?? NaN, predClass: rec.predicted ?? "", trueClass: "", attrClass: rec.target === null ? "" : String(rec.target), attrScore: scores.sum, rawInputIds: ids.map((t) => `#${t}`), convergenceScore: typeof rec.delta === "number" ? rec.delta : null }], { title: `example ${b + i} (${rows.sources[i]})` });
          await fs.promises.mkdir(path.join(spec.out, "pages"), { recursive: true });
          await writeAtomic(path.join(spec.out, "pages", name), html);
          rec.page = `pages/${name}`;
        } else if (spec.png && (shape.length === 2 || shape.length === 3)) {
          const name = `${String(b + i).padStart(6, "0")}.png`;
          const png = await visualizeImageAttr({ data: picture.values.subarray(i * picture.per, (i + 1) * picture.per), shape: picture.shape }, null, {
            method: "heat_map",
            sign: spec.pngSign ?? "absolute_value",
            scale: spec.pngScale ?? 1,
          });
          await fs.promises.mkdir(path.join(spec.out, "heatmaps"), { recursive: true });
          await writeAtomic(path.join(spec.out, "heatmaps", name), png);
          rec.heatmap = `heatmaps/${name}`;
        }
        examples.push(rec);
      }
      onRows?.(e - b);
    } finally {
      for (const t of toDispose) if (!t.disposed) t.dispose();
    }
  }
  const all = new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) { all.set(c, o); o += c.length; }
  const result: ShardResult = { targetMode, shard, start, end, shape: shape!, examples, timeMs: Date.now() - began, worker: `${os.hostname()}:${process.pid}` };
  const files = shardFiles(spec.out, shard);
  await saveNpy(files.npy, { data: all, shape: [end - start, ...shape!] });
  await writeAtomic(files.json, JSON.stringify(result) + "\n");
  return result;
}

/** Reads the finished shards and writes DIR/attributions.npy and DIR/index.json; returns the index. */
export async function assemble(manifest: JobManifest, extra: Record<string, unknown> = {}): Promise<{ shape: number[]; examples: ExampleRecord[] }> {
  const spec = manifest.spec;
  const results: ShardResult[] = [];
  for (let s = 0; s < manifest.shards; s++) {
    const f = shardFiles(spec.out, s);
    results.push(JSON.parse(await fs.promises.readFile(f.json, "utf8")) as ShardResult);
  }
  const shape = results[0].shape;
  const per = shape.reduce((x, y) => x * y, 1);
  const all = new Float32Array(manifest.count * per);
  for (const r of results) {
    const a = parseNpy(await fs.promises.readFile(shardFiles(spec.out, r.shard).npy), `shard ${r.shard}`);
    if (a.shape[0] !== r.end - r.start || a.shape.slice(1).join() !== shape.join()) throw new TorchExplainError(`shard ${r.shard}: shape [${a.shape}] does not fit rows ${r.start}-${r.end}`, "ERR_BAD_SHAPE");
    all.set(a.data as Float32Array, r.start * per);
  }
  const examples = results.flatMap((r) => r.examples).sort((a, b) => a.index - b.index);
  await writeAtomic(path.join(spec.out, "attributions.npy"), toNpy({ data: all, shape: [manifest.count, ...shape] }));
  const index = {
    model: spec.model,
    method: spec.method,
    layer: spec.layer ?? null,
    inputs: spec.inputs,
    target: spec.target ?? null,
    targets: results[0].targetMode,
    options: spec.options ?? {},
    count: manifest.count,
    shape: [manifest.count, ...shape],
    shards: manifest.shards,
    ...extra,
    examples,
  };
  await writeAtomic(path.join(spec.out, "index.json"), JSON.stringify(index, null, 2) + "\n");
  // Temporary files of writers killed mid-write are not part of the result.
  for (const f of await fs.promises.readdir(path.join(spec.out, "shards"))) if (f.endsWith(".tmp")) await fs.promises.rm(path.join(spec.out, "shards", f), { force: true });
  return { shape: [manifest.count, ...shape], examples };
}
