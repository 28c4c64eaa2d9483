// What LLM attribution returns, and its pictures: the output x input token
// heat map and the sequence bars as PNGs (SVG drawn here, rasterised by
// sharp), and a self-contained HTML page.
import sharp = require("sharp"); // sharp is `export =`
import { attributionColor } from "../visualization/text";

function esc(s: unknown): string {
  return String(s).replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function shorten(t: string, width = 50): string {
  return t.length > width ? `${t.slice(0, width - 3)}...` : t;
}

// The reference's diverging palette, negative (red) to positive (blue).
const PALETTE = ["#93003a", "#d0365b", "#f57789", "#ffbdc3", "#ffffff", "#a4d6e1", "#73a3ca", "#4772b3", "#00429d"];
function hex(c: string): number[] {
  return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
}
function diverging(v: number, max: number): { fill: string; dark: boolean } {
  const x = max > 0 ? Math.max(-1, Math.min(1, v / max)) : 0;
  const pos = ((x + 1) / 2) * (PALETTE.length - 1);
  const i = Math.min(PALETTE.length - 2, Math.floor(pos));
  const a = hex(PALETTE[i]), b = hex(PALETTE[i + 1]), f = pos - i;
  const rgb = a.map((c, k) => Math.round(c + (b[k] - c) * f));
  const norm = (x + 1) / 2;
  return { fill: `rgb(${rgb.join(",")})`, dark: !(norm > 0.2 && norm < 0.8) };
}

const FONT = `font-family="DejaVu Sans, Arial, sans-serif"`;

async function png(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Attributions of a prompt's features (the reference's LLMAttributionResult). */
export class LLMAttributionResult {
  constructor(
    /** One attribution per input feature, for the whole target. */
    readonly seqAttr: number[],
    /** One row per output token (null for Lime and KernelShap, which explain the whole target only). */
    readonly tokenAttr: number[][] | null,
    /** The features: a template's values, or the prompt's tokens. */
    readonly inputTokens: string[],
    /** The target's tokens, readable. */
    readonly outputTokens: string[],
  ) {}

  /** seqAttr keyed by input token. */
  get seqAttrDict(): Record<string, number> {
    return Object.fromEntries(this.inputTokens.map((t, i) => [t, this.seqAttr[i]]));
  }

  /** Output x input heat map, each cell annotated (PNG). */
  async plotTokenAttr(): Promise<Buffer> {
    if (!this.tokenAttr)
      throw new Error("tokenAttr is null (the method attributes the whole target only): use plotSeqAttr()");
    const rows = this.tokenAttr.length, cols = this.inputTokens.length;
    const max = Math.max(1e-12, ...this.tokenAttr.flat().map(Math.abs));
    const cw = 80, ch = 34;
    const left = 20 + 8 * Math.max(4, ...this.outputTokens.map((t) => Math.min(30, t.length)));
    const top = 30 + 6 * Math.max(4, ...this.inputTokens.map((t) => Math.min(30, shorten(t).length)));
    const width = left + cols * cw + 110, height = top + rows * ch + 30;
    const parts: string[] = [`<rect width="100%" height="100%" fill="white"/>`];
    for (let j = 0; j < cols; j++) {
      const x = left + j * cw + cw / 2;
      parts.push(`<text x="${x}" y="${top - 8}" font-size="13" ${FONT} transform="rotate(-30 ${x} ${top - 8})">${esc(shorten(this.inputTokens[j]))}</text>`);
    }
    for (let i = 0; i < rows; i++) {
      const y = top + i * ch;
      parts.push(`<text x="${left - 8}" y="${y + ch / 2 + 5}" font-size="13" text-anchor="end" ${FONT}>${esc(this.outputTokens[i] ?? "")}</text>`);
      for (let j = 0; j < cols; j++) {
        const v = this.tokenAttr[i][j];
        const c = diverging(v, max);
        parts.push(`<rect x="${left + j * cw}" y="${y}" width="${cw}" height="${ch}" fill="${c.fill}"/>`);
        parts.push(`<text x="${left + j * cw + cw / 2}" y="${y + ch / 2 + 4}" font-size="11" text-anchor="middle" fill="${c.dark ? "white" : "black"}" ${FONT}>${v.toFixed(4)}</text>`);
      }
    }
    // Colour bar.
    const bx = left + cols * cw + 30, steps = 40, bh = Math.max(120, rows * ch);
    for (let s = 0; s < steps; s++) {
      const v = max - (2 * max * s) / (steps - 1);
      parts.push(`<rect x="${bx}" y="${top + (s * bh) / steps}" width="16" height="${bh / steps + 0.5}" fill="${diverging(v, max).fill}"/>`);
    }
    parts.push(`<text x="${bx + 20}" y="${top + 10}" font-size="11" ${FONT}>${max.toPrecision(3)}</text>`);
    parts.push(`<text x="${bx + 20}" y="${top + bh}" font-size="11" ${FONT}>${(-max).toPrecision(3)}</text>`);
    parts.push(`<text x="${bx + 70}" y="${top + bh / 2}" font-size="12" ${FONT} transform="rotate(90 ${bx + 70} ${top + bh / 2})" text-anchor="middle">Token Attribution</text>`);
    return png(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + Math.max(0, 120 - rows * ch)}">${parts.join("")}</svg>`);
  }

  /** Bars of the sequence attribution per input token, positive blue, negative red (PNG). */
  async plotSeqAttr(): Promise<Buffer> {
    const n = this.seqAttr.length;
    const max = Math.max(1e-12, ...this.seqAttr.map(Math.abs));
    const bw = 60, plotH = 300;
    const top = 30 + 6 * Math.max(4, ...this.inputTokens.map((t) => Math.min(30, shorten(t).length)));
    const left = 80, width = left + n * bw + 30, height = top + plotH + 30;
    const zero = top + plotH / 2;
    const parts: string[] = [`<rect width="100%" height="100%" fill="white"/>`];
    parts.push(`<line x1="${left}" y1="${zero}" x2="${left + n * bw}" y2="${zero}" stroke="#333"/>`);
    parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
    for (const v of [max, max / 2, 0, -max / 2, -max]) {
      const y = zero - (v / max) * (plotH / 2);
      parts.push(`<text x="${left - 6}" y="${y + 4}" font-size="11" text-anchor="end" ${FONT}>${v.toPrecision(3)}</text>`);
    }
    for (let j = 0; j < n; j++) {
      const v = this.seqAttr[j], h = (Math.abs(v) / max) * (plotH / 2);
      const x = left + j * bw + bw * 0.1;
      parts.push(`<rect x="${x}" y="${v >= 0 ? zero - h : zero}" width="${bw * 0.8}" height="${h}" fill="${v >= 0 ? "#4772b3" : "#d0365b"}"/>`);
      const tx = left + j * bw + bw / 2;
      parts.push(`<text x="${tx}" y="${top - 8}" font-size="13" ${FONT} transform="rotate(-30 ${tx} ${top - 8})">${esc(shorten(this.inputTokens[j]))}</text>`);
    }
    parts.push(`<text x="16" y="${zero}" font-size="12" ${FONT} transform="rotate(-90 16 ${zero})" text-anchor="middle">Sequence Attribution</text>`);
    return png(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join("")}</svg>`);
  }

  /** One self-contained page: the prompt's features coloured by seqAttr, the target, and the token map. */
  toHtml(options: { title?: string } = {}): string {
    const max = Math.max(1e-12, ...this.seqAttr.map(Math.abs));
    const mark = (t: string, v: number, m: number) =>
      `<mark style="background-color:${attributionColor(v / m)}" title="${esc(v.toFixed(4))}">${esc(t)}</mark>`;
    const prompt = this.inputTokens.map((t, i) => mark(t, this.seqAttr[i], max)).join(" ");
    let table = "";
    if (this.tokenAttr) {
      const tmax = Math.max(1e-12, ...this.tokenAttr.flat().map(Math.abs));
      const head = `<tr><th></th>${this.inputTokens.map((t) => `<th>${esc(t)}</th>`).join("")}</tr>`;
      const body = this.tokenAttr
        .map((row, i) => `<tr><th>${esc(this.outputTokens[i] ?? "")}</th>${row.map((v) => `<td style="background-color:${attributionColor(v / tmax)}">${v.toFixed(4)}</td>`).join("")}</tr>`)
        .join("\n");
      table = `<h2>Per output token</h2><table class="map">${head}\n${body}</table>`;
    }
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(options.title ?? "LLM attribution")}</title>
<style>
body { font-family: sans-serif; margin: 1em; }
p.prompt { line-height: 2; }
mark { color: #000; padding: 2px 3px; }
table.map { border-collapse: collapse; }
table.map th, table.map td { border: 1px solid #ddd; padding: 3px 6px; font-size: 13px; text-align: center; }
</style></head>
<body>
<h1>${esc(options.title ?? "LLM attribution")}</h1>
<h2>Prompt (green: raised the target's score, red: lowered it)</h2>
<p class="prompt">${prompt}</p>
<h2>Target</h2>
<p>${this.outputTokens.map((t) => `<code>${esc(t)}</code>`).join(" ")}</p>
${table}
</body></html>
`;
  }

  /** Plain data (JSON Lines output). */
  toJSON() {
    return { seqAttr: this.seqAttr, tokenAttr: this.tokenAttr, inputTokens: this.inputTokens, outputTokens: this.outputTokens };
  }
}
