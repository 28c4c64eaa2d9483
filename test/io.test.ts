// Data in and out: .npy/.npz files written by numpy (test/fixtures/npy, made by
// make_npy.py) read back exactly, our files read by numpy, round trips, images
// through sharp, JSON Lines, and errors that name the argument.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import {
  tensor, Tensor, parseNpy, toNpy, saveNpy, loadNpy, loadNpz, saveNpz, toNpz, parseNpz, npyToTensor, loadImage, loadImageFolder,
  parseJsonLines, loadJsonLines, saveJsonLines, TorchExplainError, loadModel,
} from "../lib";
import { RowReader } from "../lib/io/rows";

const FIX = path.join(__dirname, "fixtures", "npy");
const expected: Record<string, { shape: number[]; dtype: string; values: number[] }> = JSON.parse(fs.readFileSync(path.join(FIX, "expected.json"), "utf8"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-io-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const nums = (a: ArrayLike<number | bigint>) => Array.from(a, Number);
function close(actual: number[], want: number[], tol = 1e-6) {
  expect(actual.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(actual[i] - want[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i])));
}

describe(".npy written by numpy", () => {
  const names = Object.keys(expected).filter((n) => !n.startsWith("npz_"));
  test.each(names)("%s", (name) => {
    const a = parseNpy(fs.readFileSync(path.join(FIX, `${name}.npy`)));
    const e = expected[name];
    expect(a.shape).toEqual(e.shape);
    expect(a.dtype).toBe(e.dtype);
    // int64 values beyond 2^53 are not in the fixtures: Number() is exact here.
    close(nums(a.data), e.values, e.dtype === "float32" ? 1e-7 : 1e-12);
  });

  test("aligned little-endian data is a view of the file's bytes, not a copy", () => {
    const bytes = fs.readFileSync(path.join(FIX, "f32.npy"));
    const a = parseNpy(bytes);
    expect(a.data.buffer).toBe(bytes.buffer);
    bytes.fill(0, bytes.length - 24); // the values' bytes: a view sees the change
    expect(nums(a.data)).toEqual([0, 0, 0, 0, 0, 0]);
    // Big-endian data cannot be viewed: it is swapped into a copy, which keeps its values.
    const be = fs.readFileSync(path.join(FIX, "f32_big_endian.npy"));
    const b = parseNpy(be);
    be.fill(0, be.length - 16);
    close(nums(b.data), expected.f32_big_endian.values, 0);
  });

  test("into Tensors: dtypes kept, uint8 as int32, or converted on request", async () => {
    const f = await loadNpy(path.join(FIX, "f64.npy"));
    expect(f.dtype).toBe("float64");
    const u = await loadNpy(path.join(FIX, "u8.npy"));
    expect(u.dtype).toBe("int32");
    expect(u.toArray()).toEqual([[0, 1, 2], [128, 254, 255]]);
    const uf = await loadNpy(path.join(FIX, "u8.npy"), { dtype: "float32" });
    expect(uf.dtype).toBe("float32");
    const b = await loadNpy(path.join(FIX, "bool.npy"));
    expect(b.dtype).toBe("bool");
    expect(nums(b.data())).toEqual([1, 0, 1, 1, 0]);
    const i = await loadNpy(path.join(FIX, "i64.npy"));
    expect(i.dtype).toBe("int64");
    expect(nums(i.data())).toEqual(expected.i64.values);
  });
});

describe(".npz written by numpy", () => {
  test("stored (np.savez), by keyword", async () => {
    const z = await loadNpz(path.join(FIX, "stored.npz"));
    expect(Object.keys(z)).toEqual(["inputs", "labels"]);
    expect(z.inputs.shape).toEqual([3, 4]);
    close(nums(z.inputs.data()), expected.npz_a.values, 1e-7);
    expect(nums(z.labels.data())).toEqual([1, 2, 3]);
  });
  test("deflated (np.savez_compressed), positional names", () => {
    const z = parseNpz(fs.readFileSync(path.join(FIX, "deflated.npz")));
    expect(Object.keys(z)).toEqual(["arr_0", "arr_1"]);
    close(nums(z.arr_0.data), expected.npz_a.values, 1e-7);
    expect(z.arr_1.dtype).toBe("int64");
  });
});

describe("round trips", () => {
  const cases: [string, Tensor][] = [
    ["float32", tensor(Float32Array.from([0.1, -2, 3.5e-8, 1e30, 0, 7]), [2, 3])],
    ["float64", tensor(Float64Array.from([Math.PI, -1e-300, 2]), [3, 1])],
    ["int32", tensor(Int32Array.from([-5, 0, 2147483647, -2147483648]), [2, 2])],
    ["int64", tensor(BigInt64Array.from([-(2n ** 50n), 3n, 2n ** 50n]), [3])],
    ["bool", tensor([true, false, true, true], [2, 2], "bool")],
  ];
  test.each(cases)("%s: Tensor → .npy → Tensor", async (dtype, t) => {
    const file = path.join(tmp, `${dtype}.npy`);
    await saveNpy(file, t);
    const back = await loadNpy(file);
    expect(back.dtype).toBe(dtype);
    expect(back.shape).toEqual(t.shape);
    close(nums(back.data()), nums(t.data()), 0);
  });

  test("uint8 values and headers: the header is padded to 64 bytes and ends in a newline", () => {
    const bytes = toNpy({ data: Uint8Array.from([1, 2, 255]), shape: [3], dtype: "uint8" });
    const headerEnd = bytes.readUInt16LE(8) + 10;
    expect(headerEnd % 64).toBe(0);
    expect(bytes[headerEnd - 1]).toBe(0x0a);
    const a = parseNpy(bytes);
    expect(a.dtype).toBe("uint8");
    expect(nums(a.data)).toEqual([1, 2, 255]);
  });

  test("a header too long for version 1.0 is written as 2.0 and read back", () => {
    const shape = new Array(25000).fill(1); // a 25000-dimension shape: a header over 65535 bytes
    const bytes = toNpy({ data: Float32Array.from([4.5]), shape });
    expect(bytes[6]).toBe(2);
    const a = parseNpy(bytes);
    expect(a.shape.length).toBe(25000);
    expect(nums(a.data)).toEqual([4.5]);
  });

  test.each([false, true])(".npz with compress=%s → read back", async (compress) => {
    const file = path.join(tmp, `rt-${compress}.npz`);
    await saveNpz(file, { x: tensor([[1, 2], [3, 4]]), y: tensor(Int32Array.from([9, 8, 7]), [3]) }, { compress });
    const z = await loadNpz(file);
    expect(z.x.toArray()).toEqual([[1, 2], [3, 4]]);
    expect(z.y.dtype).toBe("int32");
    expect(nums(z.y.data())).toEqual([9, 8, 7]);
  });

  const numpy = spawnSync("python3", ["-c", "import numpy"]).status === 0;
  (numpy ? test : test.skip)("numpy reads our .npy and .npz (python3 with numpy)", async () => {
    await saveNpy(path.join(tmp, "ours.npy"), tensor(Float32Array.from([0.5, -1.25, 3, 4, 5, 6]), [3, 2]));
    fs.writeFileSync(path.join(tmp, "ours.npz"), toNpz({ a: tensor(Float64Array.from([1.5, 2.5]), [2]), b: tensor([true, false], [2], "bool") }, { compress: true }));
    const script = `
import json, numpy as np, sys
a = np.load(sys.argv[1]); z = np.load(sys.argv[2])
print(json.dumps({"a": a.tolist(), "adtype": str(a.dtype), "za": z["a"].tolist(), "zb": z["b"].tolist(), "zbdtype": str(z["b"].dtype)}))`;
    const r = spawnSync("python3", ["-c", script, path.join(tmp, "ours.npy"), path.join(tmp, "ours.npz")], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    const got = JSON.parse(r.stdout);
    expect(got.adtype).toBe("float32");
    close(got.a.flat(), [0.5, -1.25, 3, 4, 5, 6], 0);
    close(got.za, [1.5, 2.5], 0);
    expect(got.zb).toEqual([true, false]);
    expect(got.zbdtype).toBe("bool");
  });
});

describe("bad files", () => {
  test("errors name the argument", async () => {
    await expect(loadNpy(path.join(tmp, "missing.npy"))).rejects.toMatchObject({ code: "ERR_BAD_OPTION", message: expect.stringMatching(/^path: no such file/) });
    expect(() => parseNpy(Buffer.from("not numpy at all"))).toThrow(/not a \.npy file/);
    const truncated = fs.readFileSync(path.join(FIX, "f64.npy")).subarray(0, 140);
    expect(() => parseNpy(truncated)).toThrow(/truncated data/);
    const complex = toNpy({ data: Float64Array.from([1, 2]), shape: [2] });
    complex.write("'<c16'", complex.indexOf("'<f8'"), "latin1"); // same length: a complex dtype
    expect(() => parseNpy(complex)).toThrow(/unsupported dtype '<c16'/);
    expect(() => parseNpz(Buffer.from("PK but not really"))).toThrow(/not a \.npz/);
    expect(() => toNpy({ data: Float32Array.from([1, 2, 3]), shape: [2, 2] })).toThrow(TorchExplainError);
  });
});

describe("images through sharp", () => {
  // A 4×2 RGB image with known pixels: red, green, blue, white / black, grey, ...
  const pixels = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 128, 128, 10, 20, 30, 200, 100, 50]);
  let png: Buffer;
  beforeAll(async () => {
    png = await sharp(pixels, { raw: { width: 4, height: 2, channels: 3 } }).png().toBuffer();
  });

  test("PNG → [1, 3, H, W] in [0, 1], channel-first", async () => {
    const t = await loadImage(png);
    expect(t.shape).toEqual([1, 3, 2, 4]);
    const v = nums(t.data());
    // red channel row 0: 255, 0, 0, 255; green channel row 1: 0, 128, 20, 100
    close(v.slice(0, 4), [1, 0, 0, 1], 1e-6);
    close(v.slice(8 + 4, 8 + 8), [0, 128 / 255, 20 / 255, 100 / 255], 1e-6);
  });

  test("mean and std per channel; grey; resize", async () => {
    const t = await loadImage(png, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 1] });
    const v = nums(t.data());
    expect(v[0]).toBeCloseTo((1 - 0.5) / 0.5, 5); // red of pixel 0
    expect(v[8 + 1]).toBeCloseTo((1 - 0.5) / 0.25, 5); // green of pixel 1
    const g = await loadImage(png, { channels: 1 });
    expect(g.shape).toEqual([1, 1, 2, 4]);
    expect(nums(g.data())[3]).toBeCloseTo(1, 2); // white stays white
    const r = await loadImage(png, { size: [8, 16] });
    expect(r.shape).toEqual([1, 3, 8, 16]);
  });

  test("JPEG and WebP decode too", async () => {
    const grey = await sharp({ create: { width: 6, height: 5, channels: 3, background: { r: 100, g: 100, b: 100 } } }).jpeg({ quality: 95 }).toBuffer();
    const j = await loadImage(grey);
    expect(j.shape).toEqual([1, 3, 5, 6]);
    for (const x of nums(j.data())) expect(Math.abs(x - 100 / 255)).toBeLessThan(3 / 255); // lossy, near
    const webp = await sharp(pixels, { raw: { width: 4, height: 2, channels: 3 } }).webp({ lossless: true }).toBuffer();
    const w = await loadImage(webp);
    close(nums(w.data()).slice(0, 4), [1, 0, 0, 1], 1e-6);
  });

  test("a folder: sorted by name, one batch; different sizes need size", async () => {
    const dir = path.join(tmp, "imgs");
    fs.mkdirSync(dir);
    await sharp(pixels, { raw: { width: 4, height: 2, channels: 3 } }).png().toFile(path.join(dir, "b.png"));
    await sharp({ create: { width: 4, height: 2, channels: 3, background: "#000000" } }).png().toFile(path.join(dir, "a.png"));
    fs.writeFileSync(path.join(dir, "notes.txt"), "not an image");
    const { inputs, files } = await loadImageFolder(dir);
    expect(files).toEqual(["a.png", "b.png"]);
    expect(inputs.shape).toEqual([2, 3, 2, 4]);
    expect(Math.max(...nums(inputs.data()).slice(0, 24))).toBe(0); // a.png is black
    await sharp({ create: { width: 3, height: 3, channels: 3, background: "#000000" } }).png().toFile(path.join(dir, "c.png"));
    await expect(loadImageFolder(dir)).rejects.toThrow(/^size: c\.png is 3×3/);
    expect((await loadImageFolder(dir, { size: 5 })).inputs.shape).toEqual([3, 3, 5, 5]);
  });

  test("errors", async () => {
    await expect(loadImage(Buffer.from("nope"))).rejects.toThrow(/^source: cannot decode/);
    await expect(loadImage(path.join(tmp, "none.png"))).rejects.toThrow(/^path: no such file/);
    await expect(loadImage(png, { channels: 2 as 1 })).rejects.toThrow(/^channels:/);
    await expect(loadImage(png, { mean: [1, 2] })).rejects.toThrow(/^mean: expected a number or 3 numbers/);
    await expect(loadImage(png, { sizee: 3 } as object)).rejects.toThrow(/^sizee: unknown option/);
  });
});

describe("torchvision-style preprocessing", () => {
  // A 40 x 20 image whose red channel is 6 x column and green 12 x row.
  const gradient = () => {
    const w = 40, h = 20, px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x * 6, y * 12, 100], (y * w + x) * 3);
    return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  };
  test("resize (the shorter side) then a centre crop; contain pads; crop alone cuts the centre exactly", async () => {
    const png = await gradient();
    expect((await loadImage(png, { resize: 10, crop: 8 })).shape).toEqual([1, 3, 8, 8]);
    expect((await loadImage(png, { resize: 10 })).shape).toEqual([1, 3, 10, 20]);
    const padded = await loadImage(png, { size: 16, fit: "contain" });
    expect(padded.shape).toEqual([1, 3, 16, 16]);
    expect((padded.data() as Float32Array)[0]).toBe(0); // the black band above the image
    // 10 x 20 out of 20 x 40: from row 5, column 10 (torchvision's centre).
    const c = (await loadImage(png, { crop: [10, 20] })).data() as Float32Array;
    expect([Math.round(c[0] * 255), Math.round(c[200] * 255), Math.round(c[19] * 255)]).toEqual([60, 60, 174]);
    await expect(loadImage(png, { crop: 30 })).rejects.toThrow(/crop: 30×30 is larger than the image \(20×40 after resizing\)/);
    await expect(loadImage(png, { resize: 10, size: 8 })).rejects.toThrow(/resize: give either size/);
  });
});

describe("JSON Lines", () => {
  test("arrays and objects with targets and ids", () => {
    const b = parseJsonLines('[1, 2, 3]\n\n{"inputs": [4, 5, 6], "target": 2, "id": "x"}\n');
    expect(b.inputs.shape).toEqual([2, 3]);
    expect(b.inputs.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(b.targets).toEqual([undefined, 2]);
    expect(b.ids).toEqual(["line 1", "x"]);
  });
  test("round trip through a file", async () => {
    const file = path.join(tmp, "rows.jsonl");
    await saveJsonLines(file, tensor([[0.5, 1], [2, 3]]), (i) => ({ target: i }));
    const b = await loadJsonLines(file);
    expect(b.inputs.toArray()).toEqual([[0.5, 1], [2, 3]]);
    expect(b.targets).toEqual([0, 1]);
  });
  test("errors name the line", () => {
    expect(() => parseJsonLines("[1, 2]\n[1, 2, 3]")).toThrow(/line 2 has shape \[3\] but the first row has \[2\]/);
    expect(() => parseJsonLines("[1, 2]\n{oops")).toThrow(/line 2 is not JSON/);
    expect(() => parseJsonLines("")).toThrow(/no rows/);
  });
});

test("npyToTensor converts dtypes", () => {
  const t = npyToTensor({ data: Float64Array.from([1.9, -2.9]), shape: [2], dtype: "float64" }, "int32");
  expect(nums(t.data())).toEqual([1, -2]);
});

test("rows read concurrently from .npy and stored or deflated .npz members are the rows asked for", async () => {
  const n = 300, per = 40;
  const x = tensor(Float32Array.from({ length: n * per }, (_, i) => i), [n, per]);
  const y = tensor(BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [n], "int64");
  await saveNpy(path.join(tmp, "rows.npy"), x);
  await saveNpz(path.join(tmp, "rows.npz"), { x, y }, { compress: false });
  await saveNpz(path.join(tmp, "rows_z.npz"), { x, y }, { compress: true });
  const readers = [await RowReader.open(path.join(tmp, "rows.npy")), await RowReader.open(path.join(tmp, "rows.npz"), "x"), await RowReader.open(path.join(tmp, "rows_z.npz"), "x"), await RowReader.open(path.join(tmp, "rows_z.npz"), "y")];
  try {
    for (const r of readers) {
      // Out of order and overlapping, all in flight at once (the CLI looks up labels this way).
      const ranges = [[250, 300], [0, 3], [17, 18], [100, 260], [5, 9], [299, 300]];
      const got = await Promise.all(ranges.map(([a, b]) => r.read(a, b)));
      got.forEach((t, i) => {
        const [a, b] = ranges[i];
        const wide = r.shape.length > 1 ? per : 1;
        expect(t.shape).toEqual(r.shape.length > 1 ? [b - a, per] : [b - a]);
        expect(nums(t.data() as ArrayLike<number | bigint>)).toEqual(Array.from({ length: (b - a) * wide }, (_, j) => (r.shape.length > 1 ? a * per + j : a + j)));
        t.dispose();
      });
    }
  } finally {
    for (const r of readers) await r.close();
  }
});

test("uint8 arrays scaled to [0, 1] where asked (loadNpy, loadNpz, the CLI's --scale-uint8)", async () => {
  const bytes = toNpy({ data: Uint8Array.from([0, 51, 255, 128]), shape: [1, 4], dtype: "uint8" });
  fs.writeFileSync(path.join(tmp, "u8.npy"), bytes);
  close(nums((await loadNpy(path.join(tmp, "u8.npy"), { scaleUint8: true })).data() as Float32Array), [0, 0.2, 1, 128 / 255]);
  expect((await loadNpy(path.join(tmp, "u8.npy"), { scaleUint8: true })).dtype).toBe("float32");
  expect((await loadNpy(path.join(tmp, "u8.npy"), { scaleUint8: true, dtype: "float64" })).dtype).toBe("float64");
  expect(nums((await loadNpy(path.join(tmp, "u8.npy"))).data() as Int32Array)).toEqual([0, 51, 255, 128]); // not asked: exact
  await expect(loadNpy(path.join(tmp, "u8.npy"), { scaleUint8: true, dtype: "int64" })).rejects.toThrow("dtype: scaleUint8 makes floats; got dtype 'int64'");
  await saveNpz(path.join(tmp, "u8.npz"), { x: parseNpy(bytes) });
  close(nums((await loadNpz(path.join(tmp, "u8.npz"), { scaleUint8: true })).x.data() as Float32Array), [0, 0.2, 1, 128 / 255]);
  // The batch job: what the model saw, through index.json's probability of the predicted class.
  const bin = path.join(__dirname, "..", "bin", "torchexplain.js");
  const model = path.join(__dirname, "fixtures", "golden", "toy.pt");
  fs.writeFileSync(path.join(tmp, "u8x3.npy"), toNpy({ data: Uint8Array.from([0, 51, 255]), shape: [1, 3], dtype: "uint8" }));
  const probs = [];
  for (const extra of [[], ["--scale-uint8"]]) {
    const out = path.join(tmp, `u8job${extra.length}`);
    const r = spawnSync(process.execPath, [bin, "explain", "--model", model, "--method", "Saliency", "--inputs", path.join(tmp, "u8x3.npy"), "--out", out, "--target", "0", ...extra], { encoding: "utf8" });
    expect(r.status).toBe(0);
    probs.push(JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8")).examples[0].probability);
  }
  const toy = await loadModel(model);
  const topProb = async (x: number[]) => Math.max(...nums((await toy.forward(tensor([x]))).softmax(1).data() as Float32Array));
  expect(Math.abs(probs[0] - (await topProb([0, 51, 255])))).toBeLessThan(1e-5);
  expect(Math.abs(probs[1] - (await topProb([0, 0.2, 1])))).toBeLessThan(1e-5);
  toy.dispose();
});
