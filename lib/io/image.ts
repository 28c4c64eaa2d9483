// Images (PNG, JPEG, WebP, and whatever else sharp decodes) into [1, C, H, W]
// float32 tensors, as torchvision's ToTensor + Normalize make them.
import * as fs from "fs";
import * as path from "path";
import sharp = require("sharp"); // works with and without esModuleInterop (sharp is `export =`)
import { Tensor, tensor } from "../tensor";
import { TorchExplainError } from "../errors";

export interface ImageOptions {
  /** Resize to this size: a number for a square, or [height, width]. Default: the image's own size. */
  size?: number | [number, number];
  /**
   * How a resize to `size` fits: "fill" (default: stretch to the size), "cover" (keep
   * the aspect ratio, crop the centre) or "contain" (keep it, pad with black).
   */
  fit?: "fill" | "cover" | "contain";
  /**
   * Resize the shorter side to this many pixels, keeping the aspect ratio
   * (torchvision's Resize(n)); with `crop`, then cut the centre out (CenterCrop):
   * `{ resize: 256, crop: 224 }` is the usual ImageNet preprocessing.
   */
  resize?: number;
  /** Cut out the centre, a number for a square or [height, width] (after `resize` when given). */
  crop?: number | [number, number];
  /** Channels of the result: 1 (grey), 3 (RGB, default) or 4 (RGBA). */
  channels?: 1 | 3 | 4;
  /** Subtracted per channel after scaling to [0, 1] (a number applies to every channel). Default 0. */
  mean?: number | number[];
  /** Divides per channel after the mean. Default 1. */
  std?: number | number[];
}

/** The file extensions loadImageFolder() reads. */
export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"];

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

function perChannel(value: number | number[] | undefined, fallback: number, channels: number, name: string): number[] {
  if (value === undefined) return new Array(channels).fill(fallback);
  const list = typeof value === "number" ? new Array(channels).fill(value) : value;
  if (!Array.isArray(list) || list.length !== channels || list.some((v) => typeof v !== "number" || !Number.isFinite(v)))
    throw bad(name, `expected a number or ${channels} numbers (one per channel); got ${JSON.stringify(value)}`);
  if (name === "std" && list.some((v) => v === 0)) throw bad(name, "must not be 0");
  return list;
}

function pair(v: number | [number, number] | undefined, name: string): [number, number] | undefined {
  if (v === undefined) return undefined;
  const p = typeof v === "number" ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < 1))
    throw bad(name, `expected a positive integer or [height, width]; got ${JSON.stringify(v)}`);
  return p as [number, number];
}

function checkOptions(options: ImageOptions): { channels: 1 | 3 | 4; size?: [number, number]; crop?: [number, number] } {
  if (options === null || typeof options !== "object") throw bad("options", "expected an object");
  const known = new Set(["size", "fit", "resize", "crop", "channels", "mean", "std"]);
  for (const k of Object.keys(options)) if (!known.has(k)) throw bad(k, `unknown option (image options: ${[...known].join(", ")})`);
  const channels = options.channels ?? 3;
  if (channels !== 1 && channels !== 3 && channels !== 4) throw bad("channels", `expected 1, 3 or 4; got ${JSON.stringify(options.channels)}`);
  if (options.fit !== undefined && !["fill", "cover", "contain"].includes(options.fit)) throw bad("fit", `expected "fill", "cover" or "contain"; got ${JSON.stringify(options.fit)}`);
  if (options.resize !== undefined && !(Number.isInteger(options.resize) && options.resize >= 1)) throw bad("resize", `expected a positive integer (the shorter side); got ${JSON.stringify(options.resize)}`);
  if (options.resize !== undefined && options.size !== undefined) throw bad("resize", "give either size (both sides) or resize (the shorter side), not both");
  return { channels, size: pair(options.size, "size"), crop: pair(options.crop, "crop") };
}

/** Decodes an image into channel-first float values in [0, 1], normalised. */
async function decode(source: string | Uint8Array, options: ImageOptions): Promise<{ data: Float32Array; shape: [number, number, number] }> {
  const { channels, size, crop } = checkOptions(options);
  const mean = perChannel(options.mean, 0, channels, "mean");
  const std = perChannel(options.std, 1, channels, "std");
  let input: string | Buffer;
  if (source instanceof Uint8Array) {
    if (source.byteLength === 0) throw bad("source", "the image buffer is empty (0 bytes)");
    input = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }
  else if (typeof source === "string") {
    const st = await fs.promises.stat(source).catch(() => undefined);
    if (!st) throw bad("path", `no such file: ${source}`);
    if (!st.isFile()) throw bad("path", `not a regular file: ${source}`);
    input = source;
  } else throw bad("source", "expected a file path or a Buffer");
  let img: sharp.Sharp;
  try {
    img = sharp(input, { failOn: "error" }).rotate(); // EXIF orientation, as viewers show it
  } catch (e) {
    throw bad(typeof source === "string" ? "path" : "source", `cannot decode ${typeof source === "string" ? `'${source}'` : "the buffer"} as an image (${(e as Error).message})`);
  }
  if (size) img = img.resize(size[1], size[0], { fit: options.fit ?? "fill", background: { r: 0, g: 0, b: 0, alpha: 1 } });
  if (options.resize !== undefined || crop) {
    // The shape after orientation, resize of the shorter side, then the centre crop (torchvision's rounding).
    const meta = await sharp(input).metadata().catch((e: Error) => {
      throw bad(typeof source === "string" ? "path" : "source", `cannot decode ${typeof source === "string" ? `'${source}'` : "the buffer"} as an image (${e.message})`);
    });
    let w = meta.width ?? 0, h = meta.height ?? 0;
    if ((meta.orientation ?? 1) >= 5) [w, h] = [h, w];
    if (size) [h, w] = size;
    if (options.resize !== undefined) {
      const n = options.resize;
      [h, w] = h <= w ? [n, Math.floor((n * w) / h)] : [Math.floor((n * h) / w), n];
      img = img.resize(w, h, { fit: "fill" });
    }
    if (crop) {
      const [ch, cw] = crop;
      if (ch > h || cw > w) throw bad("crop", `${ch}×${cw} is larger than the image (${h}×${w} after resizing)`);
      // Called after resize, sharp extracts from the resized image.
      img = img.extract({ left: Math.round((w - cw) / 2), top: Math.round((h - ch) / 2), width: cw, height: ch });
    }
  }
  if (channels === 1) img = img.grayscale();
  else if (channels === 4) img = img.ensureAlpha();
  else img = img.removeAlpha().toColourspace("srgb");
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await img.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    const what = typeof source === "string" ? `'${source}'` : "the buffer";
    throw bad(typeof source === "string" ? "path" : "source", `cannot decode ${what} as an image (${(e as Error).message})`);
  }
  const { width: w, height: h, channels: got } = raw.info;
  // grayscale() may still deliver an alpha channel; keep the first `channels`.
  const out = new Float32Array(channels * h * w);
  const px = raw.data;
  for (let c = 0; c < channels; c++) {
    const m = mean[c], s = std[c], base = c * h * w;
    for (let i = 0; i < h * w; i++) out[base + i] = (px[i * got + c] / 255 - m) / s;
  }
  return { data: out, shape: [channels, h, w] };
}

/** Reads an image (a path or the file's bytes) into a float32 Tensor [1, C, H, W], values in [0, 1] before mean and std. */
export async function loadImage(source: string | Uint8Array, options: ImageOptions = {}): Promise<Tensor> {
  const { data, shape } = await decode(source, options);
  return tensor(data, [1, ...shape], "float32");
}

export interface ImageBatch {
  /** [N, C, H, W] float32. */
  inputs: Tensor;
  /** The file names, in the batch's order (sorted by name). */
  files: string[];
}

/** The image files of a folder, sorted by name (not recursive). */
export async function listImages(dir: string): Promise<string[]> {
  const entries = await fs.promises.readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw bad("dir", e.code === "ENOENT" ? `no such folder: ${dir}` : e.code === "ENOTDIR" ? `not a folder: ${dir}` : `cannot read ${dir}: ${e.message}`);
  });
  return entries
    .filter((e) => e.isFile() && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
    .map((e) => e.name)
    .sort();
}

/**
 * Reads a folder's images as one batch [N, C, H, W]. Without `size`, every
 * image must have the same size.
 */
export async function loadImageFolder(dir: string, options: ImageOptions = {}): Promise<ImageBatch> {
  const files = await listImages(dir);
  if (files.length === 0) throw bad("dir", `no images (${IMAGE_EXTENSIONS.join(", ")}) in ${dir}`);
  return { inputs: await loadImageFiles(files.map((f) => path.join(dir, f)), options), files };
}

/** Reads the given image files as one batch [N, C, H, W]. */
export async function loadImageFiles(paths: string[], options: ImageOptions = {}): Promise<Tensor> {
  if (paths.length === 0) throw bad("paths", "no image files given");
  const decoded: { data: Float32Array; shape: [number, number, number] }[] = [];
  for (const p of paths) {
    const d = await decode(p, options);
    if (decoded.length && d.shape.join() !== decoded[0].shape.join())
      throw bad("size", `${path.basename(p)} is ${d.shape[2]}×${d.shape[1]} but ${path.basename(paths[0])} is ${decoded[0].shape[2]}×${decoded[0].shape[1]}; pass size to resize them all`);
    decoded.push(d);
  }
  const per = decoded[0].data.length;
  const all = new Float32Array(per * decoded.length);
  decoded.forEach((d, i) => all.set(d.data, i * per));
  return tensor(all, [decoded.length, ...decoded[0].shape], "float32");
}
