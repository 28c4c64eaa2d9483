// Real architectures (test/fixtures/zoo, made by scripts/make_zoo.py with pip
// torch 2.x at test set-up) against Captum 0.8's outputs on the same weights
// (test/fixtures/zoo_references, made by scripts/make_zoo_references.py).
// Each case either matches the reference, or — where the reference is wrong
// (the reason is recorded with it) or refuses — a property of ours is checked:
// summation to delta, LRP-0 = gradient x input on ReLU networks, convergence.
import * as fs from "fs";
import * as path from "path";
import * as T from "../lib";

const ZOO = path.join(__dirname, "fixtures", "zoo");
const REFS = path.join(__dirname, "fixtures", "zoo_references");
const major = Number(T.buildInfo().libtorch.split(".")[0]);

interface TensorJson { dtype: "int64" | "float32"; shape: number[]; data: string }
interface Case {
  options: Record<string, unknown>;
  attributions?: string;
  shape?: number[];
  captumDelta?: number;
  captumError?: string;
  reference?: string; // "wrong: why"
  float32Error?: number;
  variant?: { attributions?: string; captumError?: string; float32Error?: number };
}
interface Doc { model: string; inputs: TensorJson[]; extra: TensorJson[]; target: number | number[]; output: { shape: number[]; data: string }; cases: Record<string, Case> }

const bytes = (b64: string) => {
  const b = Buffer.from(b64, "base64");
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
};
const floats = (b64: string) => new Float32Array(bytes(b64));
const tensorOf = (j: TensorJson) => T.tensor(j.dtype === "int64" ? new BigInt64Array(bytes(j.data)) : new Float32Array(bytes(j.data)), j.shape);
const values = (t: T.Tensor) => Array.from(t.data() as Float32Array);
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

// The references are Captum's float64 answers. Float32 through a deep
// network, with batch norms folded and another op order, is allowed 1e-4 of
// the largest value, plus twice what the reference's own float32 run is off
// by (`float32Error`: 1e-7 on most nets, 1e-4 for IG on vgg11_bn, whose
// ReLUs flip between nearby path points).
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, float32Error = 0) {
  expect(got.length).toBe(want.length);
  const tol = (1e-4 + 2 * float32Error) * maxAbs(want) + 1e-7;
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst).toBeLessThanOrEqual(tol);
}

const METHODS: Record<string, new (m: T.Model, layer?: string) => { attribute(x: unknown, o: object): Promise<unknown> }> = {
  Saliency: T.Saliency, IntegratedGradients: T.IntegratedGradients, InputXGradient: T.InputXGradient, DeepLift: T.DeepLift,
  GuidedBackprop: T.GuidedBackprop, LRP: T.LRP, LayerGradCam: T.LayerGradCam, Occlusion: T.Occlusion,
  LayerIntegratedGradients: T.LayerIntegratedGradients, LayerGradientXActivation: T.LayerGradientXActivation,
  LayerDeepLift: T.LayerDeepLift, LayerConductance: T.LayerConductance, FeatureAblation: T.FeatureAblation,
} as never;

// Models whose attention torch 2.x saves as aten::scaled_dot_product_attention
// (BERT is made with eager attention: softmax and matmul, which 1.13 has).
const ATTENTION = new Set(["transformer", "distilbert", "gpt2", "vit"]);
// Piecewise-linear networks (ReLU, max pooling, affine layers), where LRP-0 is gradient x input.
const RELU_NETS = new Set(["resnet18", "densenet", "vgg11_bn", "audio"]);

const docs: Doc[] = fs.readdirSync(REFS).filter((f) => f.endsWith(".json")).sort().map((f) => JSON.parse(fs.readFileSync(path.join(REFS, f), "utf8")));

for (const doc of docs) {
  describe(doc.model, () => {
    const file = path.join(ZOO, doc.model + ".pt");
    if (major < 2 && ATTENTION.has(doc.model)) {
      test("is refused on LibTorch 1.x as TorchScript from a newer PyTorch, naming the op", async () => {
        const e = await T.loadModel(file).catch((x) => x);
        expect(e.code).toBe("ERR_MODEL_NEWER_PYTORCH");
        expect(e.message).toMatch(/aten::scaled_dot_product_attention, which LibTorch 1\.\d+\.\d+ does not have/);
        expect(e.message).toMatch(/Rebuild torchexplain against a LibTorch at least as new/);
      });
      return;
    }
    let model: T.Model;
    const inputs = doc.inputs.map(tensorOf);
    const extra = doc.extra.map(tensorOf);
    const target = Array.isArray(doc.target) ? [doc.target as [number, number]] : doc.target;
    const common = { target, ...(extra.length ? { additionalForwardArgs: extra } : {}) };
    const x = inputs[0];
    const run = (method: string, options: Record<string, unknown>) => {
      const { layer, ...rest } = options as { layer?: string };
      const A = METHODS[method];
      return (layer ? new A(model, layer) : new A(model)).attribute(x, { ...common, ...rest }) as Promise<T.Tensor & { attributions: T.Tensor; delta: T.Tensor }>;
    };
    const attributionsOf = (r: unknown) => ((r as { attributions?: T.Tensor }).attributions ?? (r as T.Tensor));
    const count = x.shape.reduce((a, b) => a * b);
    // All zeros in x's dtype (zero ids for text).
    const zeros = () => T.tensor(x.dtype === "int64" ? new BigInt64Array(count) : new Float32Array(count), x.shape);
    // The target output at the input and at the all-zero baseline.
    const gap = async () => {
      const zero = zeros();
      const at = async (t: T.Tensor) => {
        const out = values(await model.forward([t], extra));
        return Array.isArray(doc.target) ? out[(doc.target[0] as number) * doc.output.shape[2] + (doc.target[1] as number)] : out[doc.target as number];
      };
      const fx = await at(x), f0 = await at(zero);
      return { gap: fx - f0, scale: Math.max(1, Math.abs(fx), Math.abs(f0)) };
    };

    beforeAll(async () => {
      if (!fs.existsSync(file)) throw new Error(`${file} is missing: npm test's set-up makes the zoo with scripts/make_zoo.py`);
      model = await T.loadModel(file);
    });

    test("the zoo file computes the reference's output (the zoo is not stale)", async () => {
      expectClose(values(await model.forward(inputs, extra)), floats(doc.output.data));
    });

    for (const [method, c] of Object.entries(doc.cases)) {
      const wrong = c.reference?.startsWith("wrong:");
      if (c.attributions && !wrong) {
        test(`${method} matches the reference`, async () => {
          expectClose(values(attributionsOf(await run(method, c.options))), floats(c.attributions!), c.float32Error);
        });
        continue;
      }
      const why = wrong ? c.reference!.slice(7) : `the reference refuses: ${c.captumError}`;
      if (c.variant?.attributions) {
        test(`${method} matches the reference run with the missed ops as modules (${why})`, async () => {
          expectClose(values(attributionsOf(await run(method, c.options))), floats(c.variant!.attributions!), c.variant!.float32Error);
        });
        continue;
      }
      if (method === "DeepLift" || method === "LayerDeepLift") {
        if (doc.model === "lstm") {
          test(`${method} is refused, naming the op (${why})`, async () => {
            await expect(run(method, c.options)).rejects.toThrow(/has no rule for aten::lstm in 'lstm' \(LSTM\)/);
          });
          continue;
        }
        test(`${method}: summation to delta holds (${why})`, async () => {
          const { gap: g, scale } = await gap();
          const r = await run(method, { ...c.options, returnConvergenceDelta: true });
          expect(Math.abs(sum(values(r.attributions)) - g)).toBeLessThan(1e-4 * scale);
          expect(Math.abs(values(r.delta)[0])).toBeLessThan(1e-4 * scale);
          if (c.captumDelta !== undefined) expect(Math.abs(c.captumDelta)).toBeGreaterThan(1e-3 * Math.abs(g));
        });
        continue;
      }
      if (method === "LRP" && RELU_NETS.has(doc.model)) {
        test(`LRP (epsilon rule) equals gradient x input on a ReLU network (${why})`, async () => {
          const lrp = values(await run("LRP", {}));
          const ixg = values(await run("InputXGradient", {}));
          expectClose(lrp, ixg);
        });
        continue;
      }
      if (method === "LRP") {
        test(`LRP gives finite relevance and delta = output - total relevance (${why}; biases and held gates absorb relevance)`, async () => {
          const r = await run("LRP", { returnConvergenceDelta: true });
          const rel = values(r.attributions);
          expect(rel.every(Number.isFinite)).toBe(true);
          const out = values(await model.forward(inputs, extra))[doc.target as number];
          expect(Math.abs(values(r.delta)[0] - (out - sum(rel)))).toBeLessThan(1e-4 * Math.max(1, Math.abs(out)));
        });
        continue;
      }
      if (method === "LayerConductance") {
        test(`LayerConductance on token ids converges (its path runs in the embedding's space; ${why})`, async () => {
          const { scale } = await gap();
          const d50 = Math.abs(values((await run(method, { ...c.options, nSteps: 50 })).delta)[0]);
          const d400 = Math.abs(values((await run(method, { ...c.options, nSteps: 400 })).delta)[0]);
          expect(d400).toBeLessThan(0.25 * d50 + 1e-6 * scale);
          expect(d400).toBeLessThan(2e-3 * scale);
        });
        continue;
      }
      throw new Error(`${doc.model}/${method}: no reference and no property to check`);
    }

    // Stochastic methods have no reference outputs: their expectations do.
    const text = x.dtype === "int64";
    const layer = (doc.cases.LayerIntegratedGradients?.options.layer as string) ?? "";
    test("GradientShap is complete in expectation (the mean delta is within 5 standard errors of 0)", async () => {
      T.manualSeed(7);
      const n = 64;
      // Not the zero image: along a ray from 0 a layer norm's output is constant
      // but for a jump right at 0, which random points never sample.
      const base = text ? zeros() : T.tensor(Float32Array.from({ length: count }, (_, i) => 0.3 * Math.cos(i * 0.11)), x.shape);
      const options = { ...common, baselines: base, nSamples: n, returnConvergenceDelta: true as const };
      const r = text ? await new T.LayerGradientShap(model, layer).attribute(x, options) : await new T.GradientShap(model).attribute(x, options);
      const d = values(r.delta);
      expect(d.length).toBe(n);
      const mean = sum(d) / n, sd = Math.sqrt(sum(d.map((v) => (v - mean) ** 2)) / (n - 1));
      expect(Math.abs(mean)).toBeLessThan(5 * sd / Math.sqrt(n) + 1e-6);
    });
    if (!text)
      test("NoiseTunnel with vanishing noise tends to the method it wraps", async () => {
        T.manualSeed(7);
        const ig = values(await new T.IntegratedGradients(model).attribute(x, { target, nSteps: 16 }));
        const nt = values(await new T.NoiseTunnel(new T.IntegratedGradients(model)).attribute(x, { target, nSteps: 16, nSamples: 4, stdevs: 1e-6 }));
        const tol = 2e-3 * maxAbs(ig);
        for (let i = 0; i < ig.length; i++) expect(Math.abs(nt[i] - ig[i])).toBeLessThanOrEqual(tol);
      });
  });
}

describe("a GPT-2 traced and saved by torch 2.13", () => {
  (major >= 2 ? test : test.skip)("LayerIntegratedGradients on the token embedding is complete at 64 steps", async () => {
    const m = await T.loadModel(path.join(ZOO, "gpt2.pt"));
    const ids = T.tensor(BigInt64Array.from([5n, 17n, 3n, 99n, 42n, 7n, 8n, 1n]), [1, 8]);
    const mask = T.tensor(BigInt64Array.from({ length: 8 }, () => 1n), [1, 8]);
    const out = values(await m.forward([ids], [mask]));
    const r = await new T.LayerIntegratedGradients(m, "model.transformer.wte").attribute(ids, {
      target: [[7, 42]], additionalForwardArgs: [mask], nSteps: 64, returnConvergenceDelta: true,
    });
    expect(r.attributions.shape).toEqual([1, 8, 32]);
    expect(Math.abs(values(r.delta)[0])).toBeLessThan(1e-4 * Math.max(1, Math.abs(out[7 * 100 + 42])));
  });
});

describe("loadModel's output option: GPT-2 returning a dict or a tuple, as transformers does", () => {
  const ids = () => T.tensor(BigInt64Array.from([5n, 17n, 3n, 99n, 42n, 7n, 8n, 1n]), [1, 8]);
  const mask = () => T.tensor(BigInt64Array.from({ length: 8 }, () => 1n), [1, 8]);
  const file = (f: string) => path.join(ZOO, f + ".pt");
  (major >= 2 ? test : test.skip)("picks the logits by key or index; forward and attribution then see that tensor", async () => {
    const want = values(await (await T.loadModel(file("gpt2"))).forward([ids()], [mask()]));
    for (const [f, output] of [["gpt2_dict", "logits"], ["gpt2_tuple", 0]] as const) {
      const m = await T.loadModel(file(f), { output });
      expectClose(values(await m.forward([ids()], [mask()])), want);
      const r = await new T.LayerIntegratedGradients(m, "model.transformer.wte").attribute(ids(), {
        target: [[7, 42]], additionalForwardArgs: [mask()], returnConvergenceDelta: true,
      });
      expect(Math.abs(values(r.delta)[0])).toBeLessThan(1e-4);
    }
  });
  (major >= 2 ? test : test.skip)("wrong or missing choices are rejected, naming what there is", async () => {
    const dict = await T.loadModel(file("gpt2_dict"));
    await expect(dict.forward([ids()], [mask()])).rejects.toThrow(/got Dict\(str, Tensor\); load it with the 'output' option/);
    await expect(T.loadModel(file("gpt2_dict"), { output: "nope" })).rejects.toThrow(/returns a dict with the keys 'logits', not 'nope'/);
    await expect(T.loadModel(file("gpt2_dict"), { output: 0 })).rejects.toThrow(/expected a key of type str, got 0/);
    await expect(T.loadModel(file("gpt2_tuple"), { output: 5 })).rejects.toThrow(/a tuple of 2 elements .*expected an index from 0 to 1, got 5/);
    await expect(T.loadModel(file("gpt2"), { output: "logits" })).rejects.toThrow(/returns Tensor, not a tuple or dict .*leave 'output' out/);
    await expect(T.loadModel(file("gpt2_tuple"), { output: -1 })).rejects.toThrow(/output: expected an element index \(an integer >= 0\)/);
  });
});

describe("an op LibTorch cannot differentiate", () => {
  (major >= 2 ? test : test.skip)("is named, with the usual cause (a TransformerEncoder traced under no_grad)", async () => {
    const m = await T.loadModel(path.join(ZOO, "transformer_fastpath.pt"));
    const ids = T.tensor(BigInt64Array.from([5n, 17n, 3n, 99n, 42n, 7n, 8n, 1n]), [1, 8]);
    await expect(new T.LayerIntegratedGradients(m, "embedding").attribute(ids, { target: 1 })).rejects.toThrow(
      /LibTorch has no derivative for aten::_transformer_encoder_layer_fwd.*traced under torch\.no_grad\(\): trace it with gradients on/,
    );
    // Perturbations need no gradients.
    await expect(new T.FeatureAblation(m).attribute(ids, { target: 1 })).resolves.toBeInstanceOf(T.Tensor);
  });
});
