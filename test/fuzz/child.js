// Fuzz child: runs cases [from, to) of a seed one after another against the
// compiled library (dist/). It writes one JSON line per case start and end to
// fd 3 with a synchronous write, so that a crash never loses the line saying
// which case was running. Usage: node child.js SEED FROM TO [DEADLINE_MS_EPOCH]
"use strict";
const fs = require("fs");
const path = require("path");
const { makeCase, ALGORITHMS, MODELS } = require("./cases");

const ROOT = path.join(__dirname, "..", "..");
const TMP = process.env.FUZZ_TMP || require("os").tmpdir();
const [seed, from, to, deadline = Infinity] = process.argv.slice(2).map(Number);

function emit(event) {
  const buf = Buffer.from(JSON.stringify(event) + "\n");
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(3, buf, off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

// The parent going away (its end of our stdin closes) ends this process too: no orphans.
if (process.env.FUZZ_WATCH_STDIN) process.stdin.on("end", () => process.exit(3)).resume();

const T = require(path.join(ROOT, "dist", "index.js"));
const models = new Map();
const model = (file) => {
  if (!models.has(file)) models.set(file, T.loadModel(path.join(ROOT, file)));
  return models.get(file);
};

// ---- turning case data into live objects ----

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
function element(j, fill, k) {
  const rand = Math.sin(j * 1.37 + 0.5) * 0.9;
  switch (fill) {
    case "zeros": return 0;
    case "nan": return j % 3 === 0 ? NaN : rand;
    case "inf": return j % 4 === 0 ? (j % 8 ? Infinity : -Infinity) : rand;
    case "ids": return j % (k || 2);
    case "tokens": return (j * 7 + 3) % (k || 20);
    case "idsGap": return (j % 2) * 2; // ids 0 and 2: 1 is missing
    case "idsNeg": return j % 2 ? -1 : 0;
    case "huge": return j % 2 ? 1e12 : 0;
    default: return rand;
  }
}
function makeTensor({ shape, dtype, fill, k }) {
  const n = Math.max(0, numel(shape)); // case shapes hold few elements (huge dims come with a 0)
  const xs = Array.from({ length: n }, (_, j) => element(j, fill, k));
  const int = (x) => (Number.isFinite(x) ? Math.round(x * (fill === "rand" ? 3 : 1)) : 0);
  const data = {
    float32: () => Float32Array.from(xs),
    float64: () => Float64Array.from(xs),
    int64: () => BigInt64Array.from(xs, (x) => BigInt(int(x))),
    int32: () => Int32Array.from(xs, int),
    bool: () => Uint8Array.from(xs, (x) => (x ? 1 : 0)),
  }[dtype]();
  return T.tensor(data, shape, dtype);
}

const FNS = {
  noop: () => () => {},
  throws: () => () => {
    throw new Error("fuzz: callback threw");
  },
  garbage: () => () => "garbage",
  undefined: () => () => undefined,
  one: () => () => 1,
  nan: () => () => NaN,
  negative: () => () => -1,
  huge: () => () => 1e308,
  wrongLen: () => () => [1, 0],
  coalition: ({ n }) => {
    let calls = 0;
    return () => Array.from({ length: n }, (_, j) => (j + calls++) % 2);
  },
  selectFirst: ({ rank }) => () => (rank === 1 ? 0 : Array(rank).fill(0)),
  selectHuge: () => () => 1e6,
  perExample: () => (value) => Array.from({ length: value.shape[0] }, () => Array(value.shape.length - 1).fill(0)),
};

function live(v, timers) {
  if (Array.isArray(v)) return v.map((x) => live(x, timers));
  if (v === null || typeof v !== "object") return v;
  if (v.$tensor) return makeTensor(v.$tensor);
  if (v.$fn) return FNS[v.$fn](v);
  if ("$signal" in v) {
    if (v.$signal < 0) return AbortSignal.abort();
    const ac = new AbortController();
    timers.push(setTimeout(() => ac.abort(), v.$signal));
    return ac.signal;
  }
  const out = {};
  for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: live(v[k], timers), enumerable: true, configurable: true, writable: true });
  return out;
}

// ---- checking what resolved ----

const isFloat = (t) => t.dtype === "float32" || t.dtype === "float64";
const finite = (t) => !isFloat(t) || t.data().every(Number.isFinite);
const shapeOf = (t) => JSON.stringify(t.shape);

/** null when a resolved attribution has the documented form, else what is wrong. */
function checkAttribution(c, inputs, options, result) {
  const tensors = [];
  let attrs = result;
  if (options && options.returnConvergenceDelta === true) {
    if (!result || !(result.delta instanceof T.Tensor)) return "returnConvergenceDelta: no delta Tensor";
    tensors.push(result.delta);
    attrs = result.attributions;
  }
  const list = Array.isArray(attrs) ? attrs : [attrs];
  if (!list.length || !list.every((t) => t instanceof T.Tensor)) return "resolved to something other than Tensors";
  tensors.push(...list);
  const spec = ALGORITHMS[c.base || c.algorithm];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  // Input attributions are shaped like the inputs (a batch of 1 for a model with one value per batch).
  if ((!spec.layer || spec.toInputs) && !(c.returnInputShape === false && (spec.keys || []).includes("returnInputShape"))) {
    const form = (x, n) => (Array.isArray(x) ? `an array of ${n}` : "a Tensor");
    if (Array.isArray(attrs) !== Array.isArray(inputs) || list.length !== ins.length) return `${form(attrs, list.length)} for ${form(inputs, ins.length)} as inputs`;
    for (const [k, t] of list.entries()) {
      const want = ins[k].shape, got = t.shape;
      const ok = shapeOf(t) === JSON.stringify(want) || (c.aggregate && got[0] === 1 && JSON.stringify(got.slice(1)) === JSON.stringify(want.slice(1)));
      if (!ok) return `attribution ${k} has shape [${got}] for input shape [${want}]`;
    }
  }
  if (!c.nonFinite && !tensors.every(finite)) return "non-finite values from finite inputs and options";
  return null;
}

// ---- the cases ----

async function attribute(c, timers) {
  const m = await model(c.modelFile);
  const init = live(c.init, timers), layer = live(c.layer, timers);
  const make = (name) => (ALGORITHMS[name].layer || ALGORITHMS[name].neuron ? new T[name](m, layer, init) : new T[name](m, init));
  const method = c.base ? new T.NoiseTunnel(make(c.base)) : make(c.algorithm);
  const inputs = live(c.inputs, timers), options = live(c.options, timers);
  return checkAttribution(c, inputs, options, await method.attribute(inputs, options));
}

async function loadModel(c) {
  const src = path.join(ROOT, c.source);
  const own = path.join(TMP, `case-${c.i}.pt`); // removed after the case
  let p;
  switch (c.target) {
    case "missing": p = path.join(TMP, `missing-${c.i}.pt`); break;
    case "directory": p = TMP; break;
    case "fifo": p = path.join(TMP, "fifo.pt"); break; // made by the parent; nothing ever writes to it
    case "nul": p = src + "\0.pt"; break;
    case "empty": fs.writeFileSync((p = own), ""); break;
    case "truncated": { const b = fs.readFileSync(src); fs.writeFileSync((p = own), b.subarray(0, Math.floor(c.cut * b.length))); break; }
    case "flipped": {
      const b = fs.readFileSync(src);
      for (const [at, mask] of c.flips) b[Math.floor(at * b.length)] ^= mask;
      fs.writeFileSync((p = own), b);
      break;
    }
    case "json": p = path.join(ROOT, "test", "fixtures", "golden", "index.json"); break;
    case "notString": p = c.notString; break;
    case "relative": p = c.source; break; // relative to the working directory, the repository root
    default: p = src;
  }
  try {
    const m = await T.loadModel(p, c.device === undefined ? undefined : { device: c.device });
    if (!(m instanceof T.Model)) return "loadModel resolved to something other than a Model";
    // A model that loads, even from damaged bytes, must still behave: list its layers and run (or refuse) forward.
    m.layers();
    const spec = Object.values(MODELS).find((x) => x.file === c.source);
    const xs = spec.inputs.map((s) => makeTensor({ shape: [2, ...s], dtype: spec.tokens ? "int64" : "float32", fill: spec.tokens ? "tokens" : "rand" }));
    await m.forward(xs, spec.args).catch((e) => {
      if (!(e instanceof Error) || !e.message) throw new Error(`BAD: forward of a loaded model rejected with ${String(e)}`);
    });
    return null;
  } finally {
    fs.rmSync(own, { force: true });
  }
}

function makeData(kind, len) {
  const seq = Array.from({ length: len }, (_, j) => j * 0.5);
  switch (kind) {
    case "array": return seq;
    case "nested": return Array.from({ length: Math.max(1, len >> 1) }, (_, j) => [j, j + 1]);
    case "ragged": return [[1, 2], [3]];
    case "float32": return Float32Array.from(seq);
    case "float64": return Float64Array.from(seq);
    case "int32": return Int32Array.from(seq, Math.floor);
    case "bigint64": return BigInt64Array.from(seq, (x) => BigInt(Math.floor(x)));
    case "uint8": return Uint8Array.from(seq, Math.floor);
    case "int8": return Int8Array.from(seq, Math.floor);
    case "uint16": return Uint16Array.from(seq, Math.floor);
    case "strings": return Array(len).fill("a");
    case "objects": return Array(len).fill({});
    case "bools": return Array(len).fill(true);
    case "null": return null;
    case "number": return 5;
    case "mixed": return [1, true, "x"];
    case "holes": return new Array(len);
    case "nan": return Array(len).fill(NaN);
  }
}

function tensorCall(c) {
  const t = T.tensor(makeData(c.data, c.len), c.shape, c.dtype);
  if (!(t instanceof T.Tensor)) return "tensor() returned something other than a Tensor";
  // toArray() builds one JS array per prefix of the shape: skip it where that is legitimately huge.
  let rows = 1, small = true;
  for (const d of t.shape.slice(0, -1)) if ((rows *= Math.max(1, d)) > 1e5) small = false;
  if (c.then === "data") t.data();
  else if (c.then === "toArray" && small) t.toArray();
  else if (c.then === "toString" && small) String(t);
  else if (c.then !== "none" && !["toArray", "toString"].includes(c.then)) t.to(c.then);
  return null;
}

async function forward(c, timers) {
  const m = await model(c.modelFile);
  const out = await m.forward(live(c.inputs, timers), c.args === undefined ? undefined : live(c.args, timers));
  return out instanceof T.Tensor ? null : "forward resolved to something other than a Tensor";
}

function interpolate(c, timers) {
  const out = T.interpolate(live(c.input, timers), c.size, c.mode);
  return out instanceof T.Tensor ? null : "interpolate returned something other than a Tensor";
}

// Robustness, metrics and concepts: attacks resolve to inputs' shapes, metrics to [batch].
async function extra(c, timers) {
  const m = await model(c.modelFile);
  const inputs = live(c.inputs, timers), options = live(c.options, timers), init = live(c.init, timers);
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const batch = ins[0].shape[0];
  const { attributions, perturbFunc, ...rest } = options;
  let out;
  switch (c.algorithm) {
    case "FGSM":
    case "PGD": {
      const r = await new T[c.algorithm](m, init).perturb(inputs, options);
      const list = Array.isArray(r) ? r : [r];
      if (list.length !== ins.length || list.some((t, k) => !(t instanceof T.Tensor) || shapeOf(t) !== shapeOf(ins[k]))) return "perturbed inputs not shaped like the inputs";
      if (!c.nonFinite && !list.every(finite)) return "non-finite perturbed inputs from finite ones";
      return null;
    }
    case "infidelity": out = await T.infidelity(m, perturbFunc, inputs, attributions, rest); break;
    case "sensitivityMax": out = await T.sensitivityMax(new T.Saliency(m), inputs, options); break;
    case "deletionCurve":
    case "insertionCurve": out = (await T[c.algorithm](m, inputs, attributions, rest)).auc; break;
    case "faithfulnessCorrelation": out = await T.faithfulnessCorrelation(m, inputs, attributions, rest); break;
    case "TCAV": {
      const [a, b] = live(c.concepts, timers);
      const scores = await new T.TCAV(m, live(c.layer, timers), init).attribute(inputs, [[new T.Concept(0, "a", a), new T.Concept(1, "b", b)]], options);
      const sets = Object.values(scores);
      if (sets.length !== 1 || Object.values(sets[0]).some((s) => !(s.signCount instanceof T.Tensor) || s.signCount.shape[0] !== 2)) return "TCAV scores of the wrong form";
      return null;
    }
  }
  if (!(out instanceof T.Tensor) || shapeOf(out) !== JSON.stringify([batch])) return `resolved to something other than a [${batch}] Tensor`;
  // A correlation is NaN where a side is constant; the others stay finite.
  if (!c.nonFinite && c.algorithm !== "faithfulnessCorrelation" && !finite(out)) return "non-finite metric from finite inputs";
  return null;
}

// LLM attribution: a result per prompt whose lists fit its tokens.
let tokenizer;
async function llm(c, timers) {
  const m = await model(c.model);
  tokenizer ??= await T.loadTokenizer(path.join(ROOT, c.tokenizer));
  const Method = T[c.method];
  const method = /^Layer/.test(c.method) ? new Method(m, c.layer) : new Method(m);
  const explainer = new T[c.algorithm](method, tokenizer, c.init);
  const input = c.input.kind === "template"
    ? new T.TextTemplateInput(c.input.template, c.input.values, { baselines: c.input.baselines, mask: c.input.mask })
    : new T.TextTokenInput(c.input.text, tokenizer, { baselines: c.input.baselines, skipTokens: c.input.skipTokens });
  const r = await explainer.attribute(input, live(c.options, timers));
  if (!(r instanceof T.LLMAttributionResult)) return "resolved to something other than an LLMAttributionResult";
  if (r.seqAttr.length !== r.inputTokens.length) return `${r.seqAttr.length} attributions for ${r.inputTokens.length} input tokens`;
  if (r.tokenAttr && (r.tokenAttr.length !== r.outputTokens.length || r.tokenAttr.some((row) => row.length !== r.inputTokens.length))) return "tokenAttr not [output tokens, input tokens]";
  if (![r.seqAttr, ...(r.tokenAttr || [])].flat().every(Number.isFinite)) return "non-finite attributions";
  return null;
}

// Training-data influence: scores [nTest, nTrain] (or [1, nTrain]), the top k, self-influence [nTrain], or per-layer similarities.
async function influence(c, timers) {
  const m = await model(c.modelFile);
  const train = { inputs: live(c.train, timers), labels: live(c.labels, timers) };
  const test = { inputs: live(c.test, timers), labels: live(c.testLabels, timers) };
  const ckpts = c.checkpoints.map((k) => (k && typeof k === "object" && typeof k.path === "string" ? { ...k, path: path.join(ROOT, k.path) } : k));
  const init = live(c.init, timers);
  const options = live(c.options, timers);
  let obj;
  switch (c.algorithm) {
    case "TracInCP": obj = new T.TracInCP(m, train, ckpts, init); break;
    case "TracInCPFast": obj = new T.TracInCPFast(m, c.fcLayer, train, ckpts, init); break;
    case "TracInCPFastRandProj": obj = new T.TracInCPFastRandProj(m, c.fcLayer, train, ckpts, init); break;
    case "SimilarityInfluence": obj = new T.SimilarityInfluence(m, init.layers ?? [c.fcLayer], { inputs: train.inputs }, init); break;
    default: obj = new T[c.algorithm](m, train, ckpts[0] && ckpts[0].path ? ckpts[0].path : ckpts[0], init);
  }
  try {
    const rows = (x) => { const t = Array.isArray(x) ? x[0] : x; return t instanceof T.Tensor && t.shape.length ? t.shape[0] : -1; };
    const nTrain = rows(train.inputs), nTest = rows(test.inputs);
    if (c.algorithm === "SimilarityInfluence") {
      const r = await obj.influence(test.inputs, { topK: options.k ?? 1, signal: options.signal, timeoutMs: options.timeoutMs });
      for (const v of Object.values(r)) if (!(v.indices instanceof T.Tensor) || v.indices.shape[0] !== nTest) return "similarity results of the wrong form";
      return null;
    }
    if (c.call === "selfInfluence") {
      const s = await obj.selfInfluence(undefined, options);
      if (!(s instanceof T.Tensor) || shapeOf(s) !== JSON.stringify([nTrain])) return `self-influence is not a [${nTrain}] Tensor`;
      return c.nonFinite || finite(s) ? null : "non-finite self-influence from finite inputs";
    }
    const r = await obj.influence(test, options);
    const scores = r instanceof T.Tensor ? r : r.influenceScores;
    if (!(scores instanceof T.Tensor)) return "resolved to neither scores nor the top k";
    const want = options.aggregate === true ? 1 : nTest;
    if (r instanceof T.Tensor && shapeOf(r) !== JSON.stringify([want, nTrain])) return `scores ${shapeOf(r)}, expected [${want}, ${nTrain}]`;
    if (!(r instanceof T.Tensor) && (r.indices.shape[0] !== want || Array.from(r.indices.data(), Number).some((i) => i < 0 || i >= nTrain))) return "top-k indices outside the training set";
    return c.nonFinite || finite(scores) ? null : "non-finite influence from finite inputs";
  } finally {
    await obj.dispose();
  }
}

const RUN = { attribute, loadModel, tensor: tensorCall, forward, interpolate, extra, llm, influence };
// The watcher's self-test: { crash, exit, hang, memory } name the cases that misbehave on
// purpose; the other cases resolve without touching the library.
const SELFTEST = process.env.FUZZ_SELFTEST && JSON.parse(process.env.FUZZ_SELFTEST);
async function misbehave(i) {
  if (i === SELFTEST.crash) process.kill(process.pid, "SIGSEGV");
  if (i === SELFTEST.exit) process.exit(7);
  if (i === SELFTEST.hang) await new Promise(() => setInterval(() => {}, 1000));
  if (i === SELFTEST.memory) for (const hold = []; ; await new Promise((r) => setTimeout(r, 5))) hold.push(Buffer.alloc(64 << 20, 1));
}

(async () => {
  emit({ ready: true, pid: process.pid });
  for (let i = from; i < to; i++) {
    if (Date.now() > deadline) break; // the parent's time budget is spent
    const c = makeCase(seed, i);
    const timers = [];
    emit({ case: i, start: true });
    const t0 = Date.now();
    let outcome, message;
    try {
      const bad = SELFTEST ? await misbehave(i) : await RUN[c.kind](c, timers);
      [outcome, message] = bad ? ["bad", bad] : ["resolved", undefined];
    } catch (e) {
      const ok = e instanceof Error && typeof e.message === "string" && e.message.trim() !== "" && !e.message.startsWith("BAD: ");
      [outcome, message] = ok ? ["rejected", e.message.slice(0, 300)] : ["bad", `rejected with ${e instanceof Error ? `${e.name} '${e.message}'` : String(e)}`];
    }
    timers.forEach(clearTimeout);
    emit({ case: i, outcome, message, ms: Date.now() - t0 });
  }
  emit({ done: true });
  process.exit(0);
})();
