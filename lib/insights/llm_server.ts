// Insights for language models: a page to write a prompt (a template with
// values, or plain text), give or generate the target, pick a method, and see
// the prompt's parts coloured by attribution and the target × prompt map.
// One explanation is one request: it is cancelled when the page goes away
// (the connection closes) or the server closes.
import * as path from "path";
import { fastify, FastifyInstance } from "fastify";
import { Model, loadModel } from "../model";
import { TorchExplainError } from "../errors";
import { resolveMethod } from "../batch/methods";
import { readPrompts } from "../batch/llm";
import { LLMAttribution, LLMGradientAttribution, loadTokenizer, TextTemplateInput, TextTokenInput, Tokenizer } from "../llm";
import { errorHandler, serveWebRoot } from "./server";

export interface LLMInsightsOptions {
  /** A TorchScript language model (or classifier) file, or a loaded Model (left undisposed at close). */
  model: string | Model;
  /** A Hugging Face tokenizer.json. */
  tokenizer: string | Tokenizer;
  /** Example prompts: a JSON Lines file as `torchexplain llm` reads. */
  prompts?: string;
  /** Largest nSteps / nSamples / maxNewTokens a page may ask for (default 10,000; 256 new tokens). */
  maxSteps?: number;
  /** Explanations running at once (default 2); more are refused with 429. */
  maxRunning?: number;
  bodyLimit?: number;
  port?: number;
  host?: string;
}

const PERTURBATION = ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap"];
const GRADIENT = ["LayerIntegratedGradients", "LayerGradientXActivation", "LayerGradientShap"];

function bad(message: string): never {
  throw Object.assign(new TorchExplainError(message, "ERR_BAD_OPTION"), { statusCode: 400 });
}

const strings = (v: unknown, name: string): string[] => {
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) bad(`${name}: expected an array of strings`);
  return v as string[];
};

export async function createLLMInsightsServer(options: LLMInsightsOptions): Promise<{ app: FastifyInstance; model: Model; tokenizer: Tokenizer }> {
  const maxSteps = options.maxSteps ?? 10000;
  const maxRunning = options.maxRunning ?? 2;
  const ownModel = typeof options.model === "string";
  const model = typeof options.model === "string" ? await loadModel(options.model) : options.model;
  const tok = typeof options.tokenizer === "string" ? await loadTokenizer(options.tokenizer) : options.tokenizer;
  const examples = options.prompts ? readPrompts(options.prompts) : [];
  const layers = model.layers();
  // Embedding layers first: the gradient methods' usual choice.
  const embeddings = layers.filter((l) => /(^|\.)(wte|embed_tokens|word_embeddings|embeddings?|tok_embeddings)$/.test(l));
  const app = fastify({ logger: false, bodyLimit: options.bodyLimit ?? 64 * 1024 });
  serveWebRoot(app, "llm.html");
  errorHandler(app, options.bodyLimit ?? 64 * 1024);
  const running = new Set<AbortController>();

  app.get("/api/info", async () => ({
    model: typeof options.model === "string" ? path.basename(options.model) : "model",
    signature: model.signature,
    tokenizer: typeof options.tokenizer === "string" ? path.basename(options.tokenizer) : "tokenizer",
    methods: [...PERTURBATION.map((name) => ({ name, layer: false })), ...GRADIENT.map((name) => ({ name, layer: true }))],
    layers: [...embeddings, ...layers.filter((l) => !embeddings.includes(l))],
    examples,
  }));

  app.post<{ Body: Record<string, unknown> }>("/api/explain", async (req, reply) => {
    const b = req.body ?? {};
    if (typeof b !== "object" || Array.isArray(b)) bad("body: expected a JSON object");
    const method = String(b.method ?? "FeatureAblation");
    const gradient = GRADIENT.includes(method);
    if (!gradient && !PERTURBATION.includes(method)) bad(`method: expected one of ${[...PERTURBATION, ...GRADIENT].join(", ")}; got '${method}'`);
    const layer = gradient ? String(b.layer ?? embeddings[0] ?? "") : undefined;
    if (gradient && !layers.includes(layer!)) bad(`layer: the model has no layer '${layer}'`);
    let input: TextTemplateInput | TextTokenInput;
    if (b.template !== undefined) {
      if (typeof b.template !== "string") bad("template: expected a string");
      const values = strings(b.values, "values");
      const baselines = b.baselines === undefined || b.baselines === null ? undefined : strings(b.baselines, "baselines");
      input = new TextTemplateInput(b.template, values, { baselines });
    } else {
      if (typeof b.text !== "string" || !b.text) bad("text: expected the prompt's text (or a template and its values)");
      input = new TextTokenInput(b.text, tok, { skipTokens: b.skipTokens === undefined ? undefined : strings(b.skipTokens, "skipTokens") });
    }
    const attributeOptions: Record<string, unknown> = {};
    if (b.target !== undefined && b.target !== null && b.target !== "") {
      if (typeof b.target !== "string") bad("target: expected a string");
      attributeOptions.target = b.target;
    } else {
      const n = Number(b.maxNewTokens ?? 8);
      if (!Number.isInteger(n) || n < 1 || n > 256) bad(`maxNewTokens: expected an integer from 1 to 256; got ${b.maxNewTokens}`);
      attributeOptions.genArgs = { maxNewTokens: n };
    }
    for (const k of ["nSteps", "nSamples"]) {
      if (b[k] === undefined || b[k] === null || b[k] === "") continue;
      const n = Number(b[k]);
      if (!Number.isInteger(n) || n < 1 || n > maxSteps) bad(`${k}: expected an integer from 1 to ${maxSteps}; got ${b[k]}`);
      attributeOptions[k] = n;
    }
    const attrTarget = b.attrTarget === "prob" ? "prob" : "logProb";
    if (running.size >= maxRunning) return reply.status(429).send({ error: `busy: ${running.size} explanations are running; try again when one ends`, code: "ERR_BUSY" });
    const controller = new AbortController();
    // The page went away (the connection closed before the answer): stop its work.
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort(new Error("the page closed the request"));
    };
    reply.raw.on("close", onClose);
    running.add(controller);
    const started = Date.now();
    try {
      const algorithm = resolveMethod(method, layer).make(model);
      const llm = gradient ? new LLMGradientAttribution(algorithm, tok) : new LLMAttribution(algorithm, tok, { attrTarget });
      const r = await llm.attribute(input, { ...attributeOptions, signal: controller.signal });
      const pictures = { seq: (await r.plotSeqAttr()).toString("base64"), tokens: r.tokenAttr ? (await r.plotTokenAttr()).toString("base64") : null };
      return { ...r.toJSON(), timeMs: Date.now() - started, method, layer: layer ?? null, attrTarget: gradient ? "logProb" : attrTarget, pictures };
    } finally {
      running.delete(controller);
      reply.raw.off("close", onClose);
    }
  });

  app.addHook("onClose", async () => {
    for (const c of running) c.abort(new Error("the server is closing"));
    const deadline = Date.now() + 5000;
    while (running.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (ownModel) model.dispose();
  });
  return { app, model, tokenizer: tok };
}

/** Serves the language-model page on host:port (port 0: a free one). */
export async function startLLMInsights(options: LLMInsightsOptions) {
  const server = await createLLMInsightsServer(options);
  await server.app.listen({ port: options.port ?? 0, host: options.host ?? "127.0.0.1" });
  const addr = server.app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : options.port;
  return { ...server, url: `http://${options.host ?? "127.0.0.1"}:${port}` };
}
