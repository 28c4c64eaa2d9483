// Token attributions as a self-contained HTML page (no scripts, no external
// resources): one table row per record, each token's background green for
// positive attribution and red for negative, stronger with the magnitude.
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";

/** What one row of visualizeText() shows (the reference's VisualizationDataRecord, camelCased). */
export interface VisualizationDataRecordLike {
  /** One attribution per token, best scaled to [-1, 1] (values outside are clipped for colour). */
  wordAttributions: ArrayLike<number> | Tensor;
  /** The predicted class's probability. */
  predProb: number;
  predClass: string | number;
  trueClass: string | number;
  /** The class the attributions are for. */
  attrClass: string | number;
  /** Usually the sum of the attributions. */
  attrScore: number;
  /** The tokens, as text. */
  rawInputIds: string[];
  /** The convergence delta, when the method has one. */
  convergenceScore?: number | null;
}

/** A record with the reference's positional constructor. */
export class VisualizationDataRecord implements VisualizationDataRecordLike {
  constructor(
    public wordAttributions: ArrayLike<number> | Tensor,
    public predProb: number,
    public predClass: string | number,
    public trueClass: string | number,
    public attrClass: string | number,
    public attrScore: number,
    public rawInputIds: string[],
    public convergenceScore: number | null = null,
  ) {}
}

/** The background for an attribution in [-1, 1]: white at 0, to 50% lightness green (positive) or 60% red (negative). */
export function attributionColor(value: number): string {
  const v = Math.max(-1, Math.min(1, Number.isFinite(value) ? value : 0));
  return v > 0 ? `hsl(120, 75%, ${100 - Math.trunc(50 * v)}%)` : `hsl(0, 75%, ${100 - Math.trunc(-40 * v)}%)`;
}

function esc(s: unknown): string {
  return String(s).replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);
}

// Special tokens such as <pad> or <s> are shown as #pad, #s (as the reference does).
function tokenText(t: string): string {
  return t.length > 1 && t.startsWith("<") && t.endsWith(">") ? `#${t.replace(/^<+|>+$/g, "")}` : t;
}

function num(v: unknown, digits: number): string {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
}

export interface VisualizeTextOptions {
  /** A colour legend under the table (default true). */
  legend?: boolean;
  /** The page's title (default "Attributions"). */
  title?: string;
}

/**
 * An HTML page of token attributions: per record the true class, the predicted
 * class with its probability, the attributed class, the attribution score, the
 * convergence delta, and the tokens highlighted by their attributions.
 */
export function visualizeText(records: Iterable<VisualizationDataRecordLike>, options: VisualizeTextOptions = {}): string {
  if (!records || typeof (records as Iterable<unknown>)[Symbol.iterator] !== "function") throw new TorchExplainError("records: expected an array of records", "ERR_BAD_OPTION");
  const rows: string[] = [];
  let i = 0;
  for (const r of records) {
    if (!r || !Array.isArray(r.rawInputIds)) throw new TorchExplainError(`records[${i}]: expected rawInputIds, an array of tokens`, "ERR_BAD_OPTION");
    const attr = r.wordAttributions instanceof Tensor ? Array.from(r.wordAttributions.data() as ArrayLike<number>, Number) : Array.from(r.wordAttributions ?? [], Number);
    if (attr.length < r.rawInputIds.length)
      throw new TorchExplainError(`records[${i}].wordAttributions: ${attr.length} values for ${r.rawInputIds.length} tokens`, "ERR_BAD_SHAPE");
    const tokens = r.rawInputIds
      .map((t, k) => `<mark style="background-color:${attributionColor(attr[k])}" title="${esc(attr[k].toFixed(4))}">${esc(tokenText(String(t)))}</mark>`)
      .join(" ");
    rows.push(
      `<tr><td>${esc(r.trueClass)}</td><td>${esc(r.predClass)} (${num(r.predProb, 2)})</td><td>${esc(r.attrClass)}</td>` +
        `<td>${num(r.attrScore, 2)}</td><td>${num(r.convergenceScore, 4)}</td><td class="tokens">${tokens}</td></tr>`,
    );
    i++;
  }
  const legend =
    options.legend === false
      ? ""
      : `<p class="legend"><b>Legend:</b> ${[[-1, "Negative"], [0, "Neutral"], [1, "Positive"]]
          .map(([v, label]) => `<span class="swatch" style="background-color:${attributionColor(v as number)}"></span> ${label}`)
          .join(" ")}</p>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(options.title ?? "Attributions")}</title>
<style>
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 1em 4px 0; border-bottom: 1px solid #ddd; }
td.tokens { line-height: 1.9; }
mark { color: #000; padding: 1px 2px; }
.swatch { display: inline-block; width: 10px; height: 10px; border: 1px solid #000; }
</style></head>
<body>
<table>
<tr><th>True Label</th><th>Predicted Label</th><th>Attribution Label</th><th>Attribution Score</th><th>Convergence Delta</th><th>Word Importance</th></tr>
${rows.join("\n")}
</table>
${legend}
</body></html>
`;
}
