// Interpretable text inputs (the reference's TextTemplateInput and
// TextTokenInput): what the features of a prompt are, and the prompt with
// some of them absent.
import { TorchExplainError } from "../errors";
import type { Tokenizer } from "./tokenizer";

function bad(message: string): never {
  throw new TorchExplainError(message, "ERR_BAD_OPTION");
}

// A template in Python's str.format syntax: "{}" takes the next value,
// "{0}" a numbered one, "{name}" a named one; "{{" and "}}" are braces.
type Part = string | { field: string };
function parseTemplate(template: string): Part[] {
  const parts: Part[] = [];
  let literal = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if ((c === "{" || c === "}") && template[i + 1] === c) {
      literal += c;
      i++;
    } else if (c === "{") {
      const end = template.indexOf("}", i);
      if (end < 0) bad(`template: an unclosed '{' at ${i}`);
      const field = template.slice(i + 1, end);
      if (/[{:!]/.test(field)) bad(`template: '{${field}}' is not supported (plain {}, {0} or {name} placeholders)`);
      if (literal) parts.push(literal);
      literal = "";
      parts.push({ field });
      i = end;
    } else if (c === "}") {
      bad(`template: a single '}' at ${i} (write '}}' for a brace)`);
    } else {
      literal += c;
    }
  }
  if (literal) parts.push(literal);
  return parts;
}

/**
 * Baselines sampled from every combination of the values given per key (the
 * reference's ProductBaselines): each evaluation of a perturbed prompt draws
 * one value per key, so `numTrials` averages over them.
 */
export class ProductBaselines {
  private readonly entries: [string, string[]][];
  constructor(readonly baselineValues: Record<string, string[]>) {
    if (!baselineValues || typeof baselineValues !== "object") bad("baselineValues: expected { key: [values...] }");
    this.entries = Object.entries(baselineValues);
    for (const [k, v] of this.entries)
      if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === "string"))
        bad(`baselineValues.${k}: expected a non-empty array of strings`);
  }
  /** One draw: a value per key. */
  sample(random: () => number = Math.random): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.entries) out[k] = v[Math.floor(random() * v.length)];
    return out;
  }
}

export type TemplateBaselines = string[] | Record<string, string> | ProductBaselines | (() => string[] | Record<string, string>);

export interface TextTemplateInputOptions {
  /** What absent values become (default: empty strings). */
  baselines?: TemplateBaselines;
  /** Groups values into features: values with the same id are present or absent together. */
  mask?: number[] | Record<string, number>;
}

/** A prompt made from a template and values; each value (or mask group) is a feature. */
export class TextTemplateInput {
  /** The values, in order (the result's inputTokens). */
  readonly values: string[];
  /** The names of the values when they were given as an object. */
  readonly keys: string[];
  readonly nFeatures: number;
  /** Features after grouping by `mask`. */
  readonly nItpFeatures: number;
  /** Feature of each value. */
  readonly featureOf: number[];
  private readonly parts: Part[] | null;
  private readonly fn: ((...args: never[]) => string) | null;
  private readonly baselines: TemplateBaselines;

  constructor(
    template: string | ((...values: string[]) => string) | ((values: Record<string, string>) => string),
    values: string[] | Record<string, string>,
    options: TextTemplateInputOptions = {},
  ) {
    if (Array.isArray(values)) {
      this.values = values.slice();
      this.keys = [];
    } else if (values && typeof values === "object") {
      this.keys = Object.keys(values);
      this.values = this.keys.map((k) => values[k]);
    } else bad("values: expected an array of strings or an object of named strings");
    this.values.forEach((v, i) => typeof v === "string" || bad(`values[${i}]: expected a string, got ${typeof v}`));
    this.nFeatures = this.values.length;
    if (this.nFeatures === 0) bad("values: expected at least one value");
    if (typeof template === "string") {
      this.parts = parseTemplate(template);
      this.fn = null;
      const fields = this.parts.filter((p): p is { field: string } => typeof p !== "string").map((p) => p.field);
      if (this.keys.length) {
        const unknown = fields.filter((f) => !this.keys.includes(f));
        if (unknown.length || fields.length === 0)
          bad(`template: placeholders {${fields.join("}, {")}} do not match the values' names ${this.keys.join(", ")}`);
      } else {
        const auto = fields.filter((f) => f === "").length;
        const numbered = fields.filter((f) => f !== "");
        if (numbered.some((f) => !/^\d+$/.test(f))) bad(`template: named placeholders need values given as an object`);
        const used = auto + new Set(numbered).size;
        if (auto && numbered.length) bad("template: cannot mix {} and numbered placeholders");
        if (used !== this.nFeatures || numbered.some((f) => Number(f) >= this.nFeatures))
          bad(`template: has ${fields.length} placeholders for ${this.nFeatures} values (placeholders and values must match)`);
      }
    } else if (typeof template === "function") {
      this.parts = null;
      this.fn = template as (...args: never[]) => string;
    } else bad("template: expected a string with {} placeholders or a function of the values");

    const b = options.baselines;
    if (b === undefined || b === null) this.baselines = this.values.map(() => "");
    else if (b instanceof ProductBaselines || typeof b === "function") this.baselines = b;
    else if (Array.isArray(b)) {
      if (this.keys.length) bad("baselines: the values are named, so the baselines must be an object of the same names");
      if (b.length !== this.nFeatures) bad(`baselines: ${b.length} baselines for ${this.nFeatures} values`);
      this.baselines = b;
    } else if (typeof b === "object") {
      if (!this.keys.length) bad("baselines: the values are an array, so the baselines must be an array too");
      const missing = this.keys.filter((k) => typeof (b as Record<string, string>)[k] !== "string");
      if (missing.length) bad(`baselines: no baseline for ${missing.join(", ")}`);
      this.baselines = b;
    } else bad("baselines: expected strings, an object of strings, a ProductBaselines or a function");

    const m = options.mask;
    if (m === undefined || m === null) {
      this.featureOf = this.values.map((_, i) => i);
    } else {
      const ids = Array.isArray(m) ? m : this.keys.length ? this.keys.map((k) => (m as Record<string, number>)[k]) : bad("mask: the values are an array, so the mask must be one too");
      if (ids.length !== this.nFeatures || !ids.every((x) => Number.isInteger(x)))
        bad(`mask: expected one integer group id per value (${this.nFeatures})`);
      // Groups numbered in ascending order of their ids, as the reference does.
      const order = new Map<number, number>([...new Set(ids)].sort((a, b) => a - b).map((id, i) => [id, i]));
      this.featureOf = ids.map((id) => order.get(id)!);
    }
    this.nItpFeatures = Math.max(...this.featureOf) + 1;
  }

  /** Whether absent values' baselines are drawn at random on each evaluation. */
  get sampled(): boolean {
    return this.baselines instanceof ProductBaselines || typeof this.baselines === "function";
  }

  private drawBaselines(random: () => number): string[] {
    const b = this.baselines;
    const got = b instanceof ProductBaselines ? b.sample(random) : typeof b === "function" ? b() : b;
    if (Array.isArray(got)) {
      if (got.length !== this.nFeatures) bad(`baselines: ${got.length} baselines for ${this.nFeatures} values`);
      return got;
    }
    const keys = this.keys.length ? this.keys : this.values.map((_, i) => String(i));
    return keys.map((k) => (typeof got[k] === "string" ? got[k] : bad(`baselines: no baseline for ${k}`)));
  }

  /** The prompt with the features where `present` is 0 replaced by their baselines. */
  toModelInput(present?: ArrayLike<number | boolean>, random: () => number = Math.random): string {
    let values = this.values;
    if (present) {
      const base = this.drawBaselines(random);
      values = this.values.map((v, i) => (present[this.featureOf[i]] ? v : base[i]));
    }
    if (this.fn) return this.keys.length ? (this.fn as (v: Record<string, string>) => string)(Object.fromEntries(this.keys.map((k, i) => [k, values[i]]))) : (this.fn as (...v: string[]) => string)(...values);
    let next = 0;
    return this.parts!.map((p) => {
      if (typeof p === "string") return p;
      if (this.keys.length) return values[this.keys.indexOf(p.field)];
      return values[p.field === "" ? next++ : Number(p.field)];
    }).join("");
  }
}

export interface TextTokenInputOptions {
  /** The token that absent tokens become: an id or a vocabulary string (default 0). */
  baselines?: number | string;
  /** Tokens that are not features (ids or strings, e.g. a BOS token): never replaced, never attributed. */
  skipTokens?: (number | string)[];
}

/** A prompt whose tokens are the features. */
export class TextTokenInput {
  /** The prompt's token ids. */
  readonly ids: number[];
  /** Feature of each token, -1 for skipped tokens. */
  readonly featureOf: number[];
  /** The features' tokens as vocabulary strings (the result's inputTokens). */
  readonly values: string[];
  readonly baselineId: number;
  readonly nItpFeatures: number;

  constructor(
    readonly text: string,
    readonly tokenizer: Tokenizer,
    options: TextTokenInputOptions = {},
  ) {
    if (typeof text !== "string") bad("text: expected a string");
    if (!tokenizer || typeof (tokenizer as Tokenizer).encode !== "function") bad("tokenizer: expected a Tokenizer from loadTokenizer()");
    this.ids = tokenizer.encode(text);
    if (options.skipTokens !== undefined && !Array.isArray(options.skipTokens)) bad("skipTokens: expected an array of token ids or strings");
    const skip = new Set(
      (options.skipTokens ?? []).map((t) => (typeof t === "string" ? tokenizer.convertTokensToIds([t], "skipTokens")[0] : Number.isInteger(t) ? t : bad("skipTokens: expected token ids or strings"))),
    );
    let f = 0;
    this.featureOf = this.ids.map((id) => (skip.has(id) ? -1 : f++));
    this.nItpFeatures = f;
    this.values = tokenizer.convertIdsToTokens(this.ids.filter((id) => !skip.has(id)));
    const b = options.baselines ?? 0;
    if (typeof b === "string") this.baselineId = tokenizer.convertTokensToIds([b], "baselines")[0];
    else if (Number.isInteger(b) && b >= 0 && tokenizer.idToToken(b) !== undefined) this.baselineId = b;
    else if (Number.isInteger(b) && b >= 0) bad(`baselines: token id ${b} is not in the tokenizer's vocabulary`);
    else bad(`baselines: expected a token id (an integer >= 0) or a token string, got ${String(b)}`);
  }
}

export type InterpretableInput = TextTemplateInput | TextTokenInput;
