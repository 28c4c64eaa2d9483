// The command line (bin/torchexplain.js, run as a user runs it): explain on a
// .npy file, a folder of PNGs and JSON Lines gives the API's attributions;
// index.json, heat maps, --resume, info, and bad input as one line and a
// non-zero exit.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { loadModel, tensor, IntegratedGradients, Saliency, LayerGradCam, LayerIntegratedGradients, loadImageFolder, loadNpy, saveNpy, saveNpz, Model, Tensor } from "../lib";
import { ensureDist } from "./dist";

const root = path.join(__dirname, "..");
const bin = path.join(root, "bin", "torchexplain.js");
const samples = JSON.parse(fs.readFileSync(path.join(root, "models", "digits_samples.json"), "utf8"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-cli-"));
let model: Model;

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: tmp, encoding: "utf8", timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const nums = (t: Tensor | { data: ArrayLike<number> }) => Array.from((t instanceof Tensor ? t.data() : t.data) as ArrayLike<number>, Number);
function expectClose(actual: number[], expected: number[], rtol = 1e-4) {
  expect(actual.length).toBe(expected.length);
  const scale = 1e-5 * Math.max(1, ...expected.map(Math.abs));
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(rtol * Math.abs(expected[i]) + scale);
}

async function predicted(x: Tensor): Promise<{ cls: number[]; prob: number[] }> {
  const out = (await model.forward(x)).toArray() as number[][];
  const cls = out.map((r) => r.indexOf(Math.max(...r)));
  const prob = out.map((r, i) => {
    const m = Math.max(...r);
    const s = r.reduce((a, v) => a + Math.exp(v - m), 0);
    return Math.exp(r[cls[i]] - m) / s;
  });
  return { cls, prob };
}

beforeAll(async () => {
  ensureDist();
  model = await loadModel(path.join(root, "models", "digits_cnn.pt"));
  await saveNpy(path.join(tmp, "digits.npy"), tensor(Float32Array.from(samples.images), samples.shape));
  // The same digits as 8×8 grey PNGs (values rounded to 1/255).
  fs.mkdirSync(path.join(tmp, "pngs"));
  const per = 64;
  for (let i = 0; i < samples.shape[0]; i++) {
    const px = Buffer.from(samples.images.slice(i * per, (i + 1) * per).map((v: number) => Math.round(v * 255)));
    await sharp(px, { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path.join(tmp, "pngs", `digit_${i}.png`));
  }
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("explain on a .npy file: the API's attributions, index.json, heat maps, a line per shard", async () => {
  const r = cli(["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "IntegratedGradients", "--inputs", "digits.npy",
    "--out", "out-npy", "--options", '{"nSteps": 16}', "--shard-size", "4", "--batch-size", "2", "--png", "--png-scale", "3"]);
  expect(r.stderr).not.toMatch(/torchexplain:/);
  expect(r.status).toBe(0);
  // Not a terminal: one line per shard (6 examples in shards of 4).
  expect(r.stderr.match(/^shard \d\/2 \(rows \d+-\d+\) done in .*ETA/gm)?.length).toBe(2);
  const out = path.join(tmp, "out-npy");
  const attr = await loadNpy(path.join(out, "attributions.npy"));
  expect(attr.shape).toEqual(samples.shape);
  expect(attr.dtype).toBe("float32");
  const x = await loadNpy(path.join(tmp, "digits.npy"));
  const pred = await predicted(x);
  const api = await new IntegratedGradients(model).attribute(x, { target: pred.cls, nSteps: 16, returnConvergenceDelta: true });
  expectClose(nums(attr), nums(api.attributions));
  const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
  expect(index.count).toBe(6);
  expect(index.targets).toBe("predicted"); // no --target: each example's top class
  expect(index.examples.map((e: { index: number }) => e.index)).toEqual([0, 1, 2, 3, 4, 5]);
  const deltas = nums(api.delta);
  index.examples.forEach((e: { source: string; target: number; predicted: number; probability: number; delta: number; timeMs: number; heatmap: string }, i: number) => {
    expect(e.source).toBe(`digits.npy[${i}]`);
    expect(e.target).toBe(pred.cls[i]);
    expect(e.predicted).toBe(pred.cls[i]);
    expect(Math.abs(e.probability - pred.prob[i])).toBeLessThan(1e-5);
    expect(Math.abs(e.delta - deltas[i])).toBeLessThan(1e-4 + 1e-3 * Math.abs(deltas[i]));
    expect(e.timeMs).toBeGreaterThanOrEqual(0);
    expect(e.heatmap).toBe(`heatmaps/${String(i).padStart(6, "0")}.png`);
  });
  // Heat maps: valid PNGs of the input's size times --png-scale.
  const maps = fs.readdirSync(path.join(out, "heatmaps")).sort();
  expect(maps).toHaveLength(6);
  for (const m of maps) {
    const meta = await sharp(path.join(out, "heatmaps", m)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 24, 24]);
  }
});

test("explain on a folder of PNG images: the API's attributions on the same images", async () => {
  const r = cli(["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "Saliency", "--inputs", "pngs", "--channels", "1",
    "--out", "out-png", "--target", "3", "--png"]);
  expect(r.stderr).not.toMatch(/torchexplain:/);
  expect(r.status).toBe(0);
  const { inputs, files } = await loadImageFolder(path.join(tmp, "pngs"), { channels: 1 });
  const api = await new Saliency(model).attribute(inputs, { target: 3 });
  const attr = await loadNpy(path.join(tmp, "out-png", "attributions.npy"));
  expect(attr.shape).toEqual([6, 1, 8, 8]);
  expectClose(nums(attr), nums(api));
  const index = JSON.parse(fs.readFileSync(path.join(tmp, "out-png", "index.json"), "utf8"));
  expect(index.examples.map((e: { source: string }) => e.source)).toEqual(files);
  expect(index.targets).toBe("given");
  expect(index.examples.every((e: { target: number }) => e.target === 3)).toBe(true);
  for (const e of index.examples) {
    const meta = await sharp(path.join(tmp, "out-png", e.heatmap)).metadata();
    expect([meta.width, meta.height]).toEqual([8, 8]);
  }
});

test("explain on JSON Lines rows: per-row targets, a tabular model", async () => {
  const rows = Array.from({ length: 5 }, (_, i) => JSON.stringify({ inputs: Array.from({ length: 64 }, (_, k) => Math.sin(i + k)), target: i % 3, id: `row-${i}` }));
  fs.writeFileSync(path.join(tmp, "rows.jsonl"), rows.join("\n") + "\n");
  const r = cli(["explain", "--model", path.join(root, "models", "bench_mlp.pt"), "--method", "Saliency", "--inputs", "rows.jsonl", "--out", "out-jsonl", "--options", '{"abs": false}']);
  expect(r.status).toBe(0);
  const mlp = await loadModel(path.join(root, "models", "bench_mlp.pt"));
  const x = tensor(rows.map((l) => JSON.parse(l).inputs));
  const api = await new Saliency(mlp).attribute(x, { target: [0, 1, 2, 0, 1], abs: false });
  expectClose(nums(await loadNpy(path.join(tmp, "out-jsonl", "attributions.npy"))), nums(api));
  const index = JSON.parse(fs.readFileSync(path.join(tmp, "out-jsonl", "index.json"), "utf8"));
  expect(index.targets).toBe("rows");
  expect(index.examples.map((e: { source: string; target: number }) => [e.source, e.target])).toEqual(rows.map((_, i) => [`row-${i}`, i % 3]));
  mlp.dispose();
});

test("a layer method (--layer) and baselines from a .npy, as the API computes them", async () => {
  const x = await loadNpy(path.join(tmp, "digits.npy"));
  const pred = await predicted(x);
  const r = cli(["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "LayerGradCam", "--layer", "conv2", "--inputs", "digits.npy", "--out", "out-layer", "--png"]);
  expect(r.status).toBe(0);
  const api = await new LayerGradCam(model, "conv2").attribute(x, { target: pred.cls });
  const attr = await loadNpy(path.join(tmp, "out-layer", "attributions.npy"));
  expect(attr.shape).toEqual(api.shape); // the layer's shape, not the input's
  expectClose(nums(attr), nums(api));
  const meta = await sharp(path.join(tmp, "out-layer", "heatmaps", "000000.png")).metadata();
  // The layer's map is drawn at the input's size (the .npy keeps the layer's [4, 4]).
  expect([meta.width, meta.height]).toEqual([x.shape[3], x.shape[2]]);
  // Baselines: one row per example, each example its own (here: the image at half ink).
  const half = tensor(Float32Array.from(x.data() as Float32Array, (v) => v / 2), x.shape);
  await saveNpy(path.join(tmp, "half.npy"), half);
  const b = cli(["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "IntegratedGradients", "--inputs", "digits.npy", "--baselines", "half.npy",
    "--out", "out-base", "--target", "2", "--options", '{"nSteps": 8}', "--shard-size", "4"]);
  expect(b.status).toBe(0);
  const ig = await new IntegratedGradients(model).attribute(x, { target: 2, nSteps: 8, baselines: half });
  expectClose(nums(await loadNpy(path.join(tmp, "out-base", "attributions.npy"))), nums(ig));
});

test("--resume runs only the shards not finished", async () => {
  const args = ["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "Saliency", "--inputs", "digits.npy", "--out", "out-resume", "--shard-size", "2", "--target", "1"];
  expect(cli(args).status).toBe(0);
  const shards = path.join(tmp, "out-resume", "shards");
  const before = nums(await loadNpy(path.join(tmp, "out-resume", "attributions.npy")));
  const kept = fs.statSync(path.join(shards, "shard-000000.json")).mtimeMs;
  fs.rmSync(path.join(shards, "shard-000001.json")); // as if the job had stopped during shard 1
  const r = cli([...args, "--resume"]);
  expect(r.status).toBe(0);
  expect(r.stderr).toMatch(/resuming: 2 of 3 shards already done/);
  expect(r.stderr.match(/^shard \d\/3/gm)).toEqual(["shard 2/3"]);
  expect(fs.statSync(path.join(shards, "shard-000000.json")).mtimeMs).toBe(kept);
  // The redone shard ran in another process, whose automatic memory layout
  // (chosen by timing) may differ: equal within float32 rounding, not bitwise.
  expectClose(nums(await loadNpy(path.join(tmp, "out-resume", "attributions.npy"))), before);
  // Another job in the same folder is not mixed in.
  const other = cli([...args.slice(0, -1), "2", "--resume"]);
  expect(other.status).not.toBe(0);
  expect(other.stderr).toMatch(/^torchexplain: resume: .* holds a different job/m);
});

test("targets per example: a .npy beside the inputs (--targets), a .npz's labels; refused when they do not fit", async () => {
  const mlp = path.join(root, "models", "bench_mlp.pt");
  const x = tensor(Float32Array.from({ length: 5 * 64 }, (_, i) => Math.cos(i * 0.3)), [5, 64]);
  const y = tensor(BigInt64Array.from([4, 0, 9, 2, 2].map(BigInt)), [5], "int64");
  await saveNpy(path.join(tmp, "tab.npy"), x);
  await saveNpy(path.join(tmp, "tab_y.npy"), y);
  await saveNpz(path.join(tmp, "tab.npz"), { x, labels: y });
  const m = await loadModel(mlp);
  const api = nums(await new Saliency(m).attribute(x, { target: [4, 0, 9, 2, 2] }));
  m.dispose();
  for (const [out, args] of [["out-targets", ["--inputs", "tab.npy", "--targets", "tab_y.npy"]], ["out-npz-labels", ["--inputs", "tab.npz"]]] as const) {
    const r = cli(["explain", "--model", mlp, "--method", "Saliency", "--out", out, ...args]);
    expect(r.stderr).not.toMatch(/torchexplain:/);
    expect(r.status).toBe(0);
    expectClose(nums(await loadNpy(path.join(tmp, out, "attributions.npy"))), api);
    const index = JSON.parse(fs.readFileSync(path.join(tmp, out, "index.json"), "utf8"));
    expect([index.targets, index.examples.map((e: { target: number }) => e.target)]).toEqual(["rows", [4, 0, 9, 2, 2]]);
  }
  await saveNpy(path.join(tmp, "tab_y3.npy"), tensor(BigInt64Array.from([1n, 2n, 3n]), [3], "int64"));
  await saveNpy(path.join(tmp, "tab_yf.npy"), tensor([1, 2.5, 3, 0, 1], [5]));
  expect(cli(["explain", "--model", mlp, "--method", "Saliency", "--out", "o", "--inputs", "tab.npy", "--targets", "tab_y3.npy"]).stderr)
    .toBe("torchexplain: targets: tab_y3.npy has shape [3]; expected one target per example, [5]\n");
  expect(cli(["explain", "--model", mlp, "--method", "Saliency", "--out", "o", "--inputs", "tab.npy", "--targets", "tab_yf.npy"]).stderr)
    .toBe("torchexplain: targets: tab_yf.npy[1] is 2.5; expected class indices (non-negative integers)\n");
  expect(cli(["explain", "--model", mlp, "--method", "Saliency", "--out", "o", "--inputs", "tab.npy", "--targets", "tab_y.npy", "--target", "1"]).stderr)
    .toMatch(/^torchexplain: --targets: give one of --target and --targets/);
});

test("JSON Lines rows of token ids stay integers; a text model's job writes an HTML page per example", async () => {
  const text = path.join(root, "models", "bench_textcnn.pt");
  const ids = Array.from({ length: 3 }, (_, i) => Array.from({ length: 128 }, (_, k) => (i * 131 + k * 7) % 2000));
  fs.writeFileSync(path.join(tmp, "tokens.jsonl"), ids.map((t, i) => JSON.stringify({ tokens: t, target: i % 2, id: `doc-${i}` })).join("\n") + "\n");
  const r = cli(["explain", "--model", text, "--method", "LayerIntegratedGradients", "--layer", "embedding", "--inputs", "tokens.jsonl", "--out", "out-tokens", "--options", '{"nSteps": 8}', "--html"]);
  expect(r.stderr).not.toMatch(/torchexplain:/);
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(path.join(tmp, "out-tokens", "pages") + "/");
  const m = await loadModel(text);
  const api = await new LayerIntegratedGradients(m, "embedding").attribute(tensor(BigInt64Array.from(ids.flat(), BigInt), [3, 128], "int64"), { target: [0, 1, 0], nSteps: 8 });
  m.dispose();
  expectClose(nums(await loadNpy(path.join(tmp, "out-tokens", "attributions.npy"))), nums(api));
  const index = JSON.parse(fs.readFileSync(path.join(tmp, "out-tokens", "index.json"), "utf8"));
  expect(index.examples.map((e: { page: string; heatmap?: string }) => [e.page, e.heatmap])).toEqual([0, 1, 2].map((i) => [`pages/00000${i}.html`, undefined]));
  const page = fs.readFileSync(path.join(tmp, "out-tokens", "pages", "000001.html"), "utf8");
  expect(page).toContain("example 1 (doc-1)");
  expect(page).toContain(`#${ids[1][0]}`);
  // Mixed rows are refused, naming the line.
  fs.writeFileSync(path.join(tmp, "mixed.jsonl"), [JSON.stringify({ tokens: [1, 2] }), JSON.stringify({ inputs: [1, 2] })].join("\n"));
  expect(cli(["explain", "--model", text, "--method", "Saliency", "--inputs", "mixed.jsonl", "--out", "o"]).stderr).toBe('torchexplain: inputs: line 2 gives "inputs" but the first row "tokens"\n');
  // info on a token model: zeros as token ids when floats are refused.
  const info = cli(["info", text, "--input-shape", "2,128"]);
  expect(info.stdout).toMatch(/^example input: \[2,128\] int64 \(token ids\)$/m);
  expect(info.stdout).toMatch(/^output: \[2,\d+\] float32$/m);
});

test("info: signature, layers, output shape", () => {
  const r = cli(["info", path.join(root, "models", "digits_cnn.pt"), "--input-shape", "2,1,8,8"]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^signature: forward\(/m);
  expect(r.stdout).toMatch(/^layers: .*conv1/m);
  expect(r.stdout).toMatch(/^output: \[2,10\] float32$/m);
  const guessed = cli(["info", path.join(root, "models", "bench_mlp.pt")]);
  expect(guessed.stdout).toMatch(/^example input: \[1,64\] float32 \(guessed/m);
});

describe("bad input: a non-zero exit and one clear line, no stack", () => {
  const base = ["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--inputs", "digits.npy", "--out", "out-bad"];
  test.each([
    ["a missing file", [...base.slice(0, 3), "--method", "Saliency", "--inputs", "nope.npy", "--out", "x"], /^torchexplain: --inputs: no such file or folder: nope\.npy$/],
    ["an unknown method", [...base, "--method", "IntegratedGradient"], /^torchexplain: method: unknown method 'IntegratedGradient' \(known: /],
    ["an option the method rejects", [...base, "--method", "IntegratedGradients", "--options", '{"nStep": 4}'], /^torchexplain: .*nStep/],
    ["options that are not JSON", [...base, "--method", "Saliency", "--options", "{nSteps: 4}"], /^torchexplain: --options: not valid JSON/],
    ["a layer method without a layer", [...base, "--method", "LayerGradCam"], /^torchexplain: layer: LayerGradCam needs a layer/],
    ["an unknown flag", [...base, "--method", "Saliency", "--nsteps", "3"], /^torchexplain: unknown option --nsteps for 'explain'/],
    ["a target out of range", [...base, "--method", "Saliency", "--target", "12"], /^torchexplain: target: /],
  ])("%s", (_, args, message) => {
    const r = cli(args as string[]);
    expect(r.status).not.toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(message);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(lines.filter((l) => l.startsWith("torchexplain:"))).toHaveLength(1);
  });
});

test("a layer method's pictures are drawn at the input's size (the .npy keeps the layer's)", async () => {
  const out = path.join(tmp, "gradcam");
  const r = cli(["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "LayerGradCam", "--layer", "conv2",
    "--inputs", path.join(root, "test", "fixtures", "influence", "test_img.npy"), "--target", "predicted", "--png", "--out", out]);
  expect(r.status).toBe(0);
  expect((await loadNpy(path.join(out, "attributions.npy"))).shape).toEqual([6, 1, 4, 4]);
  const meta = await sharp(path.join(out, "heatmaps", "000000.png")).metadata();
  expect([meta.width, meta.height]).toEqual([8, 8]);
});

test("a corrupt image stops the job; resumed with --skip-bad-inputs it goes on, reporting it", async () => {
  const dir = path.join(tmp, "with-corrupt");
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 6; i++) await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i * 40, g: 100, b: 50 } } }).png().toFile(path.join(dir, `${i}.png`));
  fs.writeFileSync(path.join(dir, "3.png"), "not an image");
  const out = path.join(tmp, "corrupt-out");
  const args = ["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "Saliency", "--inputs", dir, "--channels", "1",
    "--out", out, "--shard-size", "2", "--batch-size", "2", "--target", "1"];
  const first = cli(args);
  expect(first.status).toBe(1);
  expect(first.stderr.trim().split("\n").at(-1)).toMatch(/^torchexplain: path: cannot decode '.*3\.png' as an image/);
  const resumed = cli([...args, "--resume", "--skip-bad-inputs"]);
  expect(resumed.status).toBe(0);
  expect(resumed.stderr).toMatch(/resuming: 1 of 3 shards already done/);
  expect(resumed.stderr).toMatch(/skipped 1 input\(s\) that could not be read .*: 3\.png/);
  const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
  expect(index.examples.filter((x: { error?: string }) => x.error).map((x: { index: number }) => x.index)).toEqual([3]);
  const a = (await loadNpy(path.join(out, "attributions.npy"))).data() as Float32Array;
  expect(a.subarray(3 * 64, 4 * 64).every(Number.isNaN)).toBe(true);
  expect(a.subarray(2 * 64, 3 * 64).some(Number.isNaN)).toBe(false);
});

test("a missing file is a failure (status 1), misuse is 2; image options are named as flags", async () => {
  const base = ["explain", "--model", path.join(root, "models", "digits_cnn.pt"), "--method", "Saliency", "--out", "x"];
  expect(cli([...base, "--inputs", "nope.npy"]).status).toBe(1);
  expect(cli([...base, "--inputs", "nope.npy", "--bogus", "1"]).status).toBe(2);
  const dir = path.join(tmp, "mixed-sizes");
  fs.mkdirSync(dir, { recursive: true });
  await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).png().toFile(path.join(dir, "a.png"));
  await sharp({ create: { width: 9, height: 8, channels: 3, background: "#808080" } }).png().toFile(path.join(dir, "b.png"));
  const r = cli([...base, "--inputs", dir, "--channels", "1"]);
  expect(r.status).toBe(1);
  expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^torchexplain: --image-size: .*pass --image-size to resize them all/);
});

test("progress: a bar with rate and ETA on a terminal, a line per shard otherwise", async () => {
  const { Progress } = await import("../lib/batch/progress");
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream };
  };
  const tty = sink(true);
  const p = new Progress(10, 2, tty.stream);
  p.rows(5);
  p.shard(0, 0, 5, 20, false);
  p.rows(5);
  p.shard(1, 5, 10, 20, false);
  p.finish();
  const text = tty.chunks.join("");
  expect(text).toMatch(/\r\[#{15}-{15}\] 5\/10 examples, shard 1\/2, [\d.]+\/s, ETA /);
  expect(text).toMatch(/\r\[#{30}\] 10\/10 examples, shard 2\/2, [\d.]+\/s, ETA [\d.]+ s\s*\n$/);
  const log = sink(false);
  const q = new Progress(10, 2, log.stream, { rows: 5, shards: 1 }); // resumed: one shard done before
  q.shard(1, 5, 10, 1500, true);
  q.finish();
  expect(log.chunks).toEqual([expect.stringMatching(/^shard 2\/2 \(rows 5-9\) done in 1\.5 s; 10\/10 examples, [\d.]+\/s, ETA .*\n$/)]);
});
