// The command line's LLM job: JSON Lines of prompts in, JSON Lines of results
// (and, when asked, the pictures and pages) out.
import * as fs from "fs";
import * as path from "path";
import { TorchExplainError } from "../errors";
import { loadModel } from "../model";
import { LLMAttribution, LLMAttributionResult, LLMGradientAttribution, loadTokenizer, TextTemplateInput, TextTokenInput } from "../llm";
import { Progress } from "./progress";
import { resolveMethod } from "./methods";

export interface LLMJobSpec {
  model: string;
  tokenizer: string;
  method: string;
  layer?: string;
  /** One prompt per line: {"template", "values", "baselines"?, "mask"?} or {"text", "baselines"?, "skipTokens"?}, with "target"? and "id"?. */
  prompts: string;
  out: string;
  attrTarget?: "logProb" | "prob";
  options?: Record<string, unknown>;
  init?: Record<string, unknown>;
  /** Tokens to generate for prompts without a target (the reference's default: 25). */
  maxNewTokens?: number;
  /** Prompts per call (they run as one request each, concurrently). */
  batchSize: number;
  png?: boolean;
  html?: boolean;
}

interface PromptLine {
  id?: string;
  template?: string;
  values?: string[] | Record<string, string>;
  text?: string;
  baselines?: unknown;
  mask?: number[] | Record<string, number>;
  skipTokens?: (number | string)[];
  target?: string | number[] | number;
}

function bad(message: string): never {
  throw new TorchExplainError(message, "ERR_BAD_OPTION");
}

/** The prompts of a JSON Lines file, checked line by line (the line is named in errors). */
export function readPrompts(file: string): PromptLine[] {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const out: PromptLine[] = [];
  lines.forEach((text, i) => {
    if (!text.trim()) return;
    let p: unknown;
    try {
      p = JSON.parse(text);
    } catch (e) {
      bad(`prompts: line ${i + 1} of ${file} is not JSON (${(e as Error).message})`);
    }
    if (p === null || typeof p !== "object" || Array.isArray(p)) bad(`prompts: line ${i + 1}: expected an object with "template" and "values", or "text"`);
    const line = p as PromptLine;
    if ((line.template === undefined) === (line.text === undefined)) bad(`prompts: line ${i + 1}: give either "template" (with "values") or "text"`);
    out.push(line);
  });
  if (!out.length) bad(`prompts: ${file} holds no prompts`);
  return out;
}

export async function runLLMJob(spec: LLMJobSpec, stderr: NodeJS.WriteStream = process.stderr): Promise<{ count: number; file: string }> {
  const prompts = readPrompts(spec.prompts);
  const tok = await loadTokenizer(spec.tokenizer);
  const model = await loadModel(spec.model);
  try {
    const method = resolveMethod(spec.method, spec.layer, spec.init ?? {}).make(model);
    const gradient = spec.layer !== undefined;
    const llm = gradient ? new LLMGradientAttribution(method, tok) : new LLMAttribution(method, tok, { attrTarget: spec.attrTarget });
    fs.mkdirSync(spec.out, { recursive: true });
    for (const d of [spec.png ? "pictures" : "", spec.html ? "pages" : ""]) if (d) fs.mkdirSync(path.join(spec.out, d), { recursive: true });
    const file = path.join(spec.out, "results.jsonl");
    const partial = `${file}.partial`;
    const sink = fs.openSync(partial, "w");
    const progress = new Progress(prompts.length, Math.ceil(prompts.length / spec.batchSize), stderr);
    try {
      for (let start = 0; start < prompts.length; start += spec.batchSize) {
        const batch = prompts.slice(start, start + spec.batchSize);
        const t0 = Date.now();
        const results = await Promise.all(batch.map(async (p, j) => {
          const n = start + j + 1;
          const input = p.template !== undefined
            ? new TextTemplateInput(p.template, p.values as string[], { baselines: p.baselines as string[], mask: p.mask as number[] })
            : new TextTokenInput(p.text!, tok, { baselines: p.baselines as number | string, skipTokens: p.skipTokens });
          const options = { ...(spec.options ?? {}), ...(p.target !== undefined ? { target: p.target } : { genArgs: { maxNewTokens: spec.maxNewTokens ?? 25 } }) };
          try {
            return await llm.attribute(input, options);
          } catch (e) {
            throw new TorchExplainError(`prompts: prompt ${n}${p.id ? ` (id ${p.id})` : ""}: ${(e as Error).message}`, (e as TorchExplainError).code ?? "ERR_BAD_OPTION");
          }
        }));
        for (const [j, r] of results.entries()) {
          const p = batch[j], name = String(start + j).padStart(6, "0");
          fs.writeSync(sink, JSON.stringify({ id: p.id ?? name, ...r.toJSON() }) + "\n");
          await writePictures(spec, r, name);
        }
        progress.shard(start / spec.batchSize, start, start + batch.length, Date.now() - t0, true);
      }
    } finally {
      fs.closeSync(sink);
    }
    progress.finish();
    fs.renameSync(partial, file); // a finished file or none
    return { count: prompts.length, file };
  } finally {
    model.dispose();
  }
}

async function writePictures(spec: LLMJobSpec, r: LLMAttributionResult, name: string) {
  if (spec.png) {
    if (r.tokenAttr) fs.writeFileSync(path.join(spec.out, "pictures", `${name}_tokens.png`), await r.plotTokenAttr());
    fs.writeFileSync(path.join(spec.out, "pictures", `${name}_seq.png`), await r.plotSeqAttr());
  }
  if (spec.html) fs.writeFileSync(path.join(spec.out, "pages", `${name}.html`), r.toHtml({ title: `prompt ${name}` }));
}
