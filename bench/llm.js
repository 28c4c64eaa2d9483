// The LLM rows of npm run bench: a random 6-layer, 256-wide GPT-2
// (scripts/make_llm.py --bench, made on first use with BENCH_PYTHON, which
// needs transformers), prompts of 8 template values, 16 target tokens. Captum's
// side is a python service answering one LLMAttribution call per prompt.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const FIXTURES = path.join(__dirname, "..", "test", "fixtures", "llm");
const TEMPLATE = "{} and {} met {} in {} on {} when {} said {} to {}";
const WORDS = ["dave", "anna", "maria", "john", "li", "omar", "sofia", "kenji", "paris", "rome", "london", "tokyo",
  "cairo", "lima", "oslo", "delhi", "the cat", "a dog", "he", "she", "happy", "sad", "good", "movie"];

// The bench model, made once into the build folder (about 20 MB: not committed).
function benchModel(python) {
  const file = path.join(__dirname, "..", "build", "gpt2_bench.pt");
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const r = spawnSync(python, [path.join(__dirname, "..", "scripts", "make_llm.py"), "--bench", file], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`  (no LLM rows: ${python} could not make the bench GPT-2, which needs transformers: ${(r.stderr || "").trim().split("\n").pop()})`);
    return null;
  }
  return file;
}

function prompts(n) {
  return Array.from({ length: n }, (_, p) => Array.from({ length: 8 }, (_, i) => WORDS[(p * 5 + i * 3) % WORDS.length]));
}

// Rows: [name, run, passes (PyTorch floor), call (Captum's request), timing].
async function llmWork(tx, python) {
  const file = benchModel(python);
  if (!file) return [];
  const tok = await tx.loadTokenizer(path.join(FIXTURES, "bpe.json"));
  const lm = await tx.loadModel(file);
  const target = tok.encode(" she is happy and the cat sat on the mat in rome with a dog and he likes it").slice(0, 16);
  if (target.length !== 16) throw new Error("bench target: expected 16 tokens");
  const inputs = (vals) => vals.map((v) => new tx.TextTemplateInput(TEMPLATE, v));
  const one = prompts(1), sixteen = prompts(16);
  const ids = (text) => tok.encode(text);
  const fill = (vals) => vals.reduce((s, v) => s.replace("{}", v), TEMPLATE);
  // The floor: the bare passes over prompt + target[:-1] (teacher forcing),
  // one row per ablated value plus the original (FeatureAblation), or one row
  // per target token and step (LayerIG), grouped by length.
  const seqs = (texts) => texts.map((t) => [...ids(t), ...target.slice(0, -1)]);
  const ablated = (vals) => seqs([fill(vals), ...vals.map((_, i) => fill(vals.map((v, j) => (j === i ? "" : v))))]);
  const passesOf = (rowLists, backward) => {
    const byLength = new Map();
    for (const r of rowLists.flat()) byLength.set(r.length, [...(byLength.get(r.length) || []), r]);
    return [...byLength.values()].map((rows) => {
      const L = rows[0].length;
      const idsT = tx.tensor(BigInt64Array.from(rows.flat(), BigInt), [rows.length, L], "int64");
      const mask = tx.tensor(new BigInt64Array(rows.length * L).fill(1n), [rows.length, L], "int64");
      return { model: file, rows: [idsT, mask], target: 0, chunk: 0, backward };
    });
  };
  const igRows = (vals, steps) => Array.from({ length: 16 * steps }, () => [...ids(fill(vals)), ...target.slice(0, -1)]);
  const llmCall = (method, vals, kwargs, layer) => ({ llm: { model: file, tokenizer: path.join(FIXTURES, "bpe.json"), method, layer, template: TEMPLATE, prompts: vals, target, kwargs } });
  const fa = new tx.LLMAttribution(new tx.FeatureAblation(lm), tok);
  const svs = new tx.LLMAttribution(new tx.ShapleyValueSampling(lm), tok);
  const ig = new tx.LLMGradientAttribution(new tx.LayerIntegratedGradients(lm, "m.transformer.wte"), tok);
  const slow = { rounds: 3, warmup: 1 }; // Captum's calls take seconds
  const tokenInputs = (vals) => vals.map((v) => new tx.TextTokenInput(fill(v), tok));
  return [
    ["LLM FeatureAblation, GPT-2 6×256, 8 template values, 16 target tokens", () => fa.attribute(inputs(one), { target }),
      passesOf(one.map(ablated), false), llmCall("FeatureAblation", one, {}), slow],
    ["LLM FeatureAblation, as above, 16 prompts in one call", () => fa.attribute(inputs(sixteen), { target }),
      passesOf(sixteen.map(ablated), false), llmCall("FeatureAblation", sixteen, {}), slow],
    ["LLM ShapleyValueSampling, as above, 1 prompt, 5 samples", () => svs.attribute(inputs(one), { target, nSamples: 5 }),
      null, llmCall("ShapleyValueSampling", one, { n_samples: 5 }), slow],
    [`LLM LayerIntegratedGradients, GPT-2 6×256, embedding, ${ids(fill(one[0])).length}-token prompt, 16 target tokens, 8 steps`, () => ig.attribute(tokenInputs(one), { target, nSteps: 8 }),
      passesOf([igRows(one[0], 8)], true), llmCall("LayerIntegratedGradients", one, { n_steps: 8 }, "transformer.wte"), slow],
  ];
}

module.exports = { llmWork };
