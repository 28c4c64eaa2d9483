// Insights (torchexplain insights): the server's routes through fastify's inject
// (examples, filters, explanations of images, tokens, tabular and two-input
// models, downloads, bad input, cancellation), then the page in a real browser:
// Debian's Chromium driven by playwright-core (installed with apt-get when missing).
import { execSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import type { Browser, Page } from "playwright-core";
import { chromium } from "playwright-core";
import { createInsightsServer, startInsights, InsightsServer } from "../lib/insights/server";
import { createLLMInsightsServer, startLLMInsights } from "../lib/insights/llm_server";
import { loadModel, tensor, IntegratedGradients, parseNpy, saveNpz, Tensor } from "../lib";
import { ensureDist } from "./dist";

// fastify's inject loads light-my-request, which requires the ESM-only cookie 2 (Node 20.19+ can
// require() it; jest's module registry cannot). It only serialises request cookies, which no test sends.
jest.mock("cookie", () => ({
  stringifySetCookie: () => {
    throw new Error("cookie is stubbed in test/insights.test.ts");
  },
}));

const root = path.join(__dirname, "..");
const DIGITS = { model: path.join(root, "models", "digits_cnn.pt"), inputs: path.join(root, "models", "digits_samples.json") };
const FIX = path.join(__dirname, "fixtures", "insights");
const samples = JSON.parse(fs.readFileSync(DIGITS.inputs, "utf8")) as { labels: number[]; shape: number[]; images: number[] };
const CHROMIUM = "/usr/bin/chromium";
const LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

type Inject = InsightsServer["app"]["inject"];
async function waitJob(inject: Inject, id: string, timeoutMs = 20000): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const end = Date.now() + timeoutMs;
  for (;;) {
    const j = (await inject({ url: `/api/jobs/${id}` })).json();
    if (j.status !== "running") return j;
    if (Date.now() > end) throw new Error(`job ${id} still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("server routes (inject)", () => {
  let s: InsightsServer;
  beforeAll(async () => {
    s = await createInsightsServer(DIGITS);
  });
  afterAll(async () => {
    await s?.app.close();
  });

  test("info, the page and its files, examples with predictions; filters by class and by correctness", async () => {
    const info = (await s.app.inject("/api/info")).json();
    expect(info.count).toBe(6);
    expect(info.inputs).toEqual([{ name: "image", kind: "image", shape: [1, 8, 8], dtype: "float32" }]);
    expect(info.classes).toHaveLength(10);
    // GradCAM and the other layer methods start at the last convolutional block.
    expect(info.defaultLayer).toBe("conv2");
    expect(info.methods.map((m: { name: string }) => m.name)).toEqual(expect.arrayContaining(["IntegratedGradients", "Saliency", "LayerGradCam", "NoiseTunnel:Saliency"]));
    const page = await s.app.inject("/");
    expect(page.headers["content-type"]).toMatch(/text\/html/);
    expect(page.body).toContain('data-testid="method"');
    // Offline: the page refers to nothing outside the server.
    expect(page.body).not.toMatch(/https?:\/\//);
    expect((await s.app.inject("/static/app.js")).statusCode).toBe(200);
    expect((await s.app.inject("/static/nope.js")).statusCode).toBe(404);

    const all = (await s.app.inject("/api/examples")).json();
    expect(all.total).toBe(6);
    expect(all.examples.map((e: { label: number }) => e.label)).toEqual(samples.labels);
    // Predictions are the model's own: compare with a forward pass here.
    const model = await loadModel(DIGITS.model);
    const out = (await model.forward(tensor(Float32Array.from(samples.images), samples.shape))).toArray() as number[][];
    model.dispose();
    const cls = out.map((r) => r.indexOf(Math.max(...r)));
    expect(all.examples.map((e: { predicted: number }) => e.predicted)).toEqual(cls);
    for (const e of all.examples) expect(e.probability).toBeGreaterThan(0), expect(e.probability).toBeLessThanOrEqual(1 + 1e-6);

    const five = (await s.app.inject("/api/examples?class=5")).json();
    expect(five.examples.map((e: { index: number }) => e.index)).toEqual(samples.labels.flatMap((l, i) => (l === 5 ? [i] : [])));
    const right = (await s.app.inject("/api/examples?correct=true")).json();
    const wrong = (await s.app.inject("/api/examples?correct=false")).json();
    expect(right.total + wrong.total).toBe(6);
    expect(right.total).toBe(cls.filter((c, i) => c === samples.labels[i]).length);
    expect((await s.app.inject("/api/examples?class=x")).statusCode).toBe(400);

    const preview = await s.app.inject("/api/examples/0/inputs/0.png");
    expect(preview.headers["content-type"]).toBe("image/png");
    const meta = await sharp(preview.rawPayload).metadata();
    expect([meta.width, meta.height]).toEqual([160, 160]); // 8 pixels × 20
  });

  test("an explanation: the picture, and the raw attributions equal the library's", async () => {
    const r = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 2, method: "IntegratedGradients", nSteps: 24, target: "label" } });
    expect(r.statusCode).toBe(202);
    const job = await waitJob(s.app.inject.bind(s.app), r.json().id);
    expect(job.status).toBe("done");
    expect(job.result.target).toBe(samples.labels[2]);
    expect(typeof job.result.delta).toBe("number");
    const [o] = job.result.outputs;
    expect(o.kind).toBe("image");
    const png = await s.app.inject(o.picture);
    const meta = await sharp(png.rawPayload).metadata();
    expect([meta.width, meta.height]).toEqual([160, 160]);
    const npy = await s.app.inject(o.npy);
    expect(npy.headers["content-disposition"]).toMatch(/attachment; filename="IntegratedGradients-example2-attributions-0\.npy"/);
    const a = parseNpy(npy.rawPayload);
    expect(a.shape).toEqual([1, 1, 8, 8]);
    const model = await loadModel(DIGITS.model);
    const x = tensor(Float32Array.from(samples.images.slice(2 * 64, 3 * 64)), [1, 1, 8, 8]);
    const expected = Array.from((await new IntegratedGradients(model).attribute(x, { target: samples.labels[2], nSteps: 24 })).data() as Float32Array);
    model.dispose();
    const got = Array.from(a.data as Float32Array);
    for (let i = 0; i < 64; i++) expect(Math.abs(got[i] - expected[i])).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(expected[i]));
    expect(Math.abs(o.sum - expected.reduce((p, v) => p + v, 0))).toBeLessThan(1e-4);

    // Server-sent events: progress while it runs, then the job once ("end"); a finished job's stream is its end alone.
    const long = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 2, method: "IntegratedGradients", nSteps: 2000, options: { internalBatchSize: 20 }, metrics: false } });
    const stream = await s.app.inject(`/api/jobs/${long.json().id}/events`);
    expect(stream.headers["content-type"]).toBe("text/event-stream");
    const events = stream.body.trim().split("\n\n").map((e) => /^event: (\w+)\ndata: (.*)$/s.exec(e)!.slice(1));
    expect(events.slice(0, -1).every(([name]) => name === "progress")).toBe(true);
    expect(events.length).toBeGreaterThan(1);
    const [endName, endData] = events[events.length - 1];
    expect([endName, JSON.parse(endData).status, JSON.parse(endData).progress.done]).toEqual(["end", "done", 2000]);
    const again = await s.app.inject(`/api/jobs/${long.json().id}/events`);
    expect(again.body).toMatch(/^event: end\ndata: \{/);

    // A layer method: the layer's map, resized to the image.
    const g = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "LayerGradCam", layer: "conv2" } });
    const gj = await waitJob(s.app.inject.bind(s.app), g.json().id);
    expect(gj.status).toBe("done");
    expect(gj.result.outputs[0].shape).toEqual([1, 1, 4, 4]);
    expect((await sharp((await s.app.inject(gj.result.outputs[0].picture)).rawPayload).metadata()).width).toBe(160);
  });

  test("bad input is a 400 with the reason (the library's own message where it decides); the server keeps serving", async () => {
    const post = (payload: object | string) => s.app.inject({ method: "POST", url: "/api/explain", payload, headers: { "content-type": "application/json" } });
    const cases: [object | string, RegExp][] = [
      [{ example: 0, method: "IntegratedGradients", nSteps: 1e8 }, /^nSteps: at most 10000/],
      [{ example: 0, method: "IntegratedGradients", options: "{nSteps: 5" }, /^options: not valid JSON/],
      [{ example: 0, method: "IntegratedGradients", options: { internalBatchSize: 1e9 } }, /^internalBatchSize: at most/],
      [{ example: 0, method: "Integrated" }, /unknown method 'Integrated'/],
      [{ example: 0, method: "LayerGradCam" }, /^layer: LayerGradCam needs a layer/],
      [{ example: 0, method: "LayerGradCam", layer: "conv9" }, /no submodule 'conv9'/],
      [{ example: 6, method: "Saliency" }, /^example: expected an index from 0 to 5/],
      [{ example: 0, method: "Saliency", target: 10 }, /^target: expected predicted, label or a class index from 0 to 9/],
      [{ example: 0, method: "Saliency", options: { target: 1 } }, /^options: target cannot be set here/],
      ["{not json", /JSON/],
      [{ example: 0, method: "Saliency", metrics: "yes" }, /^metrics: expected true or false/],
    ];
    for (const [payload, message] of cases) {
      const r = await post(payload);
      expect({ payload, status: r.statusCode }).toEqual({ payload, status: 400 });
      expect(r.json().error).toMatch(message);
    }
    // Over the body limit (64 KiB): 413, said in words.
    const big = await post({ example: 0, method: "Saliency", options: { x: "a".repeat(70 * 1024) } });
    expect(big.statusCode).toBe(413);
    expect(big.json().error).toMatch(/request body too large: at most 65536 bytes/);
    // An option only the library checks: its message, on the job.
    const r = await post({ example: 0, method: "IntegratedGradients", nSteps: 4, options: { method: "simpson" } });
    const job = await waitJob(s.app.inject.bind(s.app), r.json().id);
    expect(job.status).toBe("error");
    expect(job.error.code).toBe("ERR_BAD_OPTION");
    expect(job.error.message).toMatch(/method/);
    expect((await s.app.inject("/api/info")).statusCode).toBe(200);
  });

  test("a long explanation reports progress and stops when cancelled", async () => {
    const r = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 1, method: "ShapleyValueSampling", nSamples: 10000 } });
    const id = r.json().id;
    let j;
    const end = Date.now() + 10000;
    do {
      await new Promise((res) => setTimeout(res, 20));
      j = (await s.app.inject(`/api/jobs/${id}`)).json();
    } while (j.progress.done === 0 && Date.now() < end);
    expect(j.status).toBe("running");
    expect(j.progress.total).toBe(640000); // 10000 orders × 64 features
    expect(j.progress.done).toBeGreaterThan(0);
    const t0 = Date.now();
    expect((await s.app.inject({ method: "POST", url: `/api/jobs/${id}/cancel` })).json().id).toBe(id);
    const done = await waitJob(s.app.inject.bind(s.app), id, 5000);
    expect(done.status).toBe("cancelled");
    expect(done.error.code).toBe("ERR_ABORTED");
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(done.progress.done).toBeLessThan(640000);
  });
});

test("metrics next to each explanation: given ones are called with the explanation; a failing one says why", async () => {
  const seen: { target: unknown; shape: number[]; algorithm: string }[] = [];
  const s = await createInsightsServer({
    ...DIGITS,
    metrics: {
      // Stand-ins for infidelity and sensitivity: the sum of the attributions, and an error.
      infidelity: async (c) => {
        seen.push({ target: c.options.target, shape: (c.attributions as Tensor).shape, algorithm: c.algorithm.constructor.name });
        return Array.from((c.attributions as Tensor).data() as Float32Array).reduce((a, b) => a + b, 0);
      },
      sensitivity: async () => {
        throw new Error("perturbRadius: must be positive");
      },
    },
  });
  try {
    expect((await s.app.inject("/api/info")).json().metrics).toEqual({ infidelity: true, sensitivity: true });
    const r = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "Saliency" } });
    const j = await waitJob(s.app.inject.bind(s.app), r.json().id);
    expect(seen).toEqual([{ target: j.result.target, shape: [1, 1, 8, 8], algorithm: "Saliency" }]);
    expect(Math.abs(j.result.metrics.infidelity - j.result.outputs[0].sum)).toBeLessThan(1e-4);
    expect(j.result.metrics.sensitivity).toBe("unavailable: perturbRadius: must be positive");
  } finally {
    await s.app.close();
  }
});

test("the library's infidelity and sensitivityMax are shown when lib/index exports them (feature-detected)", async () => {
  const lib = (await import("../lib")) as Record<string, unknown>;
  const has = Object.entries({ infidelity: lib.infidelity, sensitivity: lib.sensitivityMax }).filter(([, f]) => typeof f === "function").map(([k]) => k);
  const s = await createInsightsServer(DIGITS);
  try {
    expect((await s.app.inject("/api/info")).json().metrics).toEqual(Object.fromEntries(has.map((k) => [k, true])));
    const r = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "IntegratedGradients", nSteps: 8 } });
    const j = await waitJob(s.app.inject.bind(s.app), r.json().id);
    expect(Object.keys(j.result.metrics).sort()).toEqual(has.sort());
    // Both are norms of differences: finite and not negative.
    for (const k of has) expect(j.result.metrics[k]).toBeGreaterThanOrEqual(0), expect(Number.isFinite(j.result.metrics[k])).toBe(true);
    // A layer's attributions: sensitivity still applies, infidelity (input perturbations times attributions) does not.
    if (has.length === 2) {
      const g = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "LayerGradCam", layer: "conv2" } });
      const gm = (await waitJob(s.app.inject.bind(s.app), g.json().id)).result.metrics;
      expect(gm.infidelity).toMatch(/^n\/a: infidelity needs attributions shaped like the inputs/);
      expect(gm.sensitivity).toBeGreaterThanOrEqual(0);
    }
    // Token inputs: sensitivity's small perturbations do not exist; it says so.
    if (has.includes("sensitivity")) {
      const { libraryMetrics } = await import("../lib/insights/server");
      const ids = tensor(BigInt64Array.from([1n, 2n, 3n]), [1, 3], "int64");
      await expect(libraryMetrics().sensitivity!({ inputs: ids } as never)).rejects.toThrow(/^n\/a: sensitivity perturbs inputs by small amounts/);
    }
    // Cancelled while a metric runs (its phase shown): the explanation is cancelled.
    if (has.includes("sensitivity")) {
      const r2 = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 1, method: "IntegratedGradients", nSteps: 500, options: { internalBatchSize: 4 } } });
      const id = r2.json().id;
      let j2;
      const end = Date.now() + 15000;
      do {
        await new Promise((res) => setTimeout(res, 10));
        j2 = (await s.app.inject(`/api/jobs/${id}`)).json();
      } while (j2.status === "running" && j2.phase !== "sensitivity" && Date.now() < end);
      expect([j2.status, j2.phase]).toEqual(["running", "sensitivity"]);
      await s.app.inject({ method: "POST", url: `/api/jobs/${id}/cancel` });
      expect((await waitJob(s.app.inject.bind(s.app), id, 5000)).status).toBe("cancelled");
    }
    // The page's checkbox off: none computed.
    const off = await s.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "Saliency", metrics: false } });
    expect((await waitJob(s.app.inject.bind(s.app), off.json().id)).result.metrics).toEqual({});
  } finally {
    await s.app.close();
  }
});

describe("other inputs (inject)", () => {
  test("a folder of class subfolders, an .npz with labels, a labels file of class names", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-insights-"));
    try {
      // The digits as 8×8 grey PNGs in one subfolder per class (values rounded to 1/255).
      for (let i = 0; i < 6; i++) {
        const dir = path.join(tmp, "digits", `class_${samples.labels[i]}`);
        fs.mkdirSync(dir, { recursive: true });
        const px = Buffer.from(samples.images.slice(i * 64, (i + 1) * 64).map((v) => Math.round(v * 255)));
        await sharp(px, { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path.join(dir, `digit_${i}.png`));
      }
      const folder = await createInsightsServer({ model: DIGITS.model, inputs: path.join(tmp, "digits"), image: { channels: 1 } });
      try {
        const info = (await folder.app.inject("/api/info")).json();
        expect(info.inputs[0]).toMatchObject({ kind: "image", shape: [1, 8, 8] });
        const ex = (await folder.app.inject("/api/examples")).json().examples as { name: string; label: number; labelName: string }[];
        // Subfolders sorted by name are the classes 0, 1, 2, ...: class_4, class_5, class_7, class_9.
        expect(ex.map((e) => [e.name, e.label, e.labelName])).toEqual([
          ["class_4/digit_2.png", 0, "class_4"], ["class_5/digit_0.png", 1, "class_5"], ["class_5/digit_3.png", 1, "class_5"],
          ["class_5/digit_5.png", 1, "class_5"], ["class_7/digit_1.png", 2, "class_7"], ["class_9/digit_4.png", 3, "class_9"],
        ]);
      } finally {
        await folder.app.close();
      }
      await saveNpz(path.join(tmp, "digits.npz"), { images: tensor(Float32Array.from(samples.images), samples.shape), labels: tensor(samples.labels, [6], "int64") });
      fs.writeFileSync(path.join(tmp, "names.json"), JSON.stringify(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]));
      const npz = await createInsightsServer({ model: DIGITS.model, inputs: path.join(tmp, "digits.npz"), labels: path.join(tmp, "names.json") });
      try {
        const info = (await npz.app.inject("/api/info")).json();
        expect(info.inputs).toHaveLength(1); // "labels" is not an input
        expect(info.classes[5]).toBe("five");
        const ex = (await npz.app.inject("/api/examples?class=5")).json().examples as { index: number; labelName: string }[];
        expect(ex.map((e) => [e.index, e.labelName])).toEqual([[0, "five"], [3, "five"], [5, "five"]]);
      } finally {
        await npz.app.close();
      }
      fs.writeFileSync(path.join(tmp, "short.json"), JSON.stringify([1, 2]));
      await expect(createInsightsServer({ model: DIGITS.model, inputs: path.join(tmp, "digits.npz"), labels: path.join(tmp, "short.json") })).rejects.toThrow(
        "labels: expected 6 class indices (one per example)",
      );
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("a long list comes in pages (offset, limit), on the page too (Show more)", async () => {
    // 450 examples of the MLP's 64 features, given as a Dataset; labels 0-9 in turn.
    const data = Float32Array.from({ length: 450 * 64 }, (_, i) => ((i * 7919) % 97) / 97);
    const ds = { count: 450, inputs: [{ name: "x", kind: "tabular" as const, dtype: "float32" as const, exampleShape: [64], data }], labels: Array.from({ length: 450 }, (_, i) => i % 10), names: Array.from({ length: 450 }, (_, i) => `row ${i}`) };
    const s = await startInsights({ model: path.join(root, "models", "bench_mlp.pt"), inputs: ds, port: 0 });
    try {
      const first = (await s.app.inject("/api/examples")).json();
      expect([first.total, first.examples.length, first.examples[199].index]).toEqual([450, 200, 199]);
      const page2 = (await s.app.inject("/api/examples?offset=400&limit=100")).json();
      expect(page2.examples.map((e: { index: number }) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => 400 + i));
      const threes = (await s.app.inject("/api/examples?class=3&offset=40")).json();
      expect([threes.total, threes.examples.map((e: { index: number }) => e.index)]).toEqual([45, [403, 413, 423, 433, 443]]);
      ensureChromium();
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
      try {
        const page = await browser.newPage();
        await page.goto(s.url + "/");
        await page.locator("[data-testid=example]").nth(199).waitFor();
        expect(await page.locator("[data-testid=example]").count()).toBe(200);
        await page.click("[data-testid=more]");
        await page.waitForFunction(() => document.querySelectorAll("[data-testid=example]").length === 400);
        await page.click("[data-testid=more]");
        await page.waitForFunction(() => document.querySelectorAll("[data-testid=example]").length === 450);
        expect(await page.locator("[data-testid=more]").count()).toBe(0);
        await expect(page.locator("[data-testid=example-count]").textContent()).resolves.toBe("450 of 450 match");
      } finally {
        await browser.close();
      }
    } finally {
      await s.app.close();
    }
  });

  test("tokens of a text model, bars of a tabular one, two inputs of a two-input model side by side", async () => {
    const text = await createInsightsServer({ model: path.join(root, "test", "fixtures", "golden", "text.pt"), inputs: path.join(FIX, "text.json") });
    try {
      const info = (await text.app.inject("/api/info")).json();
      expect(info.classes).toEqual(["negative", "positive"]);
      expect([info.defaultMethod, info.defaultLayer]).toEqual(["LayerIntegratedGradients", "embedding"]);
      const r = await text.app.inject({ method: "POST", url: "/api/explain", payload: { example: 0, method: "LayerIntegratedGradients", layer: "embedding", nSteps: 16 } });
      const j = await waitJob(text.app.inject.bind(text.app), r.json().id);
      const o = j.result.outputs[0];
      expect(o.kind).toBe("text");
      expect(o.tokens.map((t: { text: string }) => t.text)).toEqual("i loved the movie it was great".split(" "));
      // Scaled to [-1, 1]: the largest magnitude is 1.
      expect(Math.max(...o.tokens.map((t: { value: number }) => Math.abs(t.value)))).toBeCloseTo(1, 6);
    } finally {
      await text.app.close();
    }
    const tab = await createInsightsServer({ model: path.join(root, "models", "bench_mlp.pt"), inputs: path.join(FIX, "tabular.jsonl") });
    try {
      const ex = (await tab.app.inject("/api/examples")).json();
      expect(ex.total).toBe(8);
      expect(ex.examples[3]).toMatchObject({ name: "row 3", label: 3 });
      const r = await tab.app.inject({ method: "POST", url: "/api/explain", payload: { example: 3, method: "FeatureAblation", baselines: "mean" } });
      const j = await waitJob(tab.app.inject.bind(tab.app), r.json().id);
      expect(j.result.outputs[0].kind).toBe("tabular");
      expect(j.result.outputs[0].bars).toHaveLength(64);
    } finally {
      await tab.app.close();
    }
    const multi = await createInsightsServer({ model: path.join(root, "test", "fixtures", "golden", "multi.pt"), inputs: path.join(FIX, "multi.json") });
    try {
      const r = await multi.app.inject({ method: "POST", url: "/api/explain", payload: { example: 1, method: "IntegratedGradients", nSteps: 16 } });
      const j = await waitJob(multi.app.inject.bind(multi.app), r.json().id);
      expect(j.result.outputs.map((o: { title: string; shape: number[] }) => [o.title, o.shape])).toEqual([["a", [1, 4]], ["b", [1, 3]]]);
      expect(j.result.outputs[1].bars.map((b: { name: string }) => b.name)).toEqual(["b0", "b1", "b2"]);
      // Completeness across both inputs: the attributions sum to F(x) - F(0) less the reported delta (the extra forward argument 0.7 used in both).
      const doc = JSON.parse(fs.readFileSync(path.join(FIX, "multi.json"), "utf8"));
      const m = await loadModel(path.join(root, "test", "fixtures", "golden", "multi.pt"));
      const f = async (a: number[], b: number[]) => ((await m.forward([tensor([a]), tensor([b])], [0.7])).toArray() as number[][])[0][j.result.target];
      const gap = (await f(doc.inputs[0].data[1], doc.inputs[1].data[1])) - (await f([0, 0, 0, 0], [0, 0, 0]));
      m.dispose();
      const sum = j.result.outputs[0].sum + j.result.outputs[1].sum;
      expect(Math.abs(sum - gap - j.result.delta)).toBeLessThan(1e-4);
      expect(Math.abs(j.result.delta)).toBeLessThan(0.05 * Math.max(1, Math.abs(gap)));
    } finally {
      await multi.app.close();
    }
  });
});

test("torchexplain insights: serves until SIGTERM, then exits 0; misuse exits 2", async () => {
  ensureDist();
  const bin = path.join(root, "bin", "torchexplain.js");
  const child = spawn(process.execPath, [bin, "insights", "--model", DIGITS.model, "--inputs", DIGITS.inputs, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stderr.on("data", (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) resolve(m[1]);
    });
    child.on("exit", () => reject(new Error(`exited early: ${out}`)));
  });
  expect(out).toMatch(/6 examples of digits_cnn\.pt/);
  const info = (await (await fetch(`${url}/api/info`)).json()) as { count: number };
  expect(info.count).toBe(6);
  const code = new Promise((resolve) => child.on("exit", resolve));
  child.kill("SIGTERM");
  expect(await code).toBe(0);
  const bad = spawn(process.execPath, [bin, "insights", "--inputs", DIGITS.inputs], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  bad.stderr.on("data", (d) => (err += d));
  expect(await new Promise((resolve) => bad.on("exit", resolve))).toBe(2);
  expect(err).toBe("torchexplain: --model is required\n");
});

test("the package ships the page: npm pack lists web/insights", () => {
  const out = execSync("npm pack --dry-run --ignore-scripts --json", { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const files = (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  const page = fs.readdirSync(path.join(root, "web", "insights")).map((f) => `web/insights/${f}`);
  expect(page.sort()).toEqual(["web/insights/app.css", "web/insights/app.js", "web/insights/index.html", "web/insights/llm.html", "web/insights/llm.js"]);
  expect(files).toEqual(expect.arrayContaining(page));
});

// ---- the page in Chromium ------------------------------------------------------------------------

/** A page at the app's start, collecting its uncaught errors. */
async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15000);
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url + "/");
  return { page, errors };
}

function ensureChromium(): void {
  if (fs.existsSync(CHROMIUM)) return;
  // The test machines run as root: install Debian's Chromium (playwright-core downloads no browser).
  try {
    execSync("apt-get install -y chromium", { stdio: "ignore", timeout: 300000 });
  } catch {
    execSync("apt-get update && apt-get install -y chromium", { stdio: "ignore", timeout: 600000 });
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing and apt-get could not install chromium`);
}

describe("the page in Chromium", () => {
  let browser: Browser;
  let server: InsightsServer & { url: string };
  let page: Page;
  beforeAll(async () => {
    ensureChromium();
    [browser, server] = await Promise.all([chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS }), startInsights({ ...DIGITS, port: 0, metrics: { infidelity: async () => 0.125 } })]);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(15000);
    await page.goto(server.url + "/");
    await page.locator("[data-testid=example]").first().waitFor();
  }, 300000);
  afterAll(async () => {
    await browser?.close();
    await server?.app.close();
  });

  const pictureSizes = () =>
    page.$$eval("img[data-testid=attribution]", (imgs) => (imgs as HTMLImageElement[]).map((i) => ({ complete: i.complete, w: i.naturalWidth, src: i.src })));

  test("filters: by class and by correct/incorrect", async () => {
    expect(await page.locator("[data-testid=example]").count()).toBe(6);
    await page.selectOption("[data-testid=filter-class]", "5");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=example]").length === 3);
    expect(await page.$$eval("[data-testid=example]", (els) => els.map((e) => Number(e.getAttribute("data-index"))))).toEqual(
      samples.labels.flatMap((l, i) => (l === 5 ? [i] : [])),
    );
    await page.selectOption("[data-testid=filter-class]", "");
    const all = (await (await fetch(`${server.url}/api/examples`)).json()) as { examples: { correct: boolean }[] };
    const wrong = all.examples.filter((e) => !e.correct).length;
    await page.selectOption("[data-testid=filter-correct]", "false");
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=example]").length === n, wrong);
    await expect(page.locator("[data-testid=example-count]").textContent()).resolves.toBe(`${wrong} of 6 match`);
    await page.selectOption("[data-testid=filter-correct]", "true");
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=example]").length === n, 6 - wrong);
    expect(await page.$$eval("[data-testid=example]", (els) => els.every((e) => e.getAttribute("data-correct") === "true"))).toBe(true);
    await page.selectOption("[data-testid=filter-correct]", "");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=example]").length === 6);
  });

  test("pick an example and a method, explain: the picture loads; a second method side by side", async () => {
    await page.locator("[data-testid=example][data-index='2']").click();
    await page.selectOption("select[data-testid=method]", "IntegratedGradients");
    await page.fill("[data-testid=steps]", "16");
    await page.click("button[data-testid=explain]");
    await page.waitForFunction(() => {
      const imgs = document.querySelectorAll<HTMLImageElement>("img[data-testid=attribution]");
      return imgs.length === 1 && imgs[0].complete && imgs[0].naturalWidth > 0;
    });
    const [img] = await pictureSizes();
    expect(img.w).toBe(160);
    // The bytes the page showed are a PNG of that size.
    const bytes = Buffer.from(await (await fetch(img.src)).arrayBuffer());
    const meta = await sharp(bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 160, 160]);
    await expect(page.locator("[data-testid=status]").textContent()).resolves.toBe("done");
    await expect(page.locator("[data-testid=metric-infidelity]").textContent()).resolves.toBe("infidelity 0.125"); // the stand-in metric's value
    const npyHref = await page.getAttribute("[data-testid=download-npy]", "href");
    expect(parseNpy(Buffer.from(await (await fetch(server.url + npyHref)).arrayBuffer())).shape).toEqual([1, 1, 8, 8]);

    await page.selectOption("[data-testid=method-compare]", "LayerGradCam");
    await page.selectOption("[data-testid=layer-compare]", "conv2");
    await page.click("button[data-testid=explain]");
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll<HTMLImageElement>("img[data-testid=attribution]")];
      return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    });
    expect(await page.$$eval("[data-testid=result]", (els) => els.map((e) => e.getAttribute("data-method")))).toEqual(["IntegratedGradients", "LayerGradCam"]);
    await page.selectOption("[data-testid=method-compare]", "");
  });

  test("bad input shows an error on the page and the server keeps serving", async () => {
    await page.locator("[data-testid=example][data-index='0']").click();
    await page.selectOption("select[data-testid=method]", "IntegratedGradients");
    // The field's max is the limit; bypass it as a hand-made request would.
    await page.$eval("[data-testid=steps]", (e) => ((e as HTMLInputElement).value = "100000000"));
    await page.click("button[data-testid=explain]");
    await page.locator("[data-testid=error]").waitFor({ state: "visible" });
    await expect(page.locator("[data-testid=error]").textContent()).resolves.toMatch(/nSteps: at most 10000/);
    await page.fill("[data-testid=steps]", "8");
    await page.fill("[data-testid=options]", "{internalBatchSize: 4");
    await page.click("button[data-testid=explain]");
    await page.waitForFunction(() => /options: not valid JSON/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""));
    // The library's own rejection (an approximation method it does not know), shown as it says it.
    await page.fill("[data-testid=options]", '{"method": "simpson"}');
    await page.click("button[data-testid=explain]");
    await page.waitForFunction(() => /IntegratedGradients: .*method/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""));
    expect((await fetch(`${server.url}/api/info`)).status).toBe(200);
    // And the next good request works.
    await page.fill("[data-testid=options]", "");
    await page.click("button[data-testid=explain]");
    await page.waitForFunction(() => document.querySelector<HTMLImageElement>("img[data-testid=attribution]")?.naturalWidth === 160);
    expect(await page.locator("[data-testid=error]").isHidden()).toBe(true);
  });

  test("a long explanation shows progress and is cancelled from the page", async () => {
    await page.locator("[data-testid=example][data-index='1']").click();
    await page.selectOption("select[data-testid=method]", "ShapleyValueSampling");
    await page.fill("[data-testid=samples]", "10000");
    await page.click("button[data-testid=explain]");
    // Progress shown as a percentage of the 640,000 perturbations.
    await page.waitForFunction(() => /of 640000\)/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""));
    expect(await page.$eval("[data-testid=progress]", (p) => (p as HTMLProgressElement).value)).toBeGreaterThan(0);
    const t0 = Date.now();
    await page.click("button[data-testid=cancel]");
    await page.waitForFunction(() => document.querySelector("[data-testid=status]")?.textContent === "cancelled");
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await page.locator("button[data-testid=explain]").isEnabled()).toBe(true);
    expect(await page.locator("img[data-testid=attribution]").count()).toBe(0);
    expect((await fetch(`${server.url}/api/info`)).status).toBe(200);

    // A page that goes away mid-explanation (its event stream closes) stops the work too.
    const job = (await (await fetch(`${server.url}/api/explain`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ example: 1, method: "ShapleyValueSampling", nSamples: 10000 }) })).json()) as { id: string };
    const stream = new AbortController();
    const res = await fetch(`${server.url}/api/jobs/${job.id}/events`, { signal: stream.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^event: progress/);
    stream.abort();
    let state: { status: string; error?: { message: string } };
    const end = Date.now() + 5000;
    do {
      await new Promise((r) => setTimeout(r, 20));
      state = (await (await fetch(`${server.url}/api/jobs/${job.id}`)).json()) as typeof state;
    } while (state.status === "running" && Date.now() < end);
    expect([state.status, state.error?.message]).toEqual(["cancelled", "aborted: the page closed"]);
  });
});

// ---- the language-model page -------------------------------------------------------------------

describe("the language-model page", () => {
  const LLM = path.join(__dirname, "fixtures", "llm");
  const template = { template: "{} lives in {} and likes {}", values: ["dave", "paris", "the cat"], baselines: ["anna", "rome", "a dog"] };

  test("routes (inject): info, an explanation as the API's, a generated target, gradients on the embedding; bad input is a 400 naming the argument", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-llm-insights-"));
    fs.writeFileSync(path.join(tmp, "p.jsonl"), JSON.stringify({ id: "dave", ...template, target: " he is happy" }) + "\n");
    const s = await createLLMInsightsServer({ model: path.join(LLM, "gpt2.pt"), tokenizer: path.join(LLM, "bpe.json"), prompts: path.join(tmp, "p.jsonl") });
    try {
      const info = (await s.app.inject("/api/info")).json();
      expect(info.examples.map((e: { id: string }) => e.id)).toEqual(["dave"]);
      expect(info.layers[0]).toBe("m.transformer.wte");
      const page = await s.app.inject("/");
      expect(page.body).toContain('data-testid="template"');
      const post = (body: object) => s.app.inject({ method: "POST", url: "/api/explain", payload: body });
      const r = (await post({ ...template, target: " he is happy" })).json();
      const { LLMAttribution, FeatureAblation, TextTemplateInput, loadTokenizer } = await import("../lib");
      const api = await new LLMAttribution(new FeatureAblation(s.model), await loadTokenizer(path.join(LLM, "bpe.json"))).attribute(
        new TextTemplateInput(template.template, template.values, { baselines: template.baselines }), { target: " he is happy" });
      api.seqAttr.forEach((v, i) => expect(Math.abs(r.seqAttr[i] - v)).toBeLessThan(1e-5 + 1e-4 * Math.abs(v)));
      expect(r.outputTokens).toEqual(["he", "is", "happy"]);
      expect(Buffer.from(r.pictures.tokens, "base64").subarray(1, 4).toString()).toBe("PNG");
      const gen = (await post({ ...template, maxNewTokens: 3 })).json();
      expect(gen.outputTokens).toHaveLength(3);
      const ig = (await post({ text: "the cat sat", method: "LayerIntegratedGradients", nSteps: 4, target: " on" })).json();
      expect(ig.inputTokens.length).toBe(ig.seqAttr.length);
      for (const [body, message] of [
        [{ ...template, values: ["dave"] }, /template: has 3 placeholders for 1 values/],
        [{ ...template, method: "Saliency" }, /method: expected one of/],
        [{ text: "the cat", method: "LayerIntegratedGradients", layer: "nope" }, /layer: the model has no layer 'nope'/],
        [{ ...template, maxNewTokens: 0 }, /maxNewTokens: expected an integer from 1 to 256/],
        [{ ...template, method: "ShapleyValueSampling", nSamples: 1e9 }, /nSamples: expected an integer from 1 to 10000/],
      ] as const) {
        const res = await post(body);
        expect([res.statusCode, res.json().error]).toEqual([400, expect.stringMatching(message)]);
      }
    } finally {
      await s.app.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("in Chromium: pick a prompt, explain, see the coloured prompt and the token map; a generated target; cancel", async () => {
    ensureChromium();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-llm-insights-"));
    fs.writeFileSync(path.join(tmp, "p.jsonl"), [JSON.stringify({ id: "dave", ...template, target: " he is happy" }), JSON.stringify({ text: "the cat sat on", target: " the mat" })].join("\n"));
    const [browser, s] = await Promise.all([chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS }),
      startLLMInsights({ model: path.join(LLM, "gpt2.pt"), tokenizer: path.join(LLM, "bpe.json"), prompts: path.join(tmp, "p.jsonl") })]);
    try {
      const { page, errors } = await openPage(browser, s.url);
      await page.locator("[data-testid=example]").nth(1).waitFor();
      await page.locator("[data-testid=example]").first().click();
      await page.click("[data-testid=explain]");
      await page.locator("[data-testid=token-map]").waitFor();
      expect(await page.locator("[data-testid=token-map] tr").count()).toBe(4); // header + 3 target tokens
      expect(await page.locator(".segment:not(.fixed)").allTextContents()).toEqual(["dave", "paris", "the cat"]);
      expect(await page.locator("[data-testid=target-tokens] code").allTextContents()).toEqual(["he", "is", "happy"]);
      await page.screenshot({ path: path.join(root, "build", "insights-llm.png"), fullPage: true });
      // Gradients on the second (text) prompt, then a generated target.
      await page.locator("[data-testid=example]").nth(1).click();
      await page.selectOption("[data-testid=method]", "LayerIntegratedGradients");
      await page.fill("[data-testid=steps]", "4");
      await page.click("[data-testid=explain]");
      await page.waitForFunction(() => document.querySelector("h3")?.textContent?.includes("LayerIntegratedGradients"));
      await page.selectOption("[data-testid=method]", "FeatureAblation");
      await page.fill("[data-testid=target]", "");
      await page.fill("[data-testid=max-new-tokens]", "2");
      await page.click("[data-testid=explain]");
      await page.waitForFunction(() => document.querySelectorAll("[data-testid=target-tokens] code").length === 2 && !!document.querySelector("h4")?.parentElement?.textContent?.includes("generated"));
      // A long one, cancelled from the page.
      await page.selectOption("[data-testid=method]", "ShapleyValueSampling");
      await page.fill("[data-testid=samples]", "10000");
      await page.fill("[data-testid=target]", " he is happy and the cat sat on the mat");
      await page.click("[data-testid=explain]");
      await page.waitForFunction(() => !(document.getElementById("cancel") as HTMLButtonElement).disabled);
      await page.click("[data-testid=cancel]");
      await page.waitForFunction(() => document.getElementById("status")?.textContent === "cancelled");
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await s.app.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("the influence panel", () => {
  const INF = path.join(__dirname, "fixtures", "influence");
  const influence = { checkpoints: [0, 1, 2].map((i) => path.join(INF, `cnn_${i}.pt`)), train: path.join(INF, "train_img.npy"), trainLabels: path.join(INF, "train_y.npy"), k: 3 };
  let tmp: string;
  let inputs: string;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-influence-insights-"));
    inputs = path.join(tmp, "test.npz");
    const np = (f: string) => parseNpy(fs.readFileSync(path.join(INF, f)));
    const x = np("test_img.npy"), y = np("test_y.npy");
    await saveNpz(inputs, { image: tensor(x.data as Float32Array, x.shape), labels: tensor(y.data as BigInt64Array, y.shape, "int64") });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test("routes (inject): info, an example's proponents and opponents as the API's, training pictures; bad input is a 400", async () => {
    const s = await createInsightsServer({ model: path.join(INF, "cnn_2.pt"), inputs, influence });
    try {
      const info = (await s.app.inject("/api/info")).json();
      expect(info.influence).toEqual({ method: "TracInCP", k: 3, checkpoints: 3 });
      const r = (await s.app.inject("/api/examples/2/influence")).json();
      const { TracInCP, loadNpy } = require("../lib");
      const model = await loadModel(path.join(INF, "cnn_2.pt"));
      const t = new TracInCP(model, { inputs: await loadNpy(influence.train), labels: await loadNpy(influence.trainLabels) }, influence.checkpoints);
      const test = { inputs: await loadNpy(path.join(INF, "test_img.npy")), labels: await loadNpy(path.join(INF, "test_y.npy")) };
      const api = await t.influence(test, { k: 3 });
      expect(r.labelKind).toBe("label");
      expect(r.proponents.map((p: { index: number }) => p.index)).toEqual(Array.from(api.indices.data() as BigInt64Array, Number).slice(6, 9));
      expect(r.opponents).toHaveLength(3);
      const png = await s.app.inject(r.proponents[0].preview);
      expect([png.statusCode, png.headers["content-type"]]).toEqual([200, "image/png"]);
      expect((await sharp(png.rawPayload).metadata()).width).toBeGreaterThanOrEqual(64);
      await t.dispose();
      model.dispose();
      expect((await s.app.inject("/api/examples/99/influence")).statusCode).toBe(400);
      expect((await s.app.inject("/api/examples/1/influence?k=0")).json().error).toMatch(/k: expected an integer from 1 to/);
      expect((await s.app.inject("/api/train/600.png")).statusCode).toBe(404);
    } finally {
      await s.app.close();
    }
  });

  test("in Chromium: pick an example, find its training examples, see their pictures", async () => {
    ensureChromium();
    const [browser, s] = await Promise.all([chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS }), startInsights({ model: path.join(INF, "cnn_2.pt"), inputs, influence })]);
    try {
      const { page, errors } = await openPage(browser, s.url);
      await page.locator("[data-testid=example]").nth(2).click();
      await page.locator("[data-testid=influence]").waitFor();
      await page.click("[data-testid=influence-run]");
      await page.locator("[data-testid=influence-proponents] [data-testid=influence-example]").nth(2).waitFor();
      expect(await page.locator("[data-testid=influence-opponents] [data-testid=influence-example]").count()).toBe(3);
      await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=influence-example] img")].every((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0));
      await page.screenshot({ path: path.join(root, "build", "insights-influence.png"), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await s.app.close();
    }
  });
});
