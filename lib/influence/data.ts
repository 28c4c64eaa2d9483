// Training data for influence: tensors in memory, .npy/.npz files read a
// range of rows at a time, or an image folder with a subfolder per class
// (torchvision's ImageFolder). A set larger than memory streams through in
// chunks; nothing holds more than one chunk of it.
import * as fs from "fs";
import * as path from "path";
import { native } from "../native";
import { Tensor } from "../tensor";
import { TorchExplainError, guard } from "../errors";
import { RowReader } from "../io/rows";
import { IMAGE_EXTENSIONS, ImageOptions, loadImageFiles } from "../io/image";

/**
 * Examples (and their labels), in one of these forms:
 * - `{ inputs, labels }` with Tensors (several inputs as an array);
 * - `{ inputs: "x.npy", labels: "y.npy" }`: .npy files (several inputs as an array of paths);
 * - `{ npz: "train.npz", inputs?: "x", labels?: "y" }`: members of a .npz archive
 *   (default keys: "inputs" or "x", and "labels" or "y");
 * - `{ imageFolder: "train/", image?: { size: 32 } }`: one subfolder per class, in
 *   name order; an image's label is its class's index.
 */
export type TrainingData =
  | { inputs: Tensor | Tensor[]; labels?: Tensor }
  | { inputs: string | string[]; labels?: string }
  | { npz: string; inputs?: string | string[]; labels?: string }
  | { imageFolder: string; image?: ImageOptions };

/** A chunk of examples: rows [start, start + count). */
export interface Chunk {
  start: number;
  inputs: Tensor[];
  labels?: Tensor;
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

/** @internal Training data opened for reading ranges of rows. */
export abstract class Dataset {
  abstract readonly count: number;
  /** Bytes of one example's inputs (for chunk sizes). */
  abstract readonly rowBytes: number;
  abstract readonly hasLabels: boolean;
  abstract read(start: number, end: number): Promise<Chunk>;
  async close(): Promise<void> {}

  /**
   * Chunks of about `bytes` of inputs (at least `minRows` rows), in order;
   * `each` runs before the next chunk is read, and every chunk's tensors are
   * freed after it.
   */
  async forEach(bytes: number, minRows: number, each: (chunk: Chunk) => Promise<void>): Promise<void> {
    const rows = Math.max(minRows, Math.floor(bytes / Math.max(1, this.rowBytes)), 1);
    for (let start = 0; start < this.count; start += rows) {
      const chunk = await this.read(start, Math.min(this.count, start + rows));
      try {
        await each(chunk);
      } finally {
        chunk.inputs.forEach((t) => t.dispose());
        chunk.labels?.dispose();
        // A chunk's worth of freed memory sits in each worker thread's heap; hand it back
        // so the stream stays bounded (20-25 ms off the event loop after a 32 MiB chunk; not
        // done per request, where the next call would fault its working memory in afresh).
        if (rows < this.count) await native.releaseMemory();
      }
    }
  }

  /** Everything, as one chunk (the caller disposes it). */
  async readAll(budget: number, what: string): Promise<Chunk> {
    if (this.rowBytes * this.count > budget)
      throw new TorchExplainError(
        `memoryBudget: ${what} (${this.count} examples, ${(this.rowBytes * this.count / 2 ** 20).toFixed(1)} MiB) is read into memory whole, ` +
          `more than the budget of ${(budget / 2 ** 20).toFixed(1)} MiB; pass a smaller set or raise memoryBudget`,
        "ERR_MEMORY_BUDGET",
      );
    return this.read(0, this.count);
  }
}

const sliceRows = (t: Tensor, start: number, end: number) => new Tensor(guard(() => native.sliceRows(t.native, start, end)));
const DTYPE_BYTES: Record<string, number> = { float32: 4, float64: 8, int64: 8, int32: 4, bool: 1 };
const bytesPerRow = (t: Tensor) => t.shape.slice(1).reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];

class TensorDataset extends Dataset {
  readonly count: number;
  readonly rowBytes: number;
  readonly hasLabels: boolean;
  constructor(private readonly inputs: Tensor[], private readonly labels: Tensor | undefined, what: string) {
    super();
    if (inputs.length === 0) throw bad(`${what}.inputs`, "expected at least one Tensor");
    inputs.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw bad(`${what}.inputs${inputs.length > 1 ? `[${i}]` : ""}`, "expected a Tensor (or a file path)");
      if (t.shape.length === 0) throw bad(`${what}.inputs`, "expected a batch dimension first, got a scalar");
    });
    this.count = inputs[0].shape[0];
    inputs.forEach((t, i) => {
      if (t.shape[0] !== this.count) throw new TorchExplainError(`${what}.inputs[${i}]: ${t.shape[0]} rows, inputs[0] has ${this.count}`, "ERR_BAD_SHAPE");
    });
    if (labels !== undefined && !(labels instanceof Tensor)) throw bad(`${what}.labels`, "expected a Tensor");
    if (labels && (labels.shape.length === 0 || labels.shape[0] !== this.count))
      throw new TorchExplainError(`${what}.labels: ${labels.shape.length ? labels.shape[0] : "no"} labels for ${this.count} examples`, "ERR_BAD_SHAPE");
    this.rowBytes = inputs.reduce((s, t) => s + bytesPerRow(t), 0);
    this.hasLabels = labels !== undefined;
  }
  async read(start: number, end: number): Promise<Chunk> {
    return { start, inputs: this.inputs.map((t) => sliceRows(t, start, end)), labels: this.labels && sliceRows(this.labels, start, end) };
  }
}

class FileDataset extends Dataset {
  readonly count: number;
  readonly rowBytes: number;
  readonly hasLabels: boolean;
  constructor(private readonly inputs: RowReader[], private readonly labels: RowReader | undefined, what: string) {
    super();
    this.count = inputs[0].rows;
    for (const r of [...inputs.slice(1), ...(labels ? [labels] : [])])
      if (r.rows !== this.count) throw new TorchExplainError(`${what}: ${r.what} has ${r.rows} rows, ${inputs[0].what} has ${this.count}`, "ERR_BAD_SHAPE");
    this.rowBytes = inputs.reduce((s, r) => s + r.rowBytes, 0);
    this.hasLabels = labels !== undefined;
  }
  async read(start: number, end: number): Promise<Chunk> {
    const inputs: Tensor[] = [];
    for (const r of this.inputs) inputs.push(await r.read(start, end));
    return { start, inputs, labels: this.labels && (await this.labels.read(start, end)) };
  }
  async close() {
    for (const r of [...this.inputs, ...(this.labels ? [this.labels] : [])]) await r.close();
  }
}

class ImageFolderDataset extends Dataset {
  readonly hasLabels = true;
  rowBytes = 0;
  private constructor(private readonly files: string[], private readonly classes: number[], private readonly options: ImageOptions) {
    super();
  }
  get count() {
    return this.files.length;
  }
  static async open(dir: string, options: ImageOptions, what: string): Promise<ImageFolderDataset> {
    const entries = await fs.promises.readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      throw bad(`${what}.imageFolder`, e.code === "ENOENT" ? `no such folder: ${dir}` : `cannot read ${dir}: ${e.message}`);
    });
    const classes = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
    if (classes.length === 0) throw bad(`${what}.imageFolder`, `${dir} has no class subfolders (expected one folder of images per class)`);
    const files: string[] = [], labels: number[] = [];
    for (const [c, name] of classes.entries()) {
      const images = (await fs.promises.readdir(path.join(dir, name)))
        .filter((f) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))
        .sort();
      for (const f of images) {
        files.push(path.join(dir, name, f));
        labels.push(c);
      }
    }
    if (files.length === 0) throw bad(`${what}.imageFolder`, `no images (${IMAGE_EXTENSIONS.join(", ")}) in the class folders of ${dir}`);
    const ds = new ImageFolderDataset(files, labels, options);
    const first = await loadImageFiles([files[0]], options);
    ds.rowBytes = first.numel * 4;
    first.dispose();
    return ds;
  }
  async read(start: number, end: number): Promise<Chunk> {
    const inputs = await loadImageFiles(this.files.slice(start, end), this.options);
    const labels = new Tensor(guard(() => native.tensorFromBuffer(BigInt64Array.from(this.classes.slice(start, end), BigInt), [end - start], "int64")));
    return { start, inputs: [inputs], labels };
  }
}

/** @internal Opens `data` (named `what` in messages) for reading. */
export async function openDataset(data: TrainingData, what: string): Promise<Dataset> {
  if (data === null || typeof data !== "object") throw bad(what, "expected { inputs, labels }, { npz }, or { imageFolder }");
  if ("imageFolder" in data) {
    if (typeof data.imageFolder !== "string") throw bad(`${what}.imageFolder`, "expected a folder path");
    return ImageFolderDataset.open(data.imageFolder, data.image ?? {}, what);
  }
  if ("npz" in data) {
    if (typeof data.npz !== "string") throw bad(`${what}.npz`, "expected a .npz file path");
    const keys = Array.isArray(data.inputs) ? data.inputs : data.inputs !== undefined ? [data.inputs] : undefined;
    const open = async (key: string) => RowReader.open(data.npz, key);
    const tryKeys = async (candidates: string[], role: string): Promise<RowReader | undefined> => {
      for (const k of candidates)
        try {
          return await open(k);
        } catch (e) {
          if (!/has no array/.test((e as Error).message)) throw e;
        }
      if (role === "labels") return undefined;
      throw bad(`${what}.inputs`, `'${data.npz}' has none of the arrays ${candidates.join(", ")}; name the inputs' key`);
    };
    const inputs = keys ? await Promise.all(keys.map(open)) : [(await tryKeys(["inputs", "x"], "inputs"))!];
    const labels = data.labels !== undefined ? await open(data.labels) : await tryKeys(["labels", "y"], "labels");
    return new FileDataset(inputs, labels, what);
  }
  if (!("inputs" in data)) throw bad(what, "expected { inputs, labels }, { npz }, or { imageFolder }");
  const list = Array.isArray(data.inputs) ? data.inputs : [data.inputs];
  if (list.length > 0 && list.every((x) => typeof x === "string")) {
    if (data.labels !== undefined && typeof data.labels !== "string") throw bad(`${what}.labels`, "expected a .npy path beside .npy inputs");
    const inputs = await Promise.all((list as string[]).map((p) => RowReader.open(p)));
    const labels = data.labels !== undefined ? await RowReader.open(data.labels as string) : undefined;
    return new FileDataset(inputs, labels, what);
  }
  return new TensorDataset(list as Tensor[], data.labels as Tensor | undefined, what);
}
