// The examples Insights shows: one or more model inputs per example (images,
// token ids, tabular features), the true labels when known, class names, and
// forward()'s extra arguments. Read from the same files as batch jobs, plus a
// JSON document that can describe several inputs (a multimodal model).
import * as fs from "fs";
import * as path from "path";
import { Tensor, tensor, TypedData, DType } from "../tensor";
import { TorchExplainError } from "../errors";
import { parseNpy, parseNpz, NpyArray } from "../io/npy";
import { IMAGE_EXTENSIONS, ImageOptions, listImages, loadImageFiles } from "../io/image";
import { parseJsonLines } from "../io/jsonl";
import type { ForwardArg } from "../types";

export type InputKind = "image" | "text" | "tabular";

/** One model input over every example: [count, ...exampleShape]. */
export interface DatasetInput {
  name: string;
  kind: InputKind;
  dtype: DType;
  exampleShape: number[];
  data: TypedData;
  /** For text: each example's words (defaults to the token ids). */
  words?: string[][];
  /** For tabular: feature names (default f0, f1, ...). */
  features?: string[];
}

export interface Dataset {
  count: number;
  inputs: DatasetInput[];
  /** The true class per example, or null where unknown. */
  labels: (number | null)[];
  /** Names of the examples (file names, ids, indices). */
  names: string[];
  /** Class names by index, when given. */
  classes?: string[];
  additionalForwardArgs?: ForwardArg[];
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Images are [C, H, W] with 1, 3 or 4 channels or [H, W] floats; integers are tokens; the rest tabular. */
export function guessKind(dtype: DType, exampleShape: number[]): InputKind {
  if (dtype === "int64" || dtype === "int32") return "text";
  if (exampleShape.length === 3 && [1, 3, 4].includes(exampleShape[0]) && exampleShape[1] > 1 && exampleShape[2] > 1) return "image";
  return "tabular";
}

function fromNpy(a: NpyArray, name: string): DatasetInput {
  if (a.shape.length < 1 || a.shape[0] < 1) throw new TorchExplainError(`inputs: ${name} has shape [${a.shape}]; expected examples along the first dimension`, "ERR_BAD_SHAPE");
  const data = (a.dtype === "uint8" ? Float32Array.from(a.data as Uint8Array) : a.data) as TypedData;
  const dtype = (a.dtype === "uint8" ? "float32" : a.dtype) as DType;
  const exampleShape = a.shape.slice(1);
  return { name, kind: guessKind(dtype, exampleShape), dtype, exampleShape, data };
}

const DTYPES: DType[] = ["float32", "float64", "int64", "int32", "bool"];
function typed(values: unknown[], dtype: DType, what: string): TypedData {
  if (!values.every((v) => typeof v === "number" && Number.isFinite(v))) throw bad(what, "expected finite numbers");
  const nums = values as number[];
  switch (dtype) {
    case "float64": return Float64Array.from(nums);
    case "int64": return BigInt64Array.from(nums, (v) => BigInt(Math.trunc(v)));
    case "int32": return Int32Array.from(nums);
    case "bool": return Uint8Array.from(nums, (v) => (v ? 1 : 0));
    default: return Float32Array.from(nums);
  }
}

/**
 * A JSON document: `{ "inputs": [{ "name", "kind"?, "dtype"?, "shape": [N, ...], "data": [flat], "words"?: [[...]], "features"?: [...] }],
 * "labels"?: [...], "classes"?: [...], "names"?: [...], "additionalForwardArgs"?: [...] }`, or the demo's
 * `{ "images": [flat], "shape": [N, C, H, W], "labels": [...] }`.
 */
function fromJson(doc: unknown, file: string): Partial<Dataset> & { inputs: DatasetInput[] } {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw bad("inputs", `${file}: expected a JSON object with "inputs" (or "images" and "shape")`);
  const d = doc as Record<string, unknown>;
  const specs: Record<string, unknown>[] = Array.isArray(d.inputs)
    ? (d.inputs as Record<string, unknown>[])
    : d.images !== undefined
      ? [{ name: "image", data: d.images, shape: d.shape, dtype: d.dtype ?? "float32" }]
      : [];
  if (specs.length === 0) throw bad("inputs", `${file}: no inputs (expected "inputs": [{ "shape", "data" }] or "images" with "shape")`);
  const inputs = specs.map((s, k): DatasetInput => {
    const what = `inputs[${k}]`;
    if (!s || typeof s !== "object") throw bad(what, "expected an object with shape and data");
    const shape = s.shape as number[];
    if (!Array.isArray(shape) || shape.length < 1 || !shape.every((n) => Number.isInteger(n) && n > 0)) throw bad(`${what}.shape`, `expected positive integers, the first the number of examples; got ${JSON.stringify(s.shape)}`);
    const dtype = (s.dtype ?? "float32") as DType;
    if (!DTYPES.includes(dtype)) throw bad(`${what}.dtype`, `expected one of ${DTYPES.join(", ")}; got ${JSON.stringify(s.dtype)}`);
    const flat = Array.isArray(s.data) ? (s.data as unknown[]).flat(Infinity) : undefined;
    if (!flat || flat.length !== prod(shape)) throw bad(`${what}.data`, `shape [${shape}] needs ${prod(shape)} values; got ${flat ? flat.length : "none"}`);
    const exampleShape = shape.slice(1);
    const kind = (s.kind ?? guessKind(dtype, exampleShape)) as InputKind;
    if (!["image", "text", "tabular"].includes(kind)) throw bad(`${what}.kind`, `expected image, text or tabular; got ${JSON.stringify(s.kind)}`);
    const input: DatasetInput = { name: typeof s.name === "string" ? s.name : `input ${k}`, kind, dtype, exampleShape, data: typed(flat, dtype, `${what}.data`) };
    if (Array.isArray(s.words)) input.words = (s.words as unknown[][]).map((row) => row.map(String));
    if (Array.isArray(s.features)) input.features = (s.features as unknown[]).map(String);
    return input;
  });
  const out: Partial<Dataset> & { inputs: DatasetInput[] } = { inputs };
  if (Array.isArray(d.labels)) out.labels = (d.labels as unknown[]).map((v) => (typeof v === "number" && Number.isInteger(v) ? v : null));
  if (Array.isArray(d.classes)) out.classes = (d.classes as unknown[]).map(String);
  if (Array.isArray(d.names)) out.names = (d.names as unknown[]).map(String);
  if (Array.isArray(d.additionalForwardArgs)) out.additionalForwardArgs = d.additionalForwardArgs as ForwardArg[];
  return out;
}

/**
 * Reads the examples: a .npy, an .npz (each array an input, in order; an array
 * named "labels" holds the true classes), JSON Lines (rows' "target" are the
 * true classes), a JSON document (above), an image, or a folder of images
 * (class subfolders name the true classes).
 */
export async function loadDataset(file: string, image: ImageOptions = {}): Promise<Dataset> {
  const st = await fs.promises.stat(file).catch(() => undefined);
  if (!st) throw bad("inputs", `no such file or folder: ${file}`);
  let part: Partial<Dataset> & { inputs: DatasetInput[] };
  if (st.isDirectory()) {
    let names = (await listImages(file)).map((n) => ({ file: path.join(file, n), label: null as number | null, name: n }));
    let classes: string[] | undefined;
    if (names.length === 0) {
      // ImageFolder layout: one subfolder per class.
      const subs = (await fs.promises.readdir(file, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
      classes = subs;
      for (const [c, sub] of subs.entries()) for (const n of await listImages(path.join(file, sub))) names.push({ file: path.join(file, sub, n), label: c, name: `${sub}/${n}` });
    }
    if (names.length === 0) throw bad("inputs", `no images (${IMAGE_EXTENSIONS.join(", ")}) in the folder ${file} or its subfolders`);
    if (names.length > 5000) names = names.slice(0, 5000);
    const t = await loadImageFiles(names.map((n) => n.file), image);
    const input: DatasetInput = { name: "image", kind: "image", dtype: "float32", exampleShape: t.shape.slice(1), data: t.data() as TypedData };
    t.dispose();
    part = { inputs: [input], labels: names.map((n) => n.label), names: names.map((n) => n.name), ...(classes ? { classes } : {}) };
  } else {
    const ext = path.extname(file).toLowerCase();
    const bytes = await fs.promises.readFile(file);
    if (ext === ".npy") part = { inputs: [fromNpy(parseNpy(bytes, `inputs '${file}'`), path.basename(file))] };
    else if (ext === ".npz") {
      const arrays = parseNpz(bytes, `inputs '${file}'`);
      const inputs = Object.entries(arrays).filter(([k]) => k !== "labels").map(([k, a]) => fromNpy(a, k));
      part = { inputs };
      if (arrays.labels) part.labels = Array.from(arrays.labels.data as ArrayLike<number | bigint>, Number);
    } else if (ext === ".jsonl" || ext === ".ndjson") {
      const batch = parseJsonLines(bytes.toString("utf8"));
      const input: DatasetInput = { name: "features", kind: "tabular", dtype: "float32", exampleShape: batch.inputs.shape.slice(1), data: batch.inputs.data() as TypedData };
      batch.inputs.dispose();
      part = { inputs: [input], labels: batch.targets.map((t) => (typeof t === "number" ? t : null)), names: batch.ids };
    } else if (ext === ".json") {
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString("utf8"));
      } catch (e) {
        throw bad("inputs", `${file} is not valid JSON (${(e as Error).message})`);
      }
      part = fromJson(doc, path.basename(file));
    } else if (IMAGE_EXTENSIONS.includes(ext)) {
      const t = await loadImageFiles([file], image);
      part = { inputs: [{ name: "image", kind: "image", dtype: "float32", exampleShape: t.shape.slice(1), data: t.data() as TypedData }], names: [path.basename(file)] };
      t.dispose();
    } else throw bad("inputs", `cannot read '${path.basename(file)}': expected .npy, .npz, .jsonl, .json, an image (${IMAGE_EXTENSIONS.join(", ")}) or a folder of images`);
  }
  const count = part.inputs[0].data.length / Math.max(1, prod(part.inputs[0].exampleShape));
  for (const input of part.inputs) {
    const n = input.data.length / Math.max(1, prod(input.exampleShape));
    if (n !== count) throw new TorchExplainError(`inputs: '${input.name}' has ${n} examples but '${part.inputs[0].name}' has ${count}`, "ERR_BAD_SHAPE");
  }
  const labels = part.labels ?? [];
  if (labels.length && labels.length !== count) throw bad("labels", `${labels.length} labels for ${count} examples`);
  return {
    count,
    inputs: part.inputs,
    labels: labels.length ? labels : new Array(count).fill(null),
    names: part.names ?? Array.from({ length: count }, (_, i) => `#${i}`),
    ...(part.classes ? { classes: part.classes } : {}),
    ...(part.additionalForwardArgs ? { additionalForwardArgs: part.additionalForwardArgs } : {}),
  };
}

/**
 * A labels file: a JSON array of class names (strings), a JSON array of true
 * classes (one number per example), or `{ "classes": [...], "labels": [...] }`.
 */
export async function applyLabels(ds: Dataset, file: string): Promise<void> {
  let doc: unknown;
  try {
    doc = JSON.parse(await fs.promises.readFile(file, "utf8"));
  } catch (e) {
    throw bad("labels", `cannot read ${file} as JSON (${(e as Error).message})`);
  }
  const set = (labels: unknown) => {
    if (!Array.isArray(labels) || labels.length !== ds.count || !labels.every((v) => v === null || Number.isInteger(v))) throw bad("labels", `expected ${ds.count} class indices (one per example)`);
    ds.labels = labels as (number | null)[];
  };
  if (Array.isArray(doc) && doc.every((v) => typeof v === "string")) ds.classes = doc as string[];
  else if (Array.isArray(doc)) set(doc);
  else if (doc && typeof doc === "object") {
    const o = doc as Record<string, unknown>;
    if (Array.isArray(o.classes)) ds.classes = o.classes.map(String);
    if (o.labels !== undefined) set(o.labels);
  } else throw bad("labels", `${file}: expected an array of class names, an array of labels, or { "classes", "labels" }`);
}

/** Tensors of examples [start, end) for every input ([end-start, ...]). */
export function rows(ds: Dataset, start: number, end: number): Tensor[] {
  return ds.inputs.map((input) => {
    const per = prod(input.exampleShape);
    return tensor(input.data.subarray(start * per, end * per) as TypedData, [end - start, ...input.exampleShape], input.dtype);
  });
}

/** One example's values of one input as numbers. */
export function exampleValues(input: DatasetInput, i: number): Float64Array {
  const per = prod(input.exampleShape);
  return Float64Array.from(input.data.subarray(i * per, (i + 1) * per) as ArrayLike<number | bigint>, Number);
}
