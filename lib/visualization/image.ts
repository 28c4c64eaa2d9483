// Pictures of image attributions, after the reference's visualize_image_attr:
// the same methods, signs, normalisation and default colours, rendered to PNG
// with sharp instead of a matplotlib figure. One attribution pixel is one
// picture pixel (times `scale`); titles and colour bars are SVG text composited
// by sharp with the machine's fonts.
import sharp = require("sharp"); // works with and without esModuleInterop (sharp is `export =`)
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import { getColormap, Colormap, RGB } from "./colormaps";

export type ImageVisualizationMethod = "heat_map" | "blended_heat_map" | "original_image" | "masked_image" | "alpha_scaling";
export type VisualizeSign = "all" | "positive" | "negative" | "absolute_value";
export const IMAGE_METHODS: readonly ImageVisualizationMethod[] = ["heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling"];
export const SIGNS: readonly VisualizeSign[] = ["all", "positive", "negative", "absolute_value"];

/** An image-shaped array: a Tensor, or values with a shape. [C, H, W], [H, W] or [1, C, H, W]. */
export type ImageLike = Tensor | { data: ArrayLike<number>; shape: number[] };

export interface VisualizeImageOptions {
  /** Default "heat_map". */
  method?: ImageVisualizationMethod;
  /** Default "absolute_value". `all` cannot be shown by masked_image or alpha_scaling. */
  sign?: VisualizeSign;
  /** The top percent of the total attribution that saturates the colours (default 2). */
  outlierPerc?: number;
  /** A colour map name, a list of "#rrggbb" stops, or a function; default by sign (positive Greens, negative Reds, absolute_value Blues, all red-white-green). */
  cmap?: string | string[] | Colormap;
  /** The heat map's opacity over the grey image in blended_heat_map (default 0.5). */
  alphaOverlay?: number;
  /** A colour bar under the picture, for methods that draw a heat map. */
  showColorbar?: boolean;
  /** A title above the picture. */
  title?: string;
  /** Picture pixels per attribution pixel (an integer, default 1). */
  scale?: number;
}

interface Planar {
  data: Float64Array; // channel-first
  c: number;
  h: number;
  w: number;
}

function bad(argument: string, message: string, code: "ERR_BAD_OPTION" | "ERR_BAD_SHAPE" = "ERR_BAD_OPTION"): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, code);
}

function planar(x: ImageLike, name: string): Planar {
  let data: ArrayLike<number | bigint>, shape: number[];
  if (x instanceof Tensor) {
    const t = x.device === "cpu" ? x : x.to("cpu");
    data = t.data() as ArrayLike<number | bigint>;
    shape = t.shape;
  } else if (x && typeof x === "object" && Array.isArray(x.shape) && x.data && typeof x.data.length === "number") {
    data = x.data;
    shape = x.shape;
  } else throw bad(name, "expected a Tensor or { data, shape }");
  let s = shape.slice();
  if (s.length === 4 && s[0] === 1) s = s.slice(1);
  if (s.length === 2) s = [1, ...s];
  if (s.length !== 3) throw bad(name, `expected shape [C, H, W], [H, W] or [1, C, H, W]; got [${shape}]`, "ERR_BAD_SHAPE");
  const n = s[0] * s[1] * s[2];
  if (data.length !== n) throw bad(name, `shape [${shape}] needs ${n} values, got ${data.length}`, "ERR_BAD_SHAPE");
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(data[i]);
  return { data: out, c: s[0], h: s[1], w: s[2] };
}

/**
 * The value below which lies (100 - percentile)% of the total: sort ascending,
 * take the first value whose running sum reaches percentile% of the sum.
 */
export function cumulativeSumThreshold(values: ArrayLike<number>, percentile: number): number {
  const sorted = Float64Array.from(values).sort();
  let total = 0;
  for (const v of sorted) total += v;
  const goal = total * 0.01 * percentile;
  let run = 0;
  for (const v of sorted) {
    run += v;
    if (run >= goal) return v;
  }
  return sorted[sorted.length - 1];
}

/**
 * The reference's normalisation: attributions summed over channels, the
 * chosen sign kept, divided by the threshold that leaves outlierPerc percent of
 * the total above it, clipped to [-1, 1] (all) or [0, 1] (other signs; the
 * negative sign's magnitudes). An attribution with nothing of the sign gives zeros.
 */
export function normalizeAttribution(attribution: ImageLike, sign: VisualizeSign = "absolute_value", outlierPerc = 2): { values: Float64Array; height: number; width: number } {
  checkSign(sign);
  if (typeof outlierPerc !== "number" || !(outlierPerc >= 0 && outlierPerc <= 100)) throw bad("outlierPerc", `expected a number from 0 to 100; got ${JSON.stringify(outlierPerc)}`);
  const a = planar(attribution, "attribution");
  const hw = a.h * a.w;
  const sum = new Float64Array(hw);
  for (let c = 0; c < a.c; c++) for (let i = 0; i < hw; i++) sum[i] += a.data[c * hw + i];
  const kept = new Float64Array(hw);
  for (let i = 0; i < hw; i++) {
    const v = sum[i];
    kept[i] = sign === "all" ? v : sign === "positive" ? Math.max(v, 0) : sign === "negative" ? Math.min(v, 0) : Math.abs(v);
  }
  const magnitudes = kept.map(Math.abs);
  let threshold = cumulativeSumThreshold(magnitudes, 100 - outlierPerc);
  if (sign === "negative") threshold = -threshold; // negatives / negative threshold: magnitudes in [0, 1]
  const values = new Float64Array(hw);
  if (threshold !== 0 && Number.isFinite(threshold)) for (let i = 0; i < hw; i++) values[i] = Math.max(-1, Math.min(1, kept[i] / threshold));
  return { values, height: a.h, width: a.w };
}

function checkSign(sign: unknown): asserts sign is VisualizeSign {
  if (!SIGNS.includes(sign as VisualizeSign)) throw bad("sign", `expected one of ${SIGNS.join(", ")}; got ${JSON.stringify(sign)}`);
}

function defaultCmap(sign: VisualizeSign): string {
  return { all: "RdWhGn", positive: "Greens", negative: "Reds", absolute_value: "Blues" }[sign];
}

/** The image as 0-255 values, channel-first: scaled by 255 when its maximum is at most 1, then clipped and truncated. */
let warnedNormalised = false;
function imageBytes(img: Planar): Planar {
  let max = -Infinity, min = Infinity;
  for (const v of img.data) (max = Math.max(max, v)), (min = Math.min(min, v));
  // Values below 0 come from a mean/std normalisation: drawn as they are they clip to black.
  if (min < 0 && !warnedNormalised) {
    warnedNormalised = true;
    process.emitWarning(
      "image: has values below 0, as an image normalised with mean/std does; the picture clips them to black. " +
        "Draw it over the unnormalised image (loadImage without mean and std), which the model's input was made from.",
      { code: "TORCHEXPLAIN_NORMALISED_IMAGE" },
    );
  }
  const k = max <= 1 ? 255 : 1;
  return { ...img, data: img.data.map((v) => Math.max(0, Math.min(255, Math.trunc(v * k)))) };
}

interface Panel {
  /** Interleaved pixels, `channels` per pixel. */
  pixels: Uint8Array;
  channels: 3 | 4;
  width: number;
  height: number;
  /** The colour map and range when the panel draws a heat map (for the colour bar). */
  heat?: { cmap: Colormap; vmin: number; vmax: number };
}

const KNOWN_OPTIONS = new Set(["method", "sign", "outlierPerc", "cmap", "alphaOverlay", "showColorbar", "title", "scale"]);

function checkOptions(options: VisualizeImageOptions): void {
  if (options === null || typeof options !== "object") throw bad("options", "expected an object");
  for (const k of Object.keys(options)) if (!KNOWN_OPTIONS.has(k)) throw bad(k, `unknown option (options: ${[...KNOWN_OPTIONS].join(", ")})`);
  if (options.method !== undefined && !IMAGE_METHODS.includes(options.method))
    throw bad("method", `expected one of ${IMAGE_METHODS.join(", ")}; got ${JSON.stringify(options.method)}`);
  if (options.sign !== undefined) checkSign(options.sign);
  if (options.alphaOverlay !== undefined && !(typeof options.alphaOverlay === "number" && options.alphaOverlay >= 0 && options.alphaOverlay <= 1))
    throw bad("alphaOverlay", `expected a number from 0 to 1; got ${JSON.stringify(options.alphaOverlay)}`);
  if (options.scale !== undefined && !(Number.isInteger(options.scale) && options.scale >= 1 && options.scale <= 256))
    throw bad("scale", `expected an integer from 1 to 256; got ${JSON.stringify(options.scale)}`);
  if (options.title !== undefined && typeof options.title !== "string") throw bad("title", "expected a string");
}

/** One picture at attribution resolution (before scaling and decorations). */
function renderPanel(attribution: ImageLike, image: ImageLike | undefined, options: VisualizeImageOptions): Panel {
  const method = options.method ?? "heat_map";
  const sign = options.sign ?? "absolute_value";
  const outlierPerc = options.outlierPerc ?? 2;
  const { values: norm, height: h, width: w } = normalizeAttribution(attribution, sign, outlierPerc);
  const hw = h * w;
  let img: Planar | undefined;
  if (image !== undefined && image !== null) {
    img = imageBytes(planar(image, "image"));
    if (img.h !== h || img.w !== w) throw bad("image", `is ${img.h}×${img.w} but the attribution is ${h}×${w}`, "ERR_BAD_SHAPE");
    if (img.c !== 1 && img.c !== 3) throw bad("image", `expected 1 or 3 channels; got ${img.c}`, "ERR_BAD_SHAPE");
  } else if (method !== "heat_map") throw bad("image", `the original image is needed for method '${method}' (only heat_map draws without it)`);
  if ((method === "masked_image" || method === "alpha_scaling") && sign === "all")
    throw bad("sign", `'all' cannot be shown by ${method} (it has no colour for the sign); use positive, negative or absolute_value`);
  const cmap = getColormap(options.cmap ?? defaultCmap(sign));
  const [vmin, vmax] = sign === "all" ? [-1, 1] : [0, 1];
  const rgbAt = (i: number): RGB => (img!.c === 1 ? [img!.data[i], img!.data[i], img!.data[i]] : [img!.data[i], img!.data[hw + i], img!.data[2 * hw + i]]);
  const heatAt = (i: number): RGB => cmap((norm[i] - vmin) / (vmax - vmin));
  if (method === "alpha_scaling") {
    const px = new Uint8Array(hw * 4);
    for (let i = 0; i < hw; i++) {
      px.set(rgbAt(i), i * 4);
      px[i * 4 + 3] = Math.max(0, Math.min(255, Math.trunc(norm[i] * 255)));
    }
    return { pixels: px, channels: 4, width: w, height: h };
  }
  const px = new Uint8Array(hw * 3);
  if (method === "heat_map") for (let i = 0; i < hw; i++) px.set(heatAt(i), i * 3);
  else if (method === "original_image") for (let i = 0; i < hw; i++) px.set(rgbAt(i), i * 3);
  else if (method === "masked_image") for (let i = 0; i < hw; i++) px.set(rgbAt(i).map((v) => Math.max(0, Math.min(255, Math.trunc(v * norm[i])))), i * 3);
  else {
    // blended_heat_map: the channel mean in grey, stretched to its own range
    // (as an autoscaled grey image), under the heat map at alphaOverlay.
    const alpha = options.alphaOverlay ?? 0.5;
    const grey = new Float64Array(hw);
    for (let i = 0; i < hw; i++) {
      let s = 0;
      for (let c = 0; c < img!.c; c++) s += img!.data[c * hw + i];
      grey[i] = s / img!.c;
    }
    let lo = Infinity, hi = -Infinity;
    for (const g of grey) { lo = Math.min(lo, g); hi = Math.max(hi, g); }
    for (let i = 0; i < hw; i++) {
      const g = hi > lo ? ((grey[i] - lo) / (hi - lo)) * 255 : 0;
      const heat = heatAt(i);
      for (let k = 0; k < 3; k++) px[i * 3 + k] = Math.round(alpha * heat[k] + (1 - alpha) * g);
    }
  }
  const drawsHeat = method === "heat_map" || method === "blended_heat_map";
  return { pixels: px, channels: 3, width: w, height: h, heat: drawsHeat ? { cmap, vmin, vmax } : undefined };
}

function upscale(p: Panel, k: number): Panel {
  if (k === 1) return p;
  const W = p.width * k, H = p.height * k, ch = p.channels;
  const out = new Uint8Array(W * H * ch);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const src = (Math.floor(y / k) * p.width + Math.floor(x / k)) * ch;
      out.set(p.pixels.subarray(src, src + ch), (y * W + x) * ch);
    }
  return { ...p, pixels: out, width: W, height: H };
}

const FONT = 13; // px
const TITLE_H = 22;
const BAR_H = 10;
const BAR_BLOCK = 6 + BAR_H + 16; // gap, bar, tick labels

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]!);
}

/** A rough text width for DejaVu Sans-like fonts: enough room that titles are not cut. */
function textWidth(s: string): number {
  return Math.ceil(s.length * FONT * 0.62) + 8;
}

interface Framed {
  composites: sharp.OverlayOptions[];
  width: number;
  height: number;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** A panel placed with its title above and its colour bar (or the bar's empty room) below. */
async function frame(p: Panel, title: string | undefined, colorbar: boolean, minWidth = 0): Promise<Framed> {
  const width = Math.max(p.width, minWidth, title ? textWidth(title) : 0, colorbar ? 80 : 0);
  const top = title ? TITLE_H : 0;
  const height = top + p.height + (colorbar ? BAR_BLOCK : 0);
  const left = Math.floor((width - p.width) / 2);
  const composites: sharp.OverlayOptions[] = [
    { input: Buffer.from(p.pixels.buffer, p.pixels.byteOffset, p.pixels.byteLength), raw: { width: p.width, height: p.height, channels: p.channels }, top, left },
  ];
  let svg = "";
  if (title) svg += `<text x="${width / 2}" y="${TITLE_H - 7}" font-family="DejaVu Sans, sans-serif" font-size="${FONT}" text-anchor="middle" fill="#000">${escapeXml(title)}</text>`;
  if (colorbar && p.heat) {
    // The bar itself is drawn from the colour map pixel by pixel, so its colours are exact.
    const barW = Math.max(40, Math.min(width - 16, Math.max(p.width, 80)));
    const barLeft = Math.floor((width - barW) / 2);
    const barTop = top + p.height + 6;
    const bar = new Uint8Array(barW * BAR_H * 3);
    for (let x = 0; x < barW; x++) {
      const c = p.heat.cmap(x / Math.max(1, barW - 1));
      for (let y = 0; y < BAR_H; y++) bar.set(c, (y * barW + x) * 3);
    }
    composites.push({ input: Buffer.from(bar.buffer), raw: { width: barW, height: BAR_H, channels: 3 }, top: barTop, left: barLeft });
    const ticks = [p.heat.vmin, (p.heat.vmin + p.heat.vmax) / 2, p.heat.vmax];
    svg += `<rect x="${barLeft - 0.5}" y="${barTop - 0.5}" width="${barW + 1}" height="${BAR_H + 1}" fill="none" stroke="#000" stroke-width="1"/>`;
    ticks.forEach((t, i) => {
      const x = barLeft + (i * (barW - 1)) / 2;
      const anchor = i === 0 ? "start" : i === 2 ? "end" : "middle";
      svg += `<text x="${x}" y="${barTop + BAR_H + 13}" font-family="DejaVu Sans, sans-serif" font-size="11" text-anchor="${anchor}" fill="#000">${fmt(t)}</text>`;
    });
  }
  if (svg) composites.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg}</svg>`), top: 0, left: 0 });
  return { composites, width, height };
}

async function toPng(parts: Framed[], gap: number): Promise<Buffer> {
  const width = parts.reduce((s, f) => s + f.width, 0) + gap * (parts.length - 1);
  const height = Math.max(...parts.map((f) => f.height));
  const composites: sharp.OverlayOptions[] = [];
  let x = 0;
  for (const f of parts) {
    for (const c of f.composites) composites.push({ ...c, left: (c.left ?? 0) + x });
    x += f.width + gap;
  }
  return sharp({ create: { width, height, channels: 3, background: "#ffffff" } }).composite(composites).removeAlpha().png().toBuffer();
}

/**
 * @internal Rows of titled images as one PNG (the influence grid): each image
 * [C, H, W] (1 or 3 channels) stretched to its own value range, scaled
 * `scale` times, with its title above; `header` a line of text at the top.
 */
export async function imageGrid(rows: { image: ImageLike; title: string }[][], scale: number, header?: string): Promise<Buffer> {
  const gap = 8;
  const framedRows: Framed[][] = [];
  for (const row of rows) {
    const framed: Framed[] = [];
    for (const cell of row) {
      const img = planar(cell.image, "image");
      let lo = Infinity, hi = -Infinity;
      for (const v of img.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const stretched = { data: img.data.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 0)), shape: [img.c, img.h, img.w] };
      const panel = upscale(renderPanel(stretched, stretched, { method: "original_image" }), scale);
      framed.push(await frame(panel, cell.title, false, 0));
    }
    framedRows.push(framed);
  }
  const columns = Math.max(...framedRows.map((r) => r.length));
  const colWidth = Array.from({ length: columns }, (_, c) => Math.max(...framedRows.map((r) => r[c]?.width ?? 0)));
  const rowHeight = framedRows.map((r) => Math.max(...r.map((f) => f.height)));
  const top = header ? TITLE_H + 4 : 0;
  const width = colWidth.reduce((a, b) => a + b, 0) + gap * (columns + 1);
  const height = top + rowHeight.reduce((a, b) => a + b, 0) + gap * (framedRows.length + 1);
  const composites: sharp.OverlayOptions[] = [];
  let y = top + gap;
  framedRows.forEach((row, r) => {
    let x = gap;
    row.forEach((f, c) => {
      for (const o of f.composites) composites.push({ ...o, left: (o.left ?? 0) + x + Math.floor((colWidth[c] - f.width) / 2), top: (o.top ?? 0) + y });
      x += colWidth[c] + gap;
    });
    y += rowHeight[r] + gap;
  });
  if (header)
    composites.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top}"><text x="${gap}" y="${TITLE_H - 5}" font-family="DejaVu Sans, sans-serif" font-size="${FONT}" fill="#000">${escapeXml(header)}</text></svg>`), top: 0, left: 0 });
  return sharp({ create: { width, height, channels: 3, background: "#ffffff" } }).composite(composites).removeAlpha().png().toBuffer();
}

/**
 * A picture of an image attribution as PNG bytes: `method` draws it as a heat
 * map, a heat map over the grey image, the image itself, the image masked or
 * made transparent by the attribution. Attribution and image are as the model
 * sees them ([C, H, W] or [H, W]; the image with values in [0, 1] or 0-255,
 * before any mean/std normalisation). Without a title or colour bar the PNG is
 * H×W (times `scale`), RGBA for alpha_scaling, RGB otherwise.
 */
export async function visualizeImageAttr(attribution: ImageLike, image?: ImageLike | null, options: VisualizeImageOptions = {}): Promise<Buffer> {
  checkOptions(options);
  const panel = upscale(renderPanel(attribution, image ?? undefined, options), options.scale ?? 1);
  if (!options.title && !options.showColorbar)
    return sharp(Buffer.from(panel.pixels.buffer, panel.pixels.byteOffset, panel.pixels.byteLength), { raw: { width: panel.width, height: panel.height, channels: panel.channels } }).png().toBuffer();
  return toPng([await frame(panel, options.title, !!options.showColorbar)], 0);
}

export interface VisualizeMultipleOptions extends Omit<VisualizeImageOptions, "method" | "sign" | "title"> {
  /** One title per picture. */
  titles?: string[];
}

/** Several methods and signs side by side in one PNG (one picture per method/sign pair, with its title). */
export async function visualizeImageAttrMultiple(
  attribution: ImageLike,
  image: ImageLike | null | undefined,
  methods: ImageVisualizationMethod[],
  signs: VisualizeSign[],
  options: VisualizeMultipleOptions = {},
): Promise<Buffer> {
  const { titles, ...common } = options ?? {};
  if (!Array.isArray(methods) || methods.length === 0) throw bad("methods", "expected a non-empty array of methods");
  if (!Array.isArray(signs) || signs.length !== methods.length) throw bad("signs", `expected ${methods.length} signs (one per method); got ${Array.isArray(signs) ? signs.length : JSON.stringify(signs)}`);
  if (titles !== undefined && (!Array.isArray(titles) || titles.length !== methods.length)) throw bad("titles", `expected ${methods.length} titles (one per method)`);
  checkOptions(common);
  const frames: Framed[] = [];
  for (let i = 0; i < methods.length; i++) {
    const o = { ...common, method: methods[i], sign: signs[i] };
    checkOptions(o);
    const panel = upscale(renderPanel(attribution, image ?? undefined, o), common.scale ?? 1);
    // Every picture keeps the colour bar's room when any has one, so they line up.
    frames.push(await frame(panel, titles?.[i] ?? (titles ? "" : undefined), !!common.showColorbar));
  }
  if (titles) {
    // The same title strip for all: frames without a title are shifted down.
    const withTitle = frames.map((f, i) => (titles[i] ? f : { ...f, composites: f.composites.map((c) => ({ ...c, top: (c.top ?? 0) + TITLE_H })), height: f.height + TITLE_H }));
    return toPng(withTitle, 8);
  }
  return toPng(frames, 8);
}
