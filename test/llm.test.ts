// LLM attribution against Captum 0.8 (test/fixtures/llm/references.json, made
// by scripts/make_llm_references.py on the models of scripts/make_llm.py),
// tokenizers against the Rust library's ids, properties, and rejections.
import * as fs from "fs";
import * as path from "path";
import sharp = require("sharp");
import {
  Attribution, FeatureAblation, KernelShap, LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients, Lime, LLMAttribution,
  LLMAttributionResult, LLMGradientAttribution, loadModel, loadTokenizer, manualSeed, Model, ProductBaselines, ShapleyValues,
  ShapleyValueSampling, TextTemplateInput, TextTokenInput, Tokenizer,
} from "../lib";

const DIR = path.join(__dirname, "fixtures", "llm");
const refs = JSON.parse(fs.readFileSync(path.join(DIR, "references.json"), "utf8"));
const tokenizerCases = JSON.parse(fs.readFileSync(path.join(DIR, "tokenizer_cases.json"), "utf8"));

const models: Record<string, Model> = {};
const tokenizers: Record<string, Tokenizer> = {};
beforeAll(async () => {
  for (const m of ["gpt2", "llama", "bert"]) models[m] = await loadModel(path.join(DIR, `${m}.pt`));
  for (const t of ["bpe", "wordpiece", "wordlevel"]) tokenizers[t] = await loadTokenizer(path.join(DIR, `${t}.json`));
});
afterAll(() => Object.values(models).forEach((m) => m.dispose()));

// float32 arithmetic in a different order than the reference's: a tolerance
// relative to the case's largest attribution, plus a relative one per value.
function expectClose(actual: number[], expected: number[], scale: number, what: string) {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const tol = 2e-4 * scale + 1e-3 * Math.abs(expected[i]);
    if (!(Math.abs(a - expected[i]) <= tol)) throw new Error(`${what}[${i}]: ${a} vs the reference's ${expected[i]} (tolerance ${tol})`);
  });
}

type Spec = { kind: string; template?: string; values?: string[]; baselines?: unknown; mask?: number[]; text?: string; skipTokens?: string[] };
function makeInput(spec: Spec, tok: Tokenizer) {
  if (spec.kind === "template") return new TextTemplateInput(spec.template!, spec.values!, { baselines: spec.baselines as string[], mask: spec.mask });
  return new TextTokenInput(spec.text!, tok, { baselines: spec.baselines as number | string, skipTokens: spec.skipTokens });
}

function method(name: string, model: Model, layer?: string): Attribution {
  switch (name) {
    case "FeatureAblation": return new FeatureAblation(model);
    case "ShapleyValues": return new ShapleyValues(model);
    case "ShapleyValueSampling": return new ShapleyValueSampling(model);
    case "LayerIntegratedGradients": return new LayerIntegratedGradients(model, layer!);
    case "LayerGradientXActivation": return new LayerGradientXActivation(model, layer!);
  }
  throw new Error(name);
}

describe("tokenizers reproduce the Hugging Face ids", () => {
  for (const name of ["bpe", "wordpiece", "wordlevel"])
    test(name, () => {
      for (const c of tokenizerCases[name]) expect([c.text, tokenizers[name].encode(c.text)]).toEqual([c.text, c.ids]);
      for (const c of tokenizerCases.bpe) if (name === "bpe") expect(tokenizers.bpe.decode(c.ids)).toBe(c.decoded);
    });
  test("a file that does not parse is refused by name", async () => {
    const bad = path.join(require("os").tmpdir(), `tx-bad-tokenizer-${process.pid}.json`);
    fs.writeFileSync(bad, "{ not json");
    await expect(loadTokenizer(bad)).rejects.toThrow(/path: .* does not parse/);
    fs.writeFileSync(bad, JSON.stringify({ version: "1.0" }));
    await expect(loadTokenizer(bad)).rejects.toThrow(/no "model" entry/);
    fs.unlinkSync(bad);
    await expect(loadTokenizer("/nonexistent/tokenizer.json")).rejects.toThrow(/cannot read/);
  });
});

describe("matches Captum 0.8", () => {
  for (const [i, c] of (refs.cases as any[]).entries()) {
    const name = `${i}: ${c.model} ${c.method} ${c.input.kind}${c.input.mask ? " (mask)" : ""} ${c.attrTarget ?? "logProb"}`;
    test(name, async () => {
      const tok = tokenizers[c.tokenizer];
      const m = method(c.method, models[c.model], c.layer);
      const inp = makeInput(c.input, tok);
      let r: LLMAttributionResult;
      if (c.method.startsWith("Layer")) {
        r = await new LLMGradientAttribution(m, tok).attribute(inp, { target: c.target, ...c.options });
      } else {
        if (c.seed !== null && c.seed !== undefined) manualSeed(c.seed);
        const opts = c.options.n_samples ? { nSamples: c.options.n_samples } : {};
        r = await new LLMAttribution(m, tok, { attrTarget: c.attrTarget }).attribute(inp, { target: c.target, ...opts });
      }
      const all = [c.seqAttr, ...(c.tokenAttr ?? [])].flat().map(Math.abs);
      const scale = Math.max(...all);
      expect(r.inputTokens).toEqual(c.inputTokens);
      expect(r.outputTokens).toEqual(c.outputTokens);
      expectClose(r.seqAttr, c.seqAttr, scale, "seqAttr");
      if (c.tokenAttr && !(c.model === "bert" && c.method.startsWith("Layer"))) {
        expect(r.tokenAttr).not.toBeNull();
        c.tokenAttr.forEach((row: number[], k: number) => expectClose(r.tokenAttr![k], row, scale, `tokenAttr[${k}]`));
      } else if (!c.method.startsWith("Layer")) {
        expect(r.tokenAttr).toBeNull();
      }
    });
  }
});

describe("generation", () => {
  for (const g of refs.generations as { model: string; prompt: number[]; ids: number[] }[])
    test(`greedy target of ${g.model} is transformers' generate()`, async () => {
      const tok = tokenizers.bpe;
      const inp = new TextTemplateInput("{} lives in {} and likes {}", ["dave", "paris", "the cat"], { baselines: ["anna", "rome", "a dog"] });
      expect(tok.encode(inp.toModelInput())).toEqual(g.prompt);
      const llm = new LLMAttribution(new FeatureAblation(models[g.model]), tok);
      const generated = await llm.attribute(inp, { genArgs: { maxNewTokens: 6 } });
      const given = await llm.attribute(inp, { target: g.ids });
      expect(generated.outputTokens).toEqual(tok.prettyTokens(g.ids));
      expectClose(generated.seqAttr, given.seqAttr, Math.max(...given.seqAttr.map(Math.abs)), "seqAttr");
    });
});

describe("properties", () => {
  const template = () => new TextTemplateInput("{} lives in {} and likes {}", ["dave", "paris", "the cat"], { baselines: ["anna", "rome", "a dog"] });

  test("log-probabilities add up: per-token attributions sum to the sequence's (FeatureAblation, ShapleyValues)", async () => {
    for (const M of [FeatureAblation, ShapleyValues]) {
      const r = await new LLMAttribution(new M(models.gpt2), tokenizers.bpe).attribute(template(), { target: " he is happy" });
      const sums = r.seqAttr.map((_, j) => r.tokenAttr!.reduce((s, row) => s + row[j], 0));
      expectClose(sums, r.seqAttr, Math.max(...r.seqAttr.map(Math.abs)), "column sums");
    }
  });

  test("KernelShap and ShapleyValueSampling converge to ShapleyValues; Lime with the Shapley kernel too", async () => {
    const tok = tokenizers.bpe;
    const target = " he is happy";
    const exact = (await new LLMAttribution(new ShapleyValues(models.gpt2), tok).attribute(template(), { target })).seqAttr;
    const scale = Math.max(...exact.map(Math.abs));
    manualSeed(3);
    const ks = (await new LLMAttribution(new KernelShap(models.gpt2), tok).attribute(template(), { target, nSamples: 3000 })).seqAttr;
    const svs = (await new LLMAttribution(new ShapleyValueSampling(models.gpt2), tok).attribute(template(), { target, nSamples: 600 })).seqAttr;
    for (const [name, approx, tol] of [["KernelShap", ks, 0.05], ["ShapleyValueSampling", svs, 0.1]] as const)
      approx.forEach((v, i) => {
        if (Math.abs(v - exact[i]) > tol * scale) throw new Error(`${name}[${i}] = ${v}, ShapleyValues ${exact[i]}`);
      });
    // Few samples are further off than many: the estimator converges.
    manualSeed(3);
    const few = (await new LLMAttribution(new ShapleyValueSampling(models.gpt2), tok).attribute(template(), { target, nSamples: 2 })).seqAttr;
    const err = (a: number[]) => Math.hypot(...a.map((v, i) => v - exact[i]));
    expect(err(svs)).toBeLessThan(err(few) + 1e-6);
    const lime = await new LLMAttribution(new Lime(models.gpt2), tok).attribute(template(), { target, nSamples: 400 });
    expect(lime.tokenAttr).toBeNull();
    expect(lime.seqAttr.every(Number.isFinite)).toBe(true);
  });

  test("many prompts in one call equal one at a time", async () => {
    const tok = tokenizers.bpe;
    const inputs = [
      template(),
      new TextTemplateInput("{} works in {}", ["maria", "tokyo"]),
      new TextTokenInput("the cat sat on", tok),
    ];
    const llm = new LLMAttribution(new FeatureAblation(models.gpt2), tok);
    const batched = await llm.attribute(inputs, { target: " the mat" });
    expect(batched).toHaveLength(3);
    for (const [i, inp] of inputs.entries()) {
      const one = await llm.attribute(inp, { target: " the mat" });
      expectClose(batched[i].seqAttr, one.seqAttr, Math.max(...one.seqAttr.map(Math.abs)), `prompt ${i}`);
    }
    // Gradient methods too, and a small memory budget (one sequence per pass) changes nothing.
    const g = new LLMGradientAttribution(new LayerIntegratedGradients(models.gpt2, "m.transformer.wte"), tok);
    const a = await g.attribute(new TextTokenInput("the cat sat on", tok), { target: " the mat", nSteps: 8 });
    const b = await g.attribute([new TextTokenInput("the cat sat on", tok)], { target: " the mat", nSteps: 8, internalBatchSize: 1 });
    a.tokenAttr!.forEach((row, k) => expectClose(b[0].tokenAttr![k], row, Math.max(...a.seqAttr.map(Math.abs)), "row"));
    const small = await llm.attribute(template(), { target: " the mat", memoryBudget: 200_000 });
    const big = await llm.attribute(template(), { target: " the mat" });
    expectClose(small.seqAttr, big.seqAttr, Math.max(...big.seqAttr.map(Math.abs)), "budget");
  });

  test("ProductBaselines with numTrials averages sampled baselines; a mask groups values", async () => {
    const tok = tokenizers.bpe;
    const inp = new TextTemplateInput("{name} lives in {city}", { name: "dave", city: "paris" }, {
      baselines: new ProductBaselines({ name: ["anna", "john"], city: ["rome", "oslo"] }),
    });
    const r = await new LLMAttribution(new FeatureAblation(models.gpt2), tok).attribute(inp, { target: " he is", numTrials: 4 });
    expect(r.inputTokens).toEqual(["dave", "paris"]);
    expect(r.seqAttr.every(Number.isFinite)).toBe(true);
    const grouped = new TextTemplateInput("{} and {} in {}", ["dave", "anna", "paris"], { mask: [0, 0, 1] });
    const g = await new LLMAttribution(new FeatureAblation(models.gpt2), tok).attribute(grouped, { target: " he" });
    expect(g.seqAttr[0]).toBe(g.seqAttr[1]);
  });

  test("LayerGradientShap gives one row per target token", async () => {
    manualSeed(0);
    const tok = tokenizers.bpe;
    const r = await new LLMGradientAttribution(new LayerGradientShap(models.llama, "m.model.embed_tokens"), tok).attribute(
      new TextTokenInput("the cat sat", tok), { target: " on the mat", nSamples: 8 });
    expect(r.tokenAttr).toHaveLength(r.outputTokens.length);
    expect(r.tokenAttr!.flat().every(Number.isFinite)).toBe(true);
  });
});

describe("pictures", () => {
  test("plotTokenAttr, plotSeqAttr are PNGs; toHtml a page with the tokens", async () => {
    const tok = tokenizers.bpe;
    const r = await new LLMAttribution(new FeatureAblation(models.gpt2), tok).attribute(
      new TextTemplateInput("{} lives in {}", ["dave", "paris"], { baselines: ["anna", "rome"] }), { target: " he is happy" });
    for (const png of [await r.plotTokenAttr(), await r.plotSeqAttr()]) {
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe("png");
      expect(meta.width!).toBeGreaterThan(200);
      const stats = await sharp(png).stats();
      expect(stats.channels[0].min).toBeLessThan(200); // something drawn on the white
    }
    const html = r.toHtml();
    for (const t of ["dave", "paris", "happy"]) expect(html).toContain(t);
    const ks = await new LLMAttribution(new KernelShap(models.gpt2), tok).attribute(new TextTokenInput("the cat", tok), { target: " sat", nSamples: 20 });
    await expect(ks.plotTokenAttr()).rejects.toThrow(/plotSeqAttr/);
  });
});

describe("rejections name the argument", () => {
  const tok = () => tokenizers.bpe;
  test("template placeholders and values", () => {
    expect(() => new TextTemplateInput("{} lives in {}", ["dave"])).toThrow(/template: has 2 placeholders for 1 values/);
    expect(() => new TextTemplateInput("{a} in {b}", { a: "x", c: "y" })).toThrow(/template: placeholders/);
    expect(() => new TextTemplateInput("{} in {}", ["a", "b"], { baselines: ["x"] })).toThrow(/baselines: 1 baselines for 2 values/);
    expect(() => new TextTemplateInput("{} in {}", ["a", "b"], { mask: [0] })).toThrow(/mask:/);
  });
  test("targets and models", async () => {
    const llm = new LLMAttribution(new FeatureAblation(models.gpt2), tok());
    const inp = new TextTokenInput("the cat", tok());
    await expect(llm.attribute(inp, { target: "" })).rejects.toThrow(/target: is empty/);
    await expect(llm.attribute(inp, { target: " cat".repeat(80) })).rejects.toThrow(/target: .*positions/);
    const onBert = new LLMAttribution(new FeatureAblation(models.bert), tokenizers.wordpiece);
    await expect(onBert.attribute(new TextTokenInput("good movie", tokenizers.wordpiece), { target: "good" })).rejects.toThrow(/no vocabulary axis/);
    await expect(onBert.attribute(new TextTokenInput("good movie", tokenizers.wordpiece), { target: 7 })).rejects.toThrow(/target: class 7/);
    const g = new LLMGradientAttribution(new LayerIntegratedGradients(models.gpt2, "m.transformer.wte"), tok());
    await expect(g.attribute(new TextTemplateInput("{}", ["a"]), { target: " b" })).rejects.toThrow(/TextTokenInput/);
    expect(() => new LLMAttribution(new LayerIntegratedGradients(models.gpt2, "m.transformer.wte"), tok())).toThrow(/method: LLMAttribution supports/);
    expect(() => new LLMAttribution(new FeatureAblation(models.gpt2), tok(), { attrTarget: "logits" as never })).toThrow(/attrTarget/);
    await expect(llm.attribute(inp, { target: " x", genArgs: { maxNewTokens: 2 } })).rejects.toThrow(/genArgs/);
  });
  test("cancellation", async () => {
    const llm = new LLMAttribution(new ShapleyValueSampling(models.gpt2), tok());
    const ac = new AbortController();
    const p = llm.attribute(new TextTokenInput("the cat sat on the mat and the dog", tok()), { target: " he is happy", nSamples: 5000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toThrow(/abort/i);
  });
});

describe("command line", () => {
  test("torchexplain llm: JSON Lines of prompts in, the API's results and pictures out; bad input is one line", async () => {
    require("./dist").ensureDist();
    const { spawnSync } = require("child_process");
    const tmp = fs.mkdtempSync(path.join(require("os").tmpdir(), "torchexplain-llm-cli-"));
    const prompts = [
      { id: "a", template: "{} lives in {} and likes {}", values: ["dave", "paris", "the cat"], baselines: ["anna", "rome", "a dog"], target: " he is happy" },
      { template: "{name} works in {city}", values: { name: "maria", city: "tokyo" }, target: " she is" },
      { text: "the cat sat on", target: " the mat" },
    ];
    fs.writeFileSync(path.join(tmp, "p.jsonl"), prompts.map((p) => JSON.stringify(p)).join("\n") + "\n");
    const bin = path.join(__dirname, "..", "bin", "torchexplain.js");
    const run = (...args: string[]) => spawnSync(process.execPath, [bin, "llm", "--model", path.join(DIR, "gpt2.pt"), "--tokenizer", path.join(DIR, "bpe.json"),
      "--prompts", path.join(tmp, "p.jsonl"), "--out", path.join(tmp, "out"), ...args], { encoding: "utf8", timeout: 60000 });
    const r = run("--method", "FeatureAblation", "--png", "--html");
    expect(r.stderr.split("\n").filter((l: string) => l.startsWith("torchexplain:"))).toEqual([]);
    expect(r.status).toBe(0);
    const lines = fs.readFileSync(path.join(tmp, "out", "results.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(["a", "000001", "000002"]);
    const llm = new LLMAttribution(new FeatureAblation(models.gpt2), tokenizers.bpe);
    const api = await llm.attribute(new TextTemplateInput(prompts[0].template!, prompts[0].values as string[], { baselines: prompts[0].baselines }), { target: " he is happy" });
    expectClose(lines[0].seqAttr, api.seqAttr, Math.max(...api.seqAttr.map(Math.abs)), "cli seqAttr");
    expect(lines[2].inputTokens).toEqual(tokenizers.bpe.convertIdsToTokens(tokenizers.bpe.encode("the cat sat on")));
    for (const f of ["pictures/000000_tokens.png", "pictures/000000_seq.png", "pages/000002.html"]) expect(fs.statSync(path.join(tmp, "out", f)).size).toBeGreaterThan(500);
    const wrong = run("--method", "LayerIntegratedGradients", "--layer", "m.transformer.wte");
    expect(wrong.status).toBe(1);
    expect(wrong.stderr.trim().split("\n").pop()).toMatch(/^torchexplain: prompts: prompt 1 \(id a\): inputs: LLMGradientAttribution takes a TextTokenInput/);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
