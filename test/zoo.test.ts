// Real architectures (test/fixtures/zoo, made by scripts/make_zoo.py with
// pip torch 2.x at test set-up): files saved by today's PyTorch, integer
// token ids beside a mask, and completeness on networks with batch norm,
// residual adds and attention.
import * as fs from "fs";
import * as path from "path";
import * as T from "../lib";

const ZOO = path.join(__dirname, "fixtures", "zoo");
const zoo = (f: string) => {
  const p = path.join(ZOO, f);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: run npm test (its set-up makes the zoo with scripts/make_zoo.py)`);
  return p;
};
const major = Number(T.buildInfo().libtorch.split(".")[0]);
const ids = () => T.tensor(BigInt64Array.from([5n, 17n, 3n, 99n, 42n, 7n, 8n, 1n]), [1, 8]);
const ones = () => T.tensor(BigInt64Array.from({ length: 8 }, () => 1n), [1, 8]);
const sum = (t: T.Tensor) => Array.from(t.data() as Float32Array).reduce((a, b) => a + b, 0);
const image = () => T.tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 32, 32]);

describe("a GPT-2 traced and saved by torch 2.13 (scaled_dot_product_attention)", () => {
  if (major >= 2) {
    test("loads, and LayerIntegratedGradients on the token embedding is complete", async () => {
      const m = await T.loadModel(zoo("gpt2.pt"));
      const out = await m.forward([ids()], [ones()]);
      expect(out.shape).toEqual([1, 8, 100]);
      const r = await new T.LayerIntegratedGradients(m, "model.transformer.wte").attribute(ids(), {
        target: [[7, 42]],
        additionalForwardArgs: [ones()],
        nSteps: 64,
        returnConvergenceDelta: true,
      });
      expect(r.attributions.shape).toEqual([1, 8, 32]);
      const logits = out.data() as Float32Array;
      // Completeness: the attributions sum to F(ids) - F(baseline ids 0); delta is that gap.
      expect(Math.abs((r.delta.data() as Float32Array)[0])).toBeLessThan(1e-4 * Math.max(1, Math.abs(logits[7 * 100 + 42])));
    });
  } else {
    test("is refused as TorchScript from a newer PyTorch, naming the op, the version and the fix", async () => {
      const e = await T.loadModel(zoo("gpt2.pt")).catch((x) => x);
      expect(e).toBeInstanceOf(T.TorchExplainError);
      expect(e.code).toBe("ERR_MODEL_NEWER_PYTORCH");
      expect(e.message).toMatch(/newer PyTorch/);
      expect(e.message).toMatch(/aten::scaled_dot_product_attention/);
      expect(e.message).toContain(T.buildInfo().libtorch);
      expect(e.message).toMatch(/Rebuild torchexplain against a LibTorch at least as new/);
      expect(e.message).not.toMatch(/is not a TorchScript model/);
    });
  }
});

describe("torchvision resnet18 (batch norm, residual adds)", () => {
  let model: T.Model;
  beforeAll(async () => {
    model = await T.loadModel(zoo("resnet18.pt"));
  });
  const scale = async () => {
    const out = (await model.forward(image())).data() as Float32Array;
    const zero = (await model.forward(T.tensor(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]))).data() as Float32Array;
    return { gap: out[3] - zero[3], out };
  };
  test("IntegratedGradients is complete (Gauss-Legendre, 64 steps)", async () => {
    const { gap } = await scale();
    const r = await new T.IntegratedGradients(model).attribute(image(), { target: 3, nSteps: 64, returnConvergenceDelta: true });
    expect(Math.abs(sum(r.attributions) - gap)).toBeLessThan(0.02 * Math.abs(gap) + 1e-4);
  });
  test("DeepLift is complete (the rescale rule sums to F(x) - F(0) exactly)", async () => {
    const { gap } = await scale();
    const r = await new T.DeepLift(model).attribute(image(), { target: 3, returnConvergenceDelta: true });
    expect(Math.abs(sum(r.attributions) - gap)).toBeLessThan(1e-3 * Math.abs(gap) + 1e-4);
  });
  test("LayerGradCam on layer4 and LRP return finite maps of the right shapes", async () => {
    const cam = await new T.LayerGradCam(model, "layer4").attribute(image(), { target: 3 });
    expect(cam.shape).toEqual([1, 1, 1, 1]);
    const lrp = await new T.LRP(model).attribute(image(), { target: 3 });
    expect(lrp.shape).toEqual([1, 3, 32, 32]);
    expect((lrp.data() as Float32Array).every(Number.isFinite)).toBe(true);
  });
});

describe("a transformer text classifier (multi-head attention, layer norm, gelu)", () => {
  if (major < 2)
    test("is refused on LibTorch 1.13: nn.MultiheadAttention saved by 2.x calls scaled_dot_product_attention", async () => {
      const e = await T.loadModel(zoo("transformer.pt")).catch((x) => x);
      expect(e.code).toBe("ERR_MODEL_NEWER_PYTORCH");
      expect(e.message).toMatch(/uses the op aten::scaled_dot_product_attention, which LibTorch 1\.13\.\d+ does not have/);
    });
  else test("LayerIntegratedGradients on the embedding is complete for int64 ids", async () => {
    const m = await T.loadModel(zoo("transformer.pt"));
    const x = T.tensor(BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7) % 100)), [1, 16]);
    const r = await new T.LayerIntegratedGradients(m, "embedding").attribute(x, { target: 1, nSteps: 64, returnConvergenceDelta: true });
    expect(r.attributions.shape).toEqual([1, 16, 32]);
    expect(Math.abs((r.delta.data() as Float32Array)[0])).toBeLessThan(1e-3);
  });
});
