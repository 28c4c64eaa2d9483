// Hugging Face tokenizers (tokenizer.json) through @huggingface/tokenizers,
// the maintained JavaScript implementation that reproduces the Rust
// library's ids (BPE, WordPiece, WordLevel, Unigram), with the few calls
// LLM attribution needs in the reference's names.
import * as fs from "fs";
import * as path from "path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { TorchExplainError } from "../errors";

// The few calls made on the package's tokenizer, typed here so that this
// file's declarations do not import the package's own (which a consumer's
// tsc with moduleResolution nodenext refuses: extensionless relative imports).
interface TokenizerImpl {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: (number | undefined)[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  id_to_token(id: number): string | undefined;
  token_to_id(token: string): number | undefined;
}

function bad(message: string): never {
  throw new TorchExplainError(message, "ERR_BAD_OPTION");
}

/** A loaded tokenizer: text <-> token ids, as the Hugging Face tokenizer of the same file. */
export class Tokenizer {
  /** @internal */
  constructor(
    private readonly impl: TokenizerImpl,
    /** Where it was loaded from. */
    readonly path: string,
    private readonly config: Record<string, unknown>,
    // WordLevel's unknown-token id, which the library leaves out (undefined ids).
    private readonly unkId?: number,
  ) {}

  /** Token ids of `text` (special tokens added as the tokenizer's post-processor adds them, unless told not to). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") bad(`text: expected a string, got ${typeof text}`);
    const ids = this.impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    return ids.map((id) => (id === undefined ? (this.unkId ?? bad(`text: '${text}' has a word outside the vocabulary, which has no unknown token`)) : id));
  }

  /** The text of token ids. */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the package refuses an empty list
    return this.impl.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** The vocabulary's strings for ids (e.g. "Ġcat" for GPT-2's " cat"). */
  convertIdsToTokens(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (id) => this.impl.id_to_token(id) ?? bad(`ids: ${id} is not in the vocabulary`));
  }

  /** The vocabulary string of an id, undefined for an id outside the vocabulary. */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.impl.id_to_token(id) ?? undefined : undefined;
  }

  /** Ids of vocabulary strings. */
  convertTokensToIds(tokens: string[], argument = "tokens"): number[] {
    return tokens.map((t) => this.impl.token_to_id(t) ?? bad(`${argument}: '${t}' is not in the vocabulary (a token string, e.g. 'Ġcat' for GPT-2's ' cat')`));
  }

  /** The end-of-sequence token's id, where the files name one. */
  get eosTokenId(): number | undefined {
    const named = this.config.eos_token;
    const text = typeof named === "string" ? named : (named as { content?: string } | undefined)?.content;
    for (const t of [text, "<|endoftext|>", "</s>", "<eos>", "[SEP]"]) {
      const id = t === undefined ? undefined : this.impl.token_to_id(t);
      if (id !== undefined) return id;
    }
    return undefined;
  }

  /**
   * Tokens as people read them: each id's share of the decoded text, newlines
   * escaped and surrounding spaces trimmed (the reference's "pretty" tokens,
   * without byte-level markers such as Ġ).
   */
  prettyTokens(ids: ArrayLike<number>): string[] {
    const list = Array.from(ids);
    const out: string[] = [];
    let prev = "";
    for (let i = 0; i < list.length; i++) {
      const text = this.decode(list.slice(0, i + 1));
      // A character split over several byte-level tokens decodes as U+FFFD until complete.
      const piece = text.startsWith(prev) ? text.slice(prev.length) : this.decode([list[i]]);
      out.push(piece.replace(/\n/g, "\\n").trim());
      prev = text;
    }
    return out;
  }
}

// The Rust library's Whitespace pre-tokenizer splits on \w+|[^\w\s]+ with
// Unicode word characters; the JavaScript one's \w is ASCII only, which split
// "café" in two.
const WORD = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\s]+/gu;
function patchWhitespace(pre: unknown, depth = 0): void {
  // Components are callable objects (functions).
  if (!pre || (typeof pre !== "object" && typeof pre !== "function") || depth > 8) return;
  const p = pre as { constructor: { name: string }; pre_tokenize_text?: unknown; tokenizers?: unknown[] };
  if (p.constructor.name === "Whitespace") p.pre_tokenize_text = (text: string) => text.match(WORD) ?? [];
  for (const child of p.tokenizers ?? []) patchWhitespace(child, depth + 1);
}

/**
 * Loads a Hugging Face `tokenizer.json` (with the `tokenizer_config.json`
 * beside it, when there is one).
 */
export async function loadTokenizer(file: string, options: { config?: string | Record<string, unknown> } = {}): Promise<Tokenizer> {
  if (typeof file !== "string" || !file) bad("path: expected the path of a tokenizer.json file");
  let text: string;
  try {
    text = await fs.promises.readFile(file, "utf8");
  } catch (e) {
    bad(`path: cannot read '${file}': ${(e as Error).message}`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    bad(`path: '${file}' is not a tokenizer.json file (it does not parse as JSON: ${(e as Error).message})`);
  }
  if (!json || typeof json !== "object" || typeof json.model !== "object" || json.model === null)
    bad(`path: '${file}' is not a tokenizer.json file (it has no "model" entry)`);
  let config: Record<string, unknown> = {};
  const configFile = typeof options.config === "string" ? options.config : path.join(path.dirname(file), "tokenizer_config.json");
  if (options.config && typeof options.config === "object") config = options.config;
  else if (fs.existsSync(configFile)) {
    try {
      config = JSON.parse(await fs.promises.readFile(configFile, "utf8"));
    } catch (e) {
      bad(`config: '${configFile}' does not parse as JSON: ${(e as Error).message}`);
    }
  }
  try {
    const hf = new HFTokenizer(json, config);
    patchWhitespace(hf.pre_tokenizer);
    const impl: TokenizerImpl = hf;
    const model = json.model as { type?: string; unk_token?: string };
    const unk = model.type === "WordLevel" && model.unk_token ? impl.token_to_id(model.unk_token) : undefined;
    return new Tokenizer(impl, file, config, unk);
  } catch (e) {
    bad(`path: '${file}' is not a tokenizer this library can load: ${(e as Error).message}`);
  }
}
