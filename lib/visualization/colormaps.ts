// Colour maps as 256-entry lookup tables, sampled the way matplotlib samples
// its colour maps (value v in [0, 1] -> entry floor(v * 256), the last one for 1).
import { TorchExplainError } from "../errors";

export type RGB = [number, number, number];

/** A colour map: a value in [0, 1] to an RGB colour (0-255 each). */
export interface Colormap {
  readonly name: string;
  (value: number): RGB;
}

function hex(h: string): RGB {
  const m = /^#?([0-9a-f]{6})$/i.exec(h.trim());
  if (!m) throw new TorchExplainError(`cmap: '${h}' is not a colour (expected #rrggbb)`, "ERR_BAD_OPTION");
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// The ColorBrewer sequential schemes (9 classes) that matplotlib's Greens,
// Reds, Blues and Greys are built from; the diverging map of the reference's
// `all` sign runs red -> white -> green (#008000, matplotlib's "green").
const STOPS: Record<string, string[]> = {
  Greens: ["#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476", "#41ab5d", "#238b45", "#006d2c", "#00441b"],
  Reds: ["#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d"],
  Blues: ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"],
  Greys: ["#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"],
  gray: ["#000000", "#ffffff"],
  RdWhGn: ["#ff0000", "#ffffff", "#008000"],
};

/** The names cmap accepts (besides a list of "#rrggbb" stops). */
export const COLORMAPS = Object.keys(STOPS);

const cache = new Map<string, Colormap>();

/** A colour map from evenly spaced colour stops, linearly interpolated, as a 256-entry table. */
export function linearColormap(name: string, stops: string[]): Colormap {
  if (!Array.isArray(stops) || stops.length < 2) throw new TorchExplainError("cmap: a colour list needs at least 2 colours", "ERR_BAD_OPTION");
  const colors = stops.map(hex);
  const lut: RGB[] = [];
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (colors.length - 1);
    const k = Math.min(colors.length - 2, Math.floor(x));
    const f = x - k;
    lut.push(colors[k].map((c, j) => Math.round(c + (colors[k + 1][j] - c) * f)) as RGB);
  }
  const map = ((v: number) => lut[Number.isNaN(v) ? 0 : Math.max(0, Math.min(255, Math.floor(v * 256)))]) as Colormap;
  Object.defineProperty(map, "name", { value: name });
  return map;
}

/** A colour map by name ("Greens", "Reds", "Blues", "Greys", "gray", "RdWhGn") or from a list of "#rrggbb" stops. */
export function getColormap(cmap: string | string[] | Colormap): Colormap {
  if (typeof cmap === "function") return cmap;
  if (Array.isArray(cmap)) return linearColormap(cmap.join("-"), cmap);
  if (typeof cmap !== "string" || !(cmap in STOPS))
    throw new TorchExplainError(`cmap: unknown colour map ${JSON.stringify(cmap)} (known: ${COLORMAPS.join(", ")}, or a list of "#rrggbb" colours)`, "ERR_BAD_OPTION");
  let map = cache.get(cmap);
  if (!map) cache.set(cmap, (map = linearColormap(cmap, STOPS[cmap])));
  return map;
}
