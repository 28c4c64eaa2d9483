// JSON Lines for tabular models: one example per line, either an array of
// numbers (nested arrays for examples with several dimensions) or an object
// { "inputs": [...], "target"?: n, "id"?: "..." }; token ids as
// { "tokens": [...] } stay integers (int64), as an embedding takes them.
import * as fs from "fs";
import { Tensor, tensor, NestedArray } from "../tensor";
import { TorchExplainError } from "../errors";
import { writeAtomic } from "./npy";

export interface JsonLinesRow {
  inputs: NestedArray;
  target?: number;
  id?: string;
}

export interface JsonLinesBatch {
  /** [N, ...the rows' shape]: float32, or int64 where the rows give "tokens". */
  inputs: Tensor;
  /** Per row: its "target" when given, else undefined. */
  targets: (number | undefined)[];
  /** Per row: its "id" when given, else "line N" (1-based). */
  ids: string[];
}

function shapeOf(v: unknown, line: number, where = "inputs"): number[] {
  if (typeof v === "number" || typeof v === "boolean") return [];
  if (!Array.isArray(v) || v.length === 0)
    throw new TorchExplainError(`inputs: line ${line}: ${where} must be numbers or non-empty arrays of numbers`, "ERR_BAD_SHAPE");
  const inner = shapeOf(v[0], line, where);
  for (const x of v) if (shapeOf(x, line, where).join() !== inner.join()) throw new TorchExplainError(`inputs: line ${line}: ragged array`, "ERR_BAD_SHAPE");
  return [v.length, ...inner];
}

/** Parses JSON Lines text into a batch. Blank lines are skipped. */
export function parseJsonLines(text: string): JsonLinesBatch {
  const flat: number[] = [];
  const targets: (number | undefined)[] = [];
  const ids: string[] = [];
  let shape: number[] | undefined;
  let tokens: boolean | undefined; // rows of "tokens" (int64) or of "inputs" (float32), not both
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch (e) {
      throw new TorchExplainError(`inputs: line ${line} is not JSON (${(e as Error).message})`, "ERR_BAD_OPTION");
    }
    let values: unknown = row;
    let target: number | undefined;
    let id = `line ${line}`;
    if (row !== null && typeof row === "object" && !Array.isArray(row)) {
      const r = row as Record<string, unknown>;
      const isTokens = r.tokens !== undefined;
      if (isTokens && r.inputs !== undefined) throw new TorchExplainError(`inputs: line ${line}: give "inputs" or "tokens", not both`, "ERR_BAD_OPTION");
      values = isTokens ? r.tokens : r.inputs;
      if (values === undefined) throw new TorchExplainError(`inputs: line ${line}: an object row needs "inputs" (or "tokens" for token ids)`, "ERR_BAD_OPTION");
      if (tokens !== undefined && tokens !== isTokens) throw new TorchExplainError(`inputs: line ${line} gives "${isTokens ? "tokens" : "inputs"}" but the first row "${tokens ? "tokens" : "inputs"}"`, "ERR_BAD_OPTION");
      tokens = isTokens;
      if (r.target !== undefined) {
        if (!Number.isInteger(r.target) || (r.target as number) < 0) throw new TorchExplainError(`target: line ${line}: expected a non-negative integer`, "ERR_BAD_TARGET");
        target = r.target as number;
      }
      if (r.id !== undefined) id = String(r.id);
    }
    const s = shapeOf(values, line);
    if (shape && s.join() !== shape.join())
      throw new TorchExplainError(`inputs: line ${line} has shape [${s}] but the first row has [${shape}]`, "ERR_BAD_SHAPE");
    shape = s;
    const push = (v: unknown) => (Array.isArray(v) ? v.forEach(push) : flat.push(Number(v)));
    push(values);
    if (tokens) {
      const wrong = flat.findIndex((v) => !Number.isInteger(v) || v < 0);
      if (wrong >= 0) throw new TorchExplainError(`inputs: line ${line}: "tokens" must be non-negative integers; found ${flat[wrong]}`, "ERR_BAD_OPTION");
    }
    targets.push(target);
    ids.push(id);
  });
  if (!shape) throw new TorchExplainError("inputs: no rows in the JSON Lines input", "ERR_BAD_SHAPE");
  const inputs = tokens ? tensor(BigInt64Array.from(flat, BigInt), [ids.length, ...shape], "int64") : tensor(Float32Array.from(flat), [ids.length, ...shape], "float32");
  return { inputs, targets, ids };
}

/** Reads a JSON Lines file into a batch. */
export async function loadJsonLines(path: string): Promise<JsonLinesBatch> {
  let text: string;
  try {
    text = await fs.promises.readFile(path, "utf8");
  } catch (e) {
    throw new TorchExplainError(`path: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "ERR_BAD_OPTION");
  }
  return parseJsonLines(text);
}

/** One line per example of a Tensor ([N, ...]): its values as nested arrays (plus fields from `extra`, when given). */
export function toJsonLines(t: Tensor, extra?: (i: number) => Record<string, unknown>): string {
  const rows = t.toArray() as NestedArray[];
  return rows.map((r, i) => JSON.stringify(extra ? { inputs: r, ...extra(i) } : r)).join("\n") + "\n";
}

/** Writes a Tensor's rows as JSON Lines, atomically. */
export async function saveJsonLines(path: string, t: Tensor, extra?: (i: number) => Record<string, unknown>): Promise<void> {
  await writeAtomic(path, toJsonLines(t, extra));
}
