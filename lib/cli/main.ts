// The command line: torchexplain explain | worker | info. Every failure is one
// line on stderr ("torchexplain: <message>") and a non-zero exit status;
// TORCHEXPLAIN_DEBUG=1 prints stacks too.
import * as fs from "fs";
import * as path from "path";
import { loadModel } from "../model";
import { tensor } from "../tensor";
import { assemble, disposeModels, JobSpec, openInputs, prepareJob, runShard, shardRange } from "../batch/job";
import { Progress } from "../batch/progress";
import { resolveMethod } from "../batch/methods";
import { VisualizeSign, SIGNS } from "../visualization/image";

const USAGE = `usage:
  torchexplain explain --model M.pt --method NAME --inputs FILE|DIR --out DIR
                       [--target N|predicted | --targets FILE.npy] [--options JSON] [--init JSON] [--layer NAME]
                       [--baselines FILE.npy|NUMBER] [--batch-size N] [--shard-size N]
                       [--png] [--html] [--png-sign SIGN] [--png-scale N] [--resume] [--skip-bad-inputs] [--scale-uint8]
                       [--image-size N|HxW | --resize N] [--crop N|HxW] [--channels 1|3|4] [--mean a,b,c] [--std a,b,c]
                       [--redis URL] [--queue NAME] [--worker-timeout S]
  torchexplain llm     --model M.pt --tokenizer tokenizer.json --method NAME --prompts FILE.jsonl --out DIR
                       [--layer NAME] [--attr-target logProb|prob] [--options JSON] [--init JSON]
                       [--max-new-tokens N] [--batch-size N] [--png] [--html]
  torchexplain influence --checkpoints C0.pt,C1.pt,... --train FILE|DIR [--train-labels Y.npy]
                       --test FILE|DIR [--test-labels Y.npy] --out DIR
                       [--method TracInCP|TracInCPFast|TracInCPFastRandProj|NaiveInfluenceFunction|ArnoldiInfluenceFunction]
                       [--layer NAME[,NAME]] [--k N] [--learning-rates a,b,...] [--model M.pt] [--init JSON]
                       [--batch-size N] [--self] [--png] [--image-size N|HxW] [--channels 1|3|4] [--mean a,b,c] [--std a,b,c]
  torchexplain worker  --redis URL [--concurrency N] [--queue NAME]
                       [--lock-duration MS] [--stalled-interval MS]
  torchexplain info    M.pt [--input-shape 1,3,32,32 | --inputs FILE|DIR]
  torchexplain insights --model M.pt --inputs FILE|DIR [--labels labels.json]
                       [--port P] [--host H] [--max-steps N]
                       [--checkpoints C0.pt,C1.pt,... --train FILE|DIR [--train-labels Y.npy]]
                       [--image-size N|HxW] [--channels 1|3|4] [--mean a,b,c] [--std a,b,c]
  torchexplain insights --model LM.pt --tokenizer tokenizer.json [--prompts FILE.jsonl]
                       [--port P] [--host H] [--max-steps N]

explain writes DIR/attributions.npy (float32, one row per example), DIR/index.json
(per example: source, target, predicted class and probability, convergence delta,
time) and with --png DIR/heatmaps/NNNNNN.png (inputs of token ids: with --png or
--html, DIR/pages/NNNNNN.html, the tokens coloured by attribution). NAME is a Captum class name
(IntegratedGradients, Saliency, LayerGradCam, ...) or NoiseTunnel:<name>.
Targets: --target for all, --targets (a .npy of one class per example), else the
inputs' own (a .npz's "labels"/"targets"/"y", JSON Lines rows' "target"), else
each example's predicted class. JSON Lines rows of token ids give them as
{"tokens": [...]} (int64) rather than "inputs" (float32).
llm explains a language model's output for each prompt of FILE.jsonl (one JSON
object per line: {"template": "{} lives in {}", "values": ["dave", "paris"],
"baselines"?: [...], "mask"?: [...]} or {"text": "...", "baselines"?: 0,
"skipTokens"?: [...]}, with "target"?: "text" (generated greedily without it) and
"id"?), writing DIR/results.jsonl (id, seqAttr, tokenAttr, inputTokens,
outputTokens), with --png DIR/pictures/ (NNNNNN_tokens.png, NNNNNN_seq.png) and
with --html DIR/pages/NNNNNN.html. NAME: FeatureAblation, ShapleyValueSampling,
ShapleyValues, Lime, KernelShap, or with --layer (the embedding) a gradient
method: LayerIntegratedGradients, LayerGradientXActivation, LayerGradientShap.
influence finds, for each test example, the k training examples that most
support its prediction (proponents) and most oppose it (opponents), writing
DIR/influence.json (per test example: its label, or its predicted class without
one, and the proponents' and opponents' training indices, scores and labels),
with --self DIR/self_influence.npy and with --png DIR/influence.png (a grid of
the images). Training and test sets: a .npy file (labels in --train-labels /
--test-labels), a .npz (arrays inputs or x, labels or y), or a folder with a
subfolder of images per class; test inputs may also be a plain folder of images.
The architecture is the last checkpoint unless --model; --layer names the layers
measured (TracInCP, influence functions) or the final linear layer (TracInCPFast).
insights serves a web page to browse the examples and explain them
(http://127.0.0.1:P/, port 7070 by default; --port 0 picks a free one), and with
--checkpoints and --train shows the training examples behind an example's
prediction (TracInCP; the training set as for influence); with
--tokenizer, a page for a language model: write or pick a prompt, give or
generate the target, see the prompt's parts coloured and the target × prompt map.`;

class UsageError extends Error {}

type Flags = Record<string, string | true>;

const SPECS: Record<string, { values: string[]; booleans: string[] }> = {
  explain: {
    values: ["worker-timeout", "model", "method", "inputs", "out", "target", "targets", "options", "init", "layer", "baselines", "batch-size", "shard-size", "png-sign", "png-scale", "image-size", "resize", "crop", "channels", "mean", "std", "redis", "queue"],
    booleans: ["png", "html", "resume", "skip-bad-inputs", "scale-uint8"],
  },
  llm: {
    values: ["model", "tokenizer", "method", "prompts", "out", "layer", "attr-target", "options", "init", "max-new-tokens", "batch-size"],
    booleans: ["png", "html"],
  },
  influence: {
    values: ["checkpoints", "train", "train-labels", "test", "test-labels", "out", "method", "layer", "k", "learning-rates", "model", "init", "batch-size", "image-size", "resize", "crop", "channels", "mean", "std"],
    booleans: ["self", "png"],
  },
  worker: { values: ["redis", "concurrency", "queue", "lock-duration", "stalled-interval", "max-stalled"], booleans: [] },
  info: { values: ["input-shape", "inputs", "image-size", "resize", "crop", "channels"], booleans: [] },
  insights: { values: ["model", "inputs", "labels", "tokenizer", "prompts", "port", "host", "max-steps", "image-size", "resize", "crop", "channels", "mean", "std", "checkpoints", "train", "train-labels"], booleans: [] },
};

function parseArgs(command: string, argv: string[]): { flags: Flags; positional: string[] } {
  const spec = SPECS[command];
  const flags: Flags = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = a.slice(2, eq > 0 ? eq : undefined);
    if (spec.booleans.includes(name)) {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      flags[name] = true;
    } else if (spec.values.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      flags[name] = v;
    } else throw new UsageError(`unknown option --${name} for '${command}' (options: ${[...spec.values, ...spec.booleans].map((o) => `--${o}`).join(", ")})`);
  }
  return { flags, positional };
}

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

function required(flags: Flags, name: string): string {
  const v = str(flags, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

function positiveInt(flags: Flags, name: string, fallback?: number): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name}: expected a positive integer; got '${v}'`);
  return n;
}

function json(flags: Flags, name: string): Record<string, unknown> | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (e) {
    throw new UsageError(`--${name}: not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new UsageError(`--${name}: expected a JSON object, e.g. '{"nSteps": 32}'`);
  return parsed as Record<string, unknown>;
}

function numbers(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(",").map(Number);
  if (list.some((x) => !Number.isFinite(x))) throw new UsageError(`--${name}: expected numbers separated by commas; got '${v}'`);
  return list;
}

function imageOptions(flags: Flags): JobSpec["image"] {
  const size = str(flags, "image-size");
  let parsed: number | [number, number] | undefined;
  if (size !== undefined) {
    const m = /^(\d+)(?:x(\d+))?$/.exec(size);
    if (!m) throw new UsageError(`--image-size: expected N or HxW; got '${size}'`);
    parsed = m[2] ? [Number(m[1]), Number(m[2])] : Number(m[1]);
  }
  const resize = positiveInt(flags, "resize");
  const cropText = str(flags, "crop");
  let crop: number | [number, number] | undefined;
  if (cropText !== undefined) {
    const m = /^(\d+)(?:x(\d+))?$/.exec(cropText);
    if (!m) throw new UsageError(`--crop: expected N or HxW; got '${cropText}'`);
    crop = m[2] ? [Number(m[1]), Number(m[2])] : Number(m[1]);
  }
  if (resize !== undefined && parsed !== undefined) throw new UsageError("--resize: give either --image-size (both sides) or --resize (the shorter side)");
  const channels = positiveInt(flags, "channels");
  if (channels !== undefined && ![1, 3, 4].includes(channels)) throw new UsageError(`--channels: expected 1, 3 or 4; got ${channels}`);
  const mean = numbers(str(flags, "mean"), "mean");
  const std = numbers(str(flags, "std"), "std");
  const o: NonNullable<JobSpec["image"]> = {};
  if (parsed !== undefined) o.size = parsed;
  if (resize !== undefined) o.resize = resize;
  if (crop !== undefined) o.crop = crop;
  if (channels !== undefined) o.channels = channels as 1 | 3 | 4;
  if (mean) o.mean = mean.length === 1 ? mean[0] : mean;
  if (std) o.std = std.length === 1 ? std[0] : std;
  return o;
}

// A missing file is a failure (status 1), not command-line misuse (2).
function existing(file: string, flag: string): string {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`--${flag}: no such file or folder: ${file}`);
  return abs;
}

async function explain(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("explain", argv);
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  const model = existing(required(flags, "model"), "model");
  const methodName = required(flags, "method");
  const inputs = existing(required(flags, "inputs"), "inputs");
  const out = path.resolve(required(flags, "out"));
  const layer = str(flags, "layer");
  const init = json(flags, "init");
  const options = json(flags, "options");
  const method = resolveMethod(methodName, layer, init ?? {}); // an unknown method fails here, before any work
  const targetText = str(flags, "target");
  let target: JobSpec["target"];
  if (targetText !== undefined) {
    if (targetText === "predicted") target = "predicted";
    else if (/^\d+$/.test(targetText)) target = Number(targetText);
    else throw new UsageError(`--target: expected a class index or 'predicted'; got '${targetText}'`);
    if (!method.info.target) throw new UsageError(`--target: ${methodName} takes no target`);
  }
  const targetsFile = str(flags, "targets");
  if (targetsFile !== undefined && targetText !== undefined) throw new UsageError("--targets: give one of --target and --targets");
  if (targetsFile !== undefined && !method.info.target) throw new UsageError(`--targets: ${methodName} takes no target`);
  const targets = targetsFile === undefined ? undefined : existing(targetsFile, "targets");
  if (options && "target" in options) throw new UsageError("--options: give the target with --target");
  let baselines = str(flags, "baselines");
  if (baselines !== undefined && !/^-?\d+(\.\d+)?$/.test(baselines)) baselines = existing(baselines, "baselines");
  const batchSize = positiveInt(flags, "batch-size", 32)!;
  const shardSize = positiveInt(flags, "shard-size", Math.max(batchSize, 64))!;
  const pngSign = str(flags, "png-sign") as VisualizeSign | undefined;
  if (pngSign !== undefined && !SIGNS.includes(pngSign)) throw new UsageError(`--png-sign: expected one of ${SIGNS.join(", ")}; got '${pngSign}'`);
  const spec: JobSpec = {
    model,
    method: methodName,
    ...(layer !== undefined ? { layer } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(targets !== undefined ? { targets } : {}),
    ...(options ? { options } : {}),
    ...(init ? { init } : {}),
    inputs,
    ...(baselines !== undefined ? { baselines } : {}),
    image: imageOptions(flags),
    batchSize,
    shardSize,
    ...(flags.png ? { png: true, pngSign: pngSign ?? "absolute_value", pngScale: positiveInt(flags, "png-scale", 1) } : {}),
    ...(flags.html ? { html: true } : {}),
    ...(flags["scale-uint8"] ? { scaleUint8: true } : {}),
    ...(flags["skip-bad-inputs"] ? { skipBadInputs: true } : {}),
    out,
  };
  const started = Date.now();
  const { manifest, todo } = await prepareJob(spec, !!flags.resume);
  const skipped = manifest.shards - todo.length;
  if (skipped > 0) process.stderr.write(`resuming: ${skipped} of ${manifest.shards} shards already done\n`);
  const doneRows = Array.from({ length: manifest.shards }, (_, s) => s)
    .filter((s) => !todo.includes(s))
    .reduce((sum, s) => {
      const [a, b] = shardRange(spec, manifest.count, s);
      return sum + b - a;
    }, 0);
  const progress = new Progress(manifest.count, manifest.shards, process.stderr, { rows: doneRows, shards: skipped });
  const redis = str(flags, "redis");
  if (redis) {
    const { runDistributed } = await import("../batch/queue");
    await runDistributed(manifest, todo, {
      redis,
      onQueued: (n) => process.stderr.write(`${n} shards queued on ${redis}; waiting for workers (torchexplain worker --redis ${redis}${str(flags, "queue") ? ` --queue ${str(flags, "queue")}` : ""})\n`),
      onNote: (line) => process.stderr.write(`${line}\n`),
      queue: str(flags, "queue"),
      workerTimeoutMs: positiveInt(flags, "worker-timeout", 300)! * 1000,
      onShard: (s, a, b, ms, worker) => progress.shard(s, a, b, ms, true, ` by ${worker}`),
    });
  } else {
    for (const s of todo) {
      const r = await runShard(manifest, s, (n) => progress.rows(n));
      progress.shard(s, r.start, r.end, r.timeMs, false);
    }
  }
  progress.finish();
  const { shape } = await assemble(manifest, { totalMs: Date.now() - started });
  process.stdout.write(`wrote ${path.join(out, "attributions.npy")} [${shape}] and ${path.join(out, "index.json")}${["heatmaps", "pages"].filter((d) => fs.existsSync(path.join(out, d))).map((d) => ` and ${path.join(out, d)}/`).join("")}\n`);
  if (spec.skipBadInputs) {
    const index = JSON.parse(await fs.promises.readFile(path.join(out, "index.json"), "utf8")) as { examples?: { source: string; error?: string }[] };
    const skipped = (index.examples ?? []).filter((x) => x.error);
    if (skipped.length) process.stderr.write(`skipped ${skipped.length} input(s) that could not be read (NaN rows; "error" in index.json): ${skipped.slice(0, 5).map((x) => x.source).join(", ")}${skipped.length > 5 ? ", …" : ""}\n`);
  }
  return 0;
}

async function llm(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("llm", argv);
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  const attrTarget = str(flags, "attr-target");
  if (attrTarget !== undefined && attrTarget !== "logProb" && attrTarget !== "prob") throw new UsageError(`--attr-target: expected logProb or prob; got '${attrTarget}'`);
  const layer = str(flags, "layer");
  const options = json(flags, "options");
  if (options && ("target" in options || "genArgs" in options)) throw new UsageError("--options: give targets in the prompts file and --max-new-tokens for generated ones");
  const { runLLMJob } = await import("../batch/llm");
  const { count, file } = await runLLMJob({
    model: existing(required(flags, "model"), "model"),
    tokenizer: existing(required(flags, "tokenizer"), "tokenizer"),
    method: required(flags, "method"),
    ...(layer !== undefined ? { layer } : {}),
    prompts: existing(required(flags, "prompts"), "prompts"),
    out: path.resolve(required(flags, "out")),
    ...(attrTarget ? { attrTarget } : {}),
    ...(options ? { options } : {}),
    ...(json(flags, "init") ? { init: json(flags, "init") } : {}),
    maxNewTokens: positiveInt(flags, "max-new-tokens", 25),
    batchSize: positiveInt(flags, "batch-size", 16)!,
    png: !!flags.png,
    html: !!flags.html,
  });
  process.stdout.write(`wrote ${count} results to ${file}${flags.png ? ` and pictures to ${path.join(path.dirname(file), "pictures")}/` : ""}${flags.html ? ` and pages to ${path.join(path.dirname(file), "pages")}/` : ""}\n`);
  return 0;
}

async function influence(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("influence", argv);
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  const { runInfluenceJob, INFLUENCE_METHODS } = await import("../batch/influence");
  const method = (str(flags, "method") ?? "TracInCP") as (typeof INFLUENCE_METHODS)[number];
  if (!INFLUENCE_METHODS.includes(method)) throw new UsageError(`--method: expected one of ${INFLUENCE_METHODS.join(", ")}; got '${method}'`);
  const checkpoints = required(flags, "checkpoints").split(",").map((c) => existing(c, "checkpoints"));
  const rates = numbers(str(flags, "learning-rates"), "learning-rates");
  if (rates && rates.length !== checkpoints.length) throw new UsageError(`--learning-rates: ${rates.length} rates for ${checkpoints.length} checkpoints`);
  const optional = (name: string) => (str(flags, name) !== undefined ? existing(str(flags, name)!, name) : undefined);
  const layer = str(flags, "layer");
  const { file, pictures } = await runInfluenceJob({
    method,
    checkpoints,
    ...(rates ? { learningRates: rates } : {}),
    model: optional("model"),
    train: existing(required(flags, "train"), "train"),
    trainLabels: optional("train-labels"),
    test: existing(required(flags, "test"), "test"),
    testLabels: optional("test-labels"),
    ...(layer !== undefined ? { layer: layer.split(",") } : {}),
    k: positiveInt(flags, "k", 5)!,
    ...(json(flags, "init") ? { init: json(flags, "init") } : {}),
    batchSize: positiveInt(flags, "batch-size"),
    image: imageOptions(flags),
    self: !!flags.self,
    png: !!flags.png,
    out: path.resolve(required(flags, "out")),
  });
  process.stdout.write(`wrote ${file}${pictures ? ` and ${pictures}` : ""}${flags.self ? ` and ${path.join(path.dirname(file), "self_influence.npy")}` : ""}\n`);
  return 0;
}

async function worker(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("worker", argv);
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  const redis = required(flags, "redis");
  const { startWorker } = await import("../batch/queue");
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} [worker ${process.pid}] ${line}\n`);
  const w = await startWorker({
    redis,
    queue: str(flags, "queue"),
    concurrency: positiveInt(flags, "concurrency", 1),
    lockDuration: positiveInt(flags, "lock-duration"),
    stalledInterval: positiveInt(flags, "stalled-interval"),
    maxStalledCount: positiveInt(flags, "max-stalled"),
    log,
  });
  log(`ready on ${redis}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      log("stopping: finishing the shards in hand");
      w.close().then(resolve, resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  disposeModels();
  return 0;
}

/** A guess at an example input when none is given: common image shapes, then features from a matmul error. */
async function guessInput(model: Awaited<ReturnType<typeof loadModel>>): Promise<number[] | undefined> {
  for (const shape of [[1, 3, 224, 224], [1, 3, 32, 32], [1, 1, 28, 28], [1, 1, 8, 8]]) {
    const x = tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
    try {
      (await model.forward(x)).dispose();
      return shape;
    } catch (e) {
      const m = /cannot be multiplied \(\d+x\d+ and (\d+)x\d+\)/.exec((e as Error).message);
      if (m) {
        const s = [1, Number(m[1])];
        try {
          (await model.forward(tensor(new Float32Array(s[1]), s))).dispose();
          return s;
        } catch {
          /* not a plain MLP */
        }
      }
    } finally {
      x.dispose();
    }
  }
  return undefined;
}

async function info(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("info", argv);
  if (positional.length !== 1) throw new UsageError("info takes one model file: torchexplain info M.pt");
  const file = existing(positional[0], "model");
  const model = await loadModel(file);
  const lines = [`model: ${file}`, `signature: ${model.signature}`, `device: ${model.device}`, `layers: ${model.layers().join(", ") || "(none)"}`];
  let shape = numbers(str(flags, "input-shape"), "input-shape");
  let guessed = false;
  const inputsFile = str(flags, "inputs");
  let example;
  if (inputsFile) {
    const src = await openInputs(existing(inputsFile, "inputs"), imageOptions(flags));
    example = (await src.rows(0, 1)).tensor;
    shape = example.shape;
  } else if (!shape) {
    shape = await guessInput(model);
    guessed = true;
  }
  if (shape) {
    const size = shape.reduce((a, b) => a * b, 1);
    example ??= tensor(new Float32Array(size), shape);
    let out;
    try {
      out = await model.forward(example);
    } catch (e) {
      // A token model's embedding refuses floats: the same shape as token ids (zeros).
      if (example.dtype !== "float32" || !/Long|Int|indices|integer/.test((e as Error).message)) throw e;
      example.dispose();
      example = tensor(new BigInt64Array(size), shape, "int64");
      out = await model.forward(example);
    }
    lines.push(`example input: [${shape}] ${example.dtype}${example.dtype === "int64" ? " (token ids)" : ""}${guessed ? " (guessed; give --input-shape or --inputs)" : ""}`, `output: [${out.shape}] ${out.dtype}`);
    out.dispose();
    example.dispose();
  } else lines.push("output: unknown (give --input-shape 1,3,32,32 or --inputs FILE to run an example)");
  process.stdout.write(lines.join("\n") + "\n");
  model.dispose();
  return 0;
}

async function insights(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs("insights", argv);
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  const model = existing(required(flags, "model"), "model");
  const portText = str(flags, "port") ?? "7070";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0 to 65535; got '${portText}'`);
  const host = str(flags, "host") ?? "127.0.0.1";
  let server: { url: string; app: { close(): Promise<unknown> } };
  const tokenizer = str(flags, "tokenizer");
  if (tokenizer !== undefined) {
    for (const f of ["inputs", "labels"]) if (str(flags, f) !== undefined) throw new UsageError(`--${f}: the language-model page takes prompts (--prompts FILE.jsonl), not --${f}`);
    const prompts = str(flags, "prompts");
    const { startLLMInsights } = await import("../insights/llm_server");
    server = await startLLMInsights({ model, tokenizer: existing(tokenizer, "tokenizer"), prompts: prompts !== undefined ? existing(prompts, "prompts") : undefined, port, host, maxSteps: positiveInt(flags, "max-steps") });
    process.stdout.write(`torchexplain insights: ${path.basename(model)} with ${path.basename(tokenizer)} at ${server.url}/ (Ctrl-C stops)\n`);
  } else {
    if (str(flags, "prompts") !== undefined) throw new UsageError("--prompts: needs --tokenizer (the language-model page)");
    const inputs = existing(required(flags, "inputs"), "inputs");
    const labelsFile = str(flags, "labels");
    const labels = labelsFile !== undefined ? existing(labelsFile, "labels") : undefined;
    const checkpoints = str(flags, "checkpoints");
    if ((checkpoints === undefined) !== (str(flags, "train") === undefined)) throw new UsageError("--checkpoints and --train go together (the influence panel)");
    const trainLabels = str(flags, "train-labels");
    const influence = checkpoints === undefined ? undefined : {
      checkpoints: checkpoints.split(",").map((c) => existing(c, "checkpoints")),
      train: existing(required(flags, "train"), "train"),
      ...(trainLabels !== undefined ? { trainLabels: existing(trainLabels, "train-labels") } : {}),
    };
    const { startInsights } = await import("../insights/server");
    const s = await startInsights({ model, inputs, labels, image: imageOptions(flags), port, host, maxSteps: positiveInt(flags, "max-steps"), influence });
    server = s;
    process.stdout.write(`torchexplain insights: ${s.dataset.count} examples of ${path.basename(model)} at ${s.url}/ (Ctrl-C stops)\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => void server.app.close().then(() => resolve(), () => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

/** Runs the command line; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // Errors that escape every caller (a Redis connection dropping in a client's
  // background) end the command with one line too.
  process.on("unhandledRejection", (e) => fatal(e));
  process.on("uncaughtException", (e) => fatal(e));
  try {
    if (command === "explain") return await explain(rest);
    if (command === "llm") return await llm(rest);
    if (command === "influence") return await influence(rest);
    if (command === "worker") return await worker(rest);
    if (command === "info") return await info(rest);
    if (command === "insights") return await insights(rest);
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      (command === undefined ? process.stderr : process.stdout).write(USAGE + "\n");
      return command === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown command '${command}' (explain, llm, influence, worker, info, insights; --help)`);
  } catch (e) {
    // The library names image options as the API does; here they are flags.
    const message = (e instanceof Error ? e.message.split("\n")[0] : String(e))
      .replace(/^size: /, "--image-size: ").replace(/pass size to/, "pass --image-size to").replace(/^crop: /, "--crop: ").replace(/^resize: /, "--resize: ");
    process.stderr.write(`${process.stderr.isTTY ? "\n" : ""}torchexplain: ${message}\n`); // a new line after a progress bar
    if (process.env.TORCHEXPLAIN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

function fatal(e: unknown): never {
  process.stderr.write(`torchexplain: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}\n`);
  if (process.env.TORCHEXPLAIN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
