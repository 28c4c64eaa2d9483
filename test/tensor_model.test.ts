import * as path from "path";
import { buildInfo, loadModel, tensor } from "../lib";
import { GOLDEN, maxAbsDiff, values } from "./helpers";

describe("tensor()", () => {
  test("from nested arrays, flat arrays with a shape and typed arrays", () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe("float32");
    expect(a.device).toBe("cpu");
    expect(Array.from(a.data() as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(a.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(tensor([1, 2, 3, 4], [2, 2]).toArray()).toEqual([[1, 2], [3, 4]]);
    const f64 = tensor(new Float64Array([0.1, 0.2]), [1, 2]);
    expect(f64.dtype).toBe("float64");
    // (jest runs tests in another realm, so compare the tag rather than the constructor)
    expect(Object.prototype.toString.call(f64.data())).toBe("[object Float64Array]");
    expect((f64.data() as Float64Array)[0]).toBe(0.1);
  });
  test("dtypes int64, int32, bool", () => {
    const i = tensor([[1, 2], [3, 4]], undefined, "int64");
    expect(i.dtype).toBe("int64");
    expect(Array.from(i.data() as BigInt64Array)).toEqual([1n, 2n, 3n, 4n]);
    expect(tensor(new Int32Array([7, 8])).dtype).toBe("int32");
    const b = tensor([true, false, true]);
    expect(b.dtype).toBe("bool");
    expect(Array.from(b.data() as Uint8Array)).toEqual([1, 0, 1]);
    expect(tensor(new BigInt64Array([5n]), [1, 1]).toArray()).toEqual([[5]]);
  });
  test("copies its data: later changes to the source do not leak in", () => {
    const src = new Float32Array([1, 2]);
    const t = tensor(src);
    src[0] = 99;
    expect(values(t)).toEqual([1, 2]);
  });
  test("empty and scalar-shaped tensors", () => {
    expect(tensor(new Float32Array(0), [0, 3]).shape).toEqual([0, 3]);
    expect(tensor([5], []).shape).toEqual([]);
  });
});

describe("Model", () => {
  test("layers, signature, device, forward", async () => {
    const m = await loadModel(path.join(GOLDEN, "cnn.pt"));
    expect(m.layers()).toEqual(["conv1", "relu1", "pool", "conv2", "relu2", "gap", "fc"]);
    expect(m.signature).toBe("forward(x: Tensor)");
    expect(m.device).toBe("cpu");
    const out = await m.forward(tensor(new Float32Array(2 * 64), [2, 1, 8, 8]));
    expect(out.shape).toEqual([2, 10]);
  });
  test("several inputs and an extra non-tensor argument", async () => {
    const m = await loadModel(path.join(GOLDEN, "multi.pt"));
    const a = tensor([[0.1, 0.2, 0.3, 0.4]]), b = tensor([[1, 2, 3]]);
    const y1 = await m.forward([a, b], [0]);
    const y2 = await m.forward([a, b], [0.5]);
    expect(y1.shape).toEqual(y2.shape);
    expect(maxAbsDiff(y1, y2)).toBeGreaterThan(1e-4); // the extra argument changes the output beyond float noise
  });
  test("integer token inputs", async () => {
    const m = await loadModel(path.join(GOLDEN, "text.pt"));
    const out = await m.forward(tensor([[1, 2, 3, 4, 5, 6, 7]], undefined, "int64"));
    expect(out.shape[0]).toBe(1);
  });
  test("build info names LibTorch and the algorithms", () => {
    const info = buildInfo();
    expect(info.libtorch).toMatch(/^\d+\.\d+/);
    expect(info.algorithms).toEqual(expect.arrayContaining(["IntegratedGradients", "Saliency", "NoiseTunnel"]));
  });
});

test("tensor helpers: argmax, softmax, topk, sum, mean, row", () => {
  const t = tensor([[1, 5, 2], [7, 0, 3]]);
  expect(t.argmax().toArray()).toEqual([1, 0]);
  expect(t.argmax(0).toArray()).toEqual([1, 0, 1]);
  const p = t.softmax().toArray() as number[][];
  p.forEach((row) => expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6));
  expect(p[0][1]).toBeCloseTo(Math.exp(5) / (Math.exp(1) + Math.exp(5) + Math.exp(2)), 6);
  const top = t.topk(2);
  expect([top.indices.toArray(), top.values.toArray()]).toEqual([[[1, 2], [0, 2]], [[5, 2], [7, 3]]]);
  expect(t.sum(0).toArray()).toEqual([8, 5, 5]);
  expect(t.sum().toArray()).toBe(18);
  expect(t.mean(1, { keepdim: true }).shape).toEqual([2, 1]);
  expect(t.row(-1).toArray()).toEqual([7, 0, 3]);
  expect(() => t.topk(4)).toThrow(/k: expected an integer from 1 to 3, got 4/);
  expect(() => t.row(2)).toThrow(/index: 2 is out of range for 2 row\(s\)/);
  expect(() => t.argmax(2)).toThrow(/dim: 2 is out of range/);
});
