// Limits of a request: cancellation (AbortSignal, timeoutMs), fair
// scheduling between long and short requests, dispose(), input checks (empty
// batches, NaN/Inf, detached outputs, devices, paths, corrupt files) and the
// memory budget. In-process where that is safe; memory peaks and `using`
// run in child processes (test/limits/*.js) against the compiled library.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ts from "typescript";
import {
  configure, DeepLift, DeepLiftShap, FeatureAblation, FeaturePermutation, GradientShap, GuidedBackprop, InputXGradient,
  IntegratedGradients, KernelShap, LayerConductance, LayerGradCam, LayerIntegratedGradients, Lime, loadModel, LRP, Model,
  NeuronGradient, NeuronIntegratedGradients, NoiseTunnel, Occlusion, Saliency, ShapleyValueSampling, tensor, Tensor,
  TorchExplainError,
} from "../lib";
import { expectClose, GOLDEN, MODELS, values } from "./helpers";

const ROOT = path.join(__dirname, "..");
const FIXTURES = path.join(__dirname, "fixtures", "models");

/** A deterministic float32 tensor. */
function input(shape: number[], seed = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + seed) * 0.9), shape);
}
const empty = (shape: number[]) => tensor(new Float32Array(0), shape);

/** Settles `p` and reports how: the value or the error, and when (ms since `since`). */
async function outcome<T>(p: Promise<T>, since = Date.now()): Promise<{ value?: T; error?: TorchExplainError; ms: number }> {
  try {
    const value = await p;
    return { value, ms: Date.now() - since };
  } catch (e) {
    return { error: e as TorchExplainError, ms: Date.now() - since };
  }
}

let toy: Model, mlp: Model, cnn: Model, multi: Model, conv: Model;
beforeAll(async () => {
  [toy, mlp, cnn, multi, conv] = await Promise.all([
    loadModel(path.join(GOLDEN, "toy.pt")),
    loadModel(path.join(GOLDEN, "mlp.pt")),
    loadModel(path.join(GOLDEN, "cnn.pt")),
    loadModel(path.join(GOLDEN, "multi.pt")),
    loadModel(path.join(MODELS, "bench_convnet.pt")),
  ]);
  // Warm the conv net's passes (the first call of a model pays one-time costs).
  await new IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 0, nSteps: 64, internalBatchSize: 4 });
});

// A long request: IG on the 3x32x32 conv net in chunks of 4 rows (a few ms each).
const longIG = (options: object = {}) =>
  new IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 0, nSteps: 100000, internalBatchSize: 4, ...options });
// A small request whose result is compared before and after the others.
const smallIG = () => new IntegratedGradients(cnn).attribute(input([2, 1, 8, 8]), { target: 1, nSteps: 32 });

describe("cancellation", () => {
  test("aborting a long IG rejects with an AbortError within 2 s, and the library computes the same afterwards", async () => {
    const before = await smallIG();
    const controller = new AbortController();
    const job = outcome(longIG({ signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 20));
    const abortedAt = Date.now();
    controller.abort();
    const { value, error } = await job;
    const latency = Date.now() - abortedAt;
    expect(value).toBeUndefined();
    expect(error).toBeInstanceOf(TorchExplainError);
    expect(error!.name).toBe("AbortError");
    expect(error!.code).toBe("ERR_ABORTED");
    expect(latency).toBeLessThan(2000);
    expectClose(await smallIG(), before);
  });

  test("the abort reason is in the message", async () => {
    const controller = new AbortController();
    const job = outcome(longIG({ signal: controller.signal }));
    setTimeout(() => controller.abort(new Error("user pressed stop")), 20);
    const { error } = await job;
    expect(error?.code).toBe("ERR_ABORTED");
    expect(error?.message).toMatch(/user pressed stop/);
  });

  test("an already-aborted signal rejects every kind of request at once", async () => {
    const signal = AbortSignal.abort("too late");
    const x = tensor([[1, 2, 3]]);
    const calls: [string, Promise<unknown>][] = [
      ["IntegratedGradients", longIG({ signal })],
      ["Saliency", new Saliency(toy).attribute(x, { target: 0, signal })],
      ["Lime", new Lime(toy).attribute(x, { target: 0, signal, similarityFunc: () => 1 })],
      ["forward", toy.forward(x, [], { signal })],
      ["loadModel", loadModel(path.join(GOLDEN, "toy.pt"), { signal })],
    ];
    for (const [name, p] of calls) {
      const { value, error, ms } = await outcome(p);
      expect({ name, resolved: value !== undefined, code: error?.code, errName: error?.name }).toEqual({
        name, resolved: false, code: "ERR_ABORTED", errName: "AbortError",
      });
      expect(error!.message).toMatch(/too late/);
      expect(ms).toBeLessThan(1000);
    }
  });

  test("timeoutMs rejects a long request with an AbortError naming the timeout, soon after it", async () => {
    const start = Date.now();
    const { error, ms } = await outcome(longIG({ timeoutMs: 300 }), start);
    expect(error?.name).toBe("AbortError");
    expect(error?.code).toBe("ERR_ABORTED");
    expect(error?.message).toMatch(/timed out after 300 ms/);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(300 + 2000);
    // AbortSignal.timeout() works as a signal too.
    const viaSignal = await outcome(longIG({ signal: AbortSignal.timeout(100) }));
    expect(viaSignal.error?.code).toBe("ERR_ABORTED");
  });

  test("timeoutMs and a signal that do not fire leave results unchanged", async () => {
    const before = await smallIG();
    const controller = new AbortController();
    const r = await new IntegratedGradients(cnn).attribute(input([2, 1, 8, 8]), { target: 1, nSteps: 32, timeoutMs: 60000, signal: controller.signal });
    expectClose(r, before);
    controller.abort(); // after completion: harmless
    const y = await toy.forward(tensor([[1, 2, 3]]), [], { timeoutMs: 60000 });
    expect(y.shape).toEqual([1, 2]);
    const m = await loadModel(path.join(GOLDEN, "toy.pt"), { timeoutMs: 60000, signal: new AbortController().signal });
    expect(m.signature).toBe("forward(x: Tensor)");
  });

  test("bad signal and timeoutMs values are ERR_BAD_OPTION", async () => {
    const x = tensor([[1, 2, 3]]);
    for (const bad of [{ signal: {} }, { timeoutMs: 0 }, { timeoutMs: -1 }, { timeoutMs: "5" }, { timeoutMs: Infinity }]) {
      const { error } = await outcome(new Saliency(toy).attribute(x, { target: 0, ...(bad as object) }));
      expect({ bad, code: error?.code }).toEqual({ bad, code: "ERR_BAD_OPTION" });
    }
  });

  // Every family's long request, aborted 50 ms in: chunks are sized to take
  // tens of milliseconds, so 2 s is a wide margin even on a loaded machine.
  const families: [string, (signal: AbortSignal) => Promise<unknown>][] = [
    ["IntegratedGradients (chunks from the budget)", (signal) => new IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 0, nSteps: 20000, signal })],
    ["GradientShap", (signal) => new GradientShap(conv).attribute(input([1, 3, 32, 32]), { target: 0, nSamples: 20000, baselines: input([4, 3, 32, 32], 1), signal })],
    ["LayerConductance", (signal) => new LayerConductance(conv, "conv2").attribute(input([1, 3, 32, 32]), { target: 0, nSteps: 20000, signal })],
    ["DeepLiftShap", (signal) => new DeepLiftShap(conv).attribute(input([1, 3, 32, 32]), { target: 0, baselines: tensor(new Float32Array(4000 * 3072).fill(0.1), [4000, 3, 32, 32]), signal })],
    ["FeatureAblation", (signal) => new FeatureAblation(conv).attribute(input([1, 3, 32, 32]), { target: 0, signal })],
    ["Occlusion", (signal) => new Occlusion(conv).attribute(input([16, 3, 32, 32]), { target: 0, slidingWindowShapes: [3, 2, 2], signal })],
    ["FeaturePermutation", (signal) => new FeaturePermutation(conv).attribute(input([4, 3, 32, 32]), { target: 0, signal })],
    ["Lime", (signal) => new Lime(mlp).attribute(input([2, 8]), { target: 0, nSamples: 1000000, signal })],
    ["KernelShap", (signal) => new KernelShap(mlp).attribute(input([2, 8]), { target: 0, nSamples: 400000, signal })],
    ["ShapleyValueSampling", (signal) => new ShapleyValueSampling(mlp).attribute(input([2, 8]), { target: 0, nSamples: 200000, signal })],
  ];
  test("every family stops within 2 s of an abort", async () => {
    const slow: string[] = [];
    for (const [name, start] of families) {
      const controller = new AbortController();
      const started = Date.now();
      let abortedAt = Infinity;
      const job = outcome(start(controller.signal));
      await new Promise((r) => setTimeout(r, 50));
      if (!controller.signal.aborted) {
        abortedAt = Date.now();
        controller.abort();
      }
      const { value, error } = await job;
      const settledAt = Date.now(), latency = settledAt - abortedAt;
      if (value !== undefined)
        slow.push(`${name}: resolved ${settledAt - started} ms after its start, ${settledAt < abortedAt ? "before" : `${latency} ms after`} the abort`);
      else if (error?.code !== "ERR_ABORTED") slow.push(`${name}: rejected with ${error?.code}: ${error?.message}`);
      else if (latency >= 2000) slow.push(`${name}: rejected ${latency} ms after the abort`);
    }
    expect(slow).toEqual([]);
  });

  test("errors carry the caller's stack", async () => {
    async function callerFrameForTheStack() {
      return new Saliency(toy).attribute(empty([0, 3]), { target: 0 });
    }
    const { error } = await outcome(callerFrameForTheStack());
    expect(error).toBeInstanceOf(TorchExplainError);
    expect(error!.stack).toMatch(/callerFrameForTheStack/);
    expect(error!.stack).toMatch(/limits\.test\.ts/);
  });
});

describe("fair scheduling", () => {
  afterAll(() => {
    configure({ workers: 2 });
  });

  test("configure() returns the settings in force (default: 2 workers)", () => {
    const now = configure();
    expect(now.workers).toBe(2);
    expect(now.threads).toBeGreaterThanOrEqual(1);
    expect(() => configure({ workers: 0 })).toThrow(/workers/);
    expect(configure()).toEqual(now);
  });

  // Starts `longs` long IGs (a few seconds each), then a tiny Saliency call
  // once they run; resolves with both durations.
  async function race(longs: number) {
    const start = Date.now();
    const jobs = Array.from({ length: longs }, () =>
      new IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 0, nSteps: 8000, internalBatchSize: 4 }).then(() => Date.now() - start),
    );
    await new Promise((r) => setTimeout(r, 200));
    const tinyStart = Date.now();
    const tiny = await new Saliency(toy).attribute(tensor([[1, 2, 3]]), { target: 0 });
    const tinyMs = Date.now() - tinyStart;
    expectClose(tiny, [0, 3, 6]);
    const longMs = Math.min(...(await Promise.all(jobs)));
    return { tinyMs, longMs };
  }

  test("a tiny call next to a long one is served long before the long one ends", async () => {
    const { tinyMs, longMs } = await race(1);
    expect(longMs).toBeGreaterThan(1000); // the comparison needs a long job
    expect(tinyMs).toBeLessThan(0.25 * longMs);
  });

  test("with every worker busy (two long calls), the tiny call waits about one chunk, not a whole job", async () => {
    const { tinyMs, longMs } = await race(2);
    expect(longMs).toBeGreaterThan(1000);
    expect(tinyMs).toBeLessThan(0.25 * longMs);
  });

  test("with one worker, a long call yields to a tiny one between chunks", async () => {
    expect(configure({ workers: 1 }).workers).toBe(1);
    const { tinyMs, longMs } = await race(1);
    expect(configure({ workers: 2 }).workers).toBe(2);
    expect(longMs).toBeGreaterThan(1000);
    expect(tinyMs).toBeLessThan(0.25 * longMs);
  });

  test("with one worker, aborting a long call is not held up by another long call it yielded to", async () => {
    // A long call yields between its chunks to a queued call; when that one
    // is long too, the first must still stop within a chunk of its abort.
    expect(configure({ workers: 1 }).workers).toBe(1);
    try {
      const controller = new AbortController();
      const first = outcome(longIG({ signal: controller.signal }));
      await new Promise((r) => setTimeout(r, 100));
      // Alone, this one takes several seconds (or stops at its timeoutMs).
      const second = outcome(new IntegratedGradients(conv).attribute(input([1, 3, 32, 32]), { target: 2, nSteps: 20000, internalBatchSize: 4, timeoutMs: 8000 }));
      await new Promise((r) => setTimeout(r, 300));
      const abortedAt = Date.now();
      controller.abort();
      const { error } = await first;
      const latency = Date.now() - abortedAt;
      await second;
      expect(error?.code).toBe("ERR_ABORTED");
      expect(latency).toBeLessThan(2000);
    } finally {
      configure({ workers: 2 });
    }
  }, 60000);
});

describe("dispose()", () => {
  test("a disposed model rejects requests with ERR_DISPOSED; dispose twice is harmless", async () => {
    const m = await loadModel(path.join(GOLDEN, "toy.pt"));
    const x = tensor([[1, 2, 3]]);
    const s = new Saliency(m);
    expect(m.disposed).toBe(false);
    m.dispose();
    m.dispose();
    expect(m.disposed).toBe(true);
    const attr = await outcome(s.attribute(x, { target: 0 }));
    expect(attr.error).toBeInstanceOf(TorchExplainError);
    expect(attr.error!.message).toMatch(/disposed/);
    const fwd = await outcome(m.forward(x));
    expect(fwd.error?.message).toMatch(/disposed/);
    expect({ attribute: attr.error?.code, forward: fwd.error?.code }).toEqual({ attribute: "ERR_DISPOSED", forward: "ERR_DISPOSED" });
  });

  test("a disposed model's getters throw ERR_DISPOSED", async () => {
    const m = await loadModel(path.join(GOLDEN, "toy.pt"));
    m.dispose();
    for (const use of [() => m.layers(), () => m.signature, () => m.device]) {
      let thrown: unknown;
      try {
        use();
      } catch (e) {
        thrown = e;
      }
      expect((thrown as Error)?.message).toMatch(/disposed/);
      expect((thrown as TorchExplainError)?.code).toBe("ERR_DISPOSED");
    }
  });

  test("a request in flight when its model is disposed finishes normally", async () => {
    const m = await loadModel(path.join(GOLDEN, "cnn.pt"));
    const x = input([2, 1, 8, 8]);
    const expected = await smallIG();
    const p = new IntegratedGradients(m).attribute(x, { target: 1, nSteps: 32 });
    m.dispose();
    expectClose(await p, expected);
  });

  test("a disposed tensor throws on use, and is rejected as an input with ERR_DISPOSED", async () => {
    const t = tensor([[1, 2, 3]]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    for (const use of [() => t.data(), () => t.shape, () => t.dtype, () => t.toArray(), () => t.to("cpu")]) {
      let thrown: unknown;
      try {
        use();
      } catch (e) {
        thrown = e;
      }
      expect((thrown as Error)?.message).toMatch(/disposed/);
      expect((thrown as TorchExplainError)?.code).toBe("ERR_DISPOSED");
    }
    const { error } = await outcome(new Saliency(toy).attribute(t, { target: 0 }));
    expect(error?.message).toMatch(/disposed/);
    expect(error?.code).toBe("ERR_DISPOSED");
    const asBaseline = await outcome(new IntegratedGradients(toy).attribute(tensor([[1, 2, 3]]), { target: 0, baselines: t }));
    expect(asBaseline.error?.message).toMatch(/disposed/);
  });

  test("an input disposed while its request runs does not change the result", async () => {
    const x = input([2, 1, 8, 8]);
    const expected = await smallIG();
    const p = new IntegratedGradients(cnn).attribute(x, { target: 1, nSteps: 32 });
    x.dispose();
    expectClose(await p, expected);
  });

  test("synchronous disposed errors are TorchExplainErrors too", () => {
    const t = tensor([1]);
    t.dispose();
    let thrown: unknown;
    try {
      t.data();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(TorchExplainError);
  });

  test("[Symbol.dispose] and `using` free models and tensors (TypeScript's `using`, run in plain Node)", () => {
    // jest's sandbox has no Symbol.dispose, so this runs in a child process.
    const source = `
      const T = require(${JSON.stringify(path.join(ROOT, "dist"))});
      (async () => {
        const out: Record<string, unknown> = {};
        let kept: any, keptInput: any;
        {
          using m = await T.loadModel(${JSON.stringify(path.join(GOLDEN, "toy.pt"))});
          using x = T.tensor([[1, 2, 3]]);
          kept = m; keptInput = x;
          out.inside = Array.from((await new T.Saliency(m).attribute(x, { target: 0 })).data());
          out.disposedInside = [m.disposed, x.disposed];
        }
        out.disposedAfter = [kept.disposed, keptInput.disposed];
        const m2 = await T.loadModel(${JSON.stringify(path.join(GOLDEN, "toy.pt"))});
        m2[Symbol.dispose]();
        out.symbolDispose = m2.disposed;
        try { await new T.Saliency(kept).attribute(T.tensor([[1, 2, 3]]), { target: 0 }); out.after = "resolved"; }
        catch (e: any) { out.after = /disposed/.test(e.message) ? "rejected: disposed" : e.message; }
        console.log(JSON.stringify(out));
      })();`;
    const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS } }).outputText;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tx-using-"));
    try {
      fs.writeFileSync(path.join(dir, "using.js"), js);
      const r = spawnSync(process.execPath, [path.join(dir, "using.js")], { encoding: "utf8", timeout: 60000 });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: "" });
      const out = JSON.parse(r.stdout);
      expectClose(out.inside, [0, 3, 6]);
      expect(out).toMatchObject({ disposedInside: [false, false], disposedAfter: [true, true], symbolDispose: true, after: "rejected: disposed" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("empty batches", () => {
  const img0 = () => empty([0, 1, 8, 8]);
  const x0 = () => empty([0, 8]);
  const refs = () => input([2, 1, 8, 8]);
  const cases: [string, () => Promise<unknown>][] = [
    ["Saliency", () => new Saliency(cnn).attribute(img0(), { target: 0 })],
    ["InputXGradient", () => new InputXGradient(cnn).attribute(img0(), { target: 0 })],
    ["IntegratedGradients", () => new IntegratedGradients(cnn).attribute(img0(), { target: 0 })],
    ["GradientShap", () => new GradientShap(cnn).attribute(img0(), { target: 0, baselines: refs() })],
    ["NoiseTunnel", () => new NoiseTunnel(new Saliency(cnn)).attribute(img0(), { target: 0, nSamples: 3 })],
    ["DeepLift", () => new DeepLift(cnn).attribute(img0(), { target: 0 })],
    ["DeepLiftShap (zero reference rows too)", () => new DeepLiftShap(cnn).attribute(img0(), { target: 0, baselines: empty([0, 1, 8, 8]) })],
    ["GuidedBackprop", () => new GuidedBackprop(cnn).attribute(img0(), { target: 0 })],
    ["LRP", () => new LRP(cnn).attribute(img0(), { target: 0 })],
    ["FeatureAblation", () => new FeatureAblation(mlp).attribute(x0(), { target: 0 })],
    ["Occlusion (strides 0)", () => new Occlusion(cnn).attribute(img0(), { target: 0, slidingWindowShapes: [1, 2, 2], strides: 0 })],
    ["Lime", () => new Lime(mlp).attribute(x0(), { target: 0, nSamples: 5 })],
    ["KernelShap", () => new KernelShap(mlp).attribute(x0(), { target: 0, nSamples: 5 })],
    ["ShapleyValueSampling", () => new ShapleyValueSampling(mlp).attribute(x0(), { target: 0, nSamples: 2 })],
    ["LayerGradCam", () => new LayerGradCam(cnn, "conv2").attribute(img0(), { target: 0 })],
    ["LayerIntegratedGradients", () => new LayerIntegratedGradients(cnn, "conv2").attribute(img0(), { target: 0 })],
    ["NeuronGradient", () => new NeuronGradient(cnn, "conv2").attribute(img0(), { neuronSelector: [1, 2, 3] })],
    ["NeuronGradient (function selector)", () => new NeuronGradient(cnn, "conv2").attribute(img0(), { neuronSelector: () => [0, 0, 0] })],
    ["model.forward", () => cnn.forward(img0())],
  ];
  test.each(cases)("%s rejects an empty batch", async (_name, call) => {
    const { value, error } = await outcome(call());
    expect(value).toBeUndefined();
    expect(error).toBeInstanceOf(TorchExplainError);
    expect(error!.message).toMatch(/batch is empty/);
    expect(error!.code).toBe("ERR_BAD_SHAPE");
  });
  test("an empty reference distribution (zero rows) is rejected for a non-empty batch", async () => {
    const x = input([2, 1, 8, 8]);
    for (const call of [
      () => new DeepLiftShap(cnn).attribute(x, { target: 0, baselines: empty([0, 1, 8, 8]) }),
      () => new GradientShap(cnn).attribute(x, { target: 0, baselines: empty([0, 1, 8, 8]) }),
    ]) {
      const { error } = await outcome(call());
      expect(error?.code).toBe("ERR_BAD_SHAPE");
      expect(error?.message).toMatch(/baselines\[0\]: the baseline distribution is empty/);
    }
  });
});

describe("non-finite values", () => {
  const clean = () => tensor([[1, 2, 3], [4, 5, 6]]);
  const withNaN = () => tensor([[1, NaN, 3], [4, 5, 6]]);

  test("NaN or Inf in an input is rejected naming the input", async () => {
    for (const [name, call] of [
      ["Saliency NaN", () => new Saliency(toy).attribute(withNaN(), { target: 0 })],
      ["IG +Inf", () => new IntegratedGradients(toy).attribute(tensor([[1, Infinity, 3]]), { target: 0 })],
      ["FeatureAblation -Inf", () => new FeatureAblation(toy).attribute(tensor([[1, -Infinity, 3]]), { target: 0 })],
      ["forward NaN", () => toy.forward(withNaN())],
    ] as [string, () => Promise<unknown>][]) {
      const { error } = await outcome(call());
      expect({ name, code: error?.code, message: error?.message }).toEqual({ name, code: "ERR_BAD_OPTION", message: expect.stringMatching(/^inputs\[0\]: .*(NaN|infinite|not finite)/) });
    }
    // The second input of a two-input model is named as such.
    const { error } = await outcome(new Saliency(multi).attribute([input([1, 4]), tensor([[1, NaN, 3]])], { target: 0, additionalForwardArgs: [1] }));
    expect(error?.message).toMatch(/^inputs\[1\]: /);
  });

  test("NaN or Inf in a baseline is rejected naming the baseline", async () => {
    for (const [name, call] of [
      ["IG tensor", () => new IntegratedGradients(toy).attribute(clean(), { target: 0, baselines: withNaN() })],
      ["IG number", () => new IntegratedGradients(toy).attribute(clean(), { target: 0, baselines: NaN })],
      ["DeepLift", () => new DeepLift(toy).attribute(clean(), { target: 0, baselines: tensor([[Infinity, 0, 0]]) })],
      ["GradientShap", () => new GradientShap(toy).attribute(clean(), { target: 0, baselines: withNaN() })],
      ["FeatureAblation", () => new FeatureAblation(toy).attribute(clean(), { target: 0, baselines: -Infinity })],
    ] as [string, () => Promise<unknown>][]) {
      const { error } = await outcome(call());
      expect({ name, code: error?.code, message: error?.message }).toEqual({ name, code: "ERR_BAD_OPTION", message: expect.stringMatching(/^baselines\[0\]: /) });
    }
    const { error } = await outcome(
      new IntegratedGradients(multi).attribute([input([1, 4]), input([1, 3])], { target: 0, additionalForwardArgs: [1], baselines: [0, NaN] }),
    );
    expect(error?.message).toMatch(/^baselines\[1\]: /);
  });

  test("allowNonFinite: true computes, and the finite examples get their usual attributions", async () => {
    const sal = await new Saliency(toy).attribute(withNaN(), { target: 0, allowNonFinite: true });
    const row1 = await new Saliency(toy).attribute(tensor([[4, 5, 6]]), { target: 0 });
    expect(sal.shape).toEqual([2, 3]);
    expectClose(values(sal).slice(3), row1);
    const ig = await new IntegratedGradients(toy).attribute(clean(), { target: 0, baselines: withNaN(), allowNonFinite: true });
    const igRow1 = await new IntegratedGradients(toy).attribute(tensor([[4, 5, 6]]), { target: 0, baselines: tensor([[4, 5, 6]]) });
    expectClose(values(ig).slice(3), igRow1);
    const y = await toy.forward(withNaN(), [], { allowNonFinite: true });
    expect(y.shape).toEqual([2, 2]);
  });
});

describe("models whose output does not depend on the input", () => {
  let detached: Model;
  beforeAll(async () => {
    detached = await loadModel(path.join(FIXTURES, "detached_model.pt"));
  });
  test("gradient methods reject a detached output instead of returning zeros", async () => {
    const x = tensor([[1, 2, 3], [0.5, -1, 2]]);
    for (const [name, call] of [
      ["Saliency", () => new Saliency(detached).attribute(x, { target: 0 })],
      ["IntegratedGradients", () => new IntegratedGradients(detached).attribute(x, { target: 1 })],
      ["GradientShap", () => new GradientShap(detached).attribute(x, { target: 0, baselines: tensor([[0, 0, 0]]) })],
      ["NoiseTunnel", () => new NoiseTunnel(new Saliency(detached)).attribute(x, { target: 0, nSamples: 2 })],
    ] as [string, () => Promise<unknown>][]) {
      const { value, error } = await outcome(call());
      expect({ name, resolved: value !== undefined, code: error?.code }).toEqual({ name, resolved: false, code: "ERR_BAD_TARGET" });
      expect(error!.message).toMatch(/does not depend/);
    }
  });
  test("forward() and perturbation methods still work on it", async () => {
    const x = tensor([[1, 2, 3]]);
    expect((await detached.forward(x)).shape).toEqual([1, 2]);
    expect((await new FeatureAblation(detached).attribute(x, { target: 0 })).shape).toEqual([1, 3]);
  });
});

describe("devices and paths", () => {
  test("a CPU index other than 0 is rejected everywhere a device is named", async () => {
    const load = await outcome(loadModel(path.join(GOLDEN, "toy.pt"), { device: "cpu:5" }));
    expect(load.error?.code).toBe("ERR_BAD_OPTION");
    expect(load.error?.message).toMatch(/device: 'cpu:5'/);
    const ig = await outcome(new IntegratedGradients(toy).attribute(tensor([[1, 2, 3]]), { target: 0, devices: ["cpu:5"] }));
    expect(ig.error?.message).toMatch(/cpu:5/);
    expect(() => tensor([1]).to("cpu:5")).toThrow(/cpu:5/);
    for (const bad of ["", "cpu:-1", "cpu:x", "tpu"]) {
      const r = await outcome(loadModel(path.join(GOLDEN, "toy.pt"), { device: bad }));
      expect({ bad, code: r.error?.code }).toEqual({ bad, code: "ERR_BAD_OPTION" });
    }
    expect((await loadModel(path.join(GOLDEN, "toy.pt"), { device: "cpu:0" })).signature).toBe("forward(x: Tensor)");
  });

  test("a path with a NUL character is rejected", async () => {
    const { error } = await outcome(loadModel(path.join(GOLDEN, "toy.pt") + "\0.txt"));
    expect(error?.code).toBe("ERR_BAD_OPTION");
    expect(error?.message).toMatch(/NUL/);
  });

  test("a FIFO is rejected at once instead of blocking", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tx-fifo-"));
    try {
      const fifo = path.join(dir, "model.pt");
      expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
      const { error, ms } = await outcome(loadModel(fifo, { timeoutMs: 10000 }));
      expect(error?.message).toMatch(/not a regular file/);
      expect(error?.code).toBe("ERR_BAD_OPTION");
      expect(ms).toBeLessThan(5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a TorchScript file whose tensor storage is truncated is rejected at load (ERR_MODEL_LOAD)", async () => {
    // toy.pt with its largest data record emptied (scripts/make_models.py: truncated_copy).
    const { value, error } = await outcome(loadModel(path.join(FIXTURES, "truncated_storage.pt")));
    expect(value).toBeUndefined();
    expect(error?.code).toBe("ERR_MODEL_LOAD");
  });
});

describe("memoryBudget", () => {
  const img = () => input([2, 1, 8, 8]);
  test("a budget too small for one row rejects with ERR_MEMORY_BUDGET and the estimate in MiB", async () => {
    const cases: [string, () => Promise<unknown>][] = [
      ["IntegratedGradients", () => new IntegratedGradients(cnn).attribute(img(), { target: 0, nSteps: 50, memoryBudget: 1000 })],
      ["GradientShap", () => new GradientShap(cnn).attribute(img(), { target: 0, nSamples: 20, baselines: img(), memoryBudget: 1000 })],
      ["NoiseTunnel(IntegratedGradients)", () => new NoiseTunnel(new IntegratedGradients(cnn)).attribute(img(), { target: 0, nSamples: 20, memoryBudget: 1000 })],
      ["NoiseTunnel(Saliency)", () => new NoiseTunnel(new Saliency(cnn)).attribute(img(), { target: 0, nSamples: 200, memoryBudget: 1000 })],
      ["DeepLiftShap", () => new DeepLiftShap(cnn).attribute(img(), { target: 0, baselines: input([20, 1, 8, 8], 1), memoryBudget: 1000 })],
      ["LayerIntegratedGradients", () => new LayerIntegratedGradients(cnn, "conv2").attribute(img(), { target: 0, memoryBudget: 1000 })],
      ["NeuronIntegratedGradients", () => new NeuronIntegratedGradients(cnn, "conv2").attribute(img(), { neuronSelector: [1, 2, 3], memoryBudget: 1000 })],
    ];
    const wrong: string[] = [];
    for (const [name, call] of cases) {
      const { value, error } = await outcome(call());
      if (value !== undefined) wrong.push(`${name}: resolved within a 1000-byte budget`);
      else if (error?.code !== "ERR_MEMORY_BUDGET" || !/MiB/.test(error.message)) wrong.push(`${name}: ${error?.code}: ${error?.message}`);
    }
    expect(wrong).toEqual([]);
  });

  test("bad memoryBudget values are ERR_BAD_OPTION", async () => {
    for (const bad of [0, -5, NaN, "64MB"]) {
      const { error } = await outcome(new IntegratedGradients(cnn).attribute(img(), { target: 0, memoryBudget: bad as number }));
      expect({ bad, code: error?.code }).toEqual({ bad, code: "ERR_BAD_OPTION" });
    }
  });

  test("chunks chosen from the budget give the result of an explicit internalBatchSize", async () => {
    // 2 examples x 300 steps = 600 rows of about 0.02 MiB each (measured by the
    // probe on this net): a 0.25 MiB budget makes chunks of at most ~12 rows.
    const x = input([2, 1, 8, 8], 3);
    const opts = { target: [1, 2], nSteps: 300 };
    const explicit = await new IntegratedGradients(cnn).attribute(x, { ...opts, internalBatchSize: 7 });
    const whole = await new IntegratedGradients(cnn).attribute(x, { ...opts, internalBatchSize: 600 });
    const auto = await new IntegratedGradients(cnn).attribute(x, { ...opts, memoryBudget: 0.25 * 2 ** 20 });
    const autoLarge = await new IntegratedGradients(cnn).attribute(x, opts);
    expectClose(auto, explicit, { rtol: 1e-4 });
    expectClose(auto, whole, { rtol: 1e-4 });
    expectClose(autoLarge, explicit, { rtol: 1e-4 });
    const lig = (o: object) => new LayerIntegratedGradients(cnn, "conv1").attribute(x, { ...opts, nSteps: 100, ...o });
    expectClose(await lig({ memoryBudget: 0.25 * 2 ** 20 }), await lig({ internalBatchSize: 9 }), { rtol: 1e-4 });
  });

  function child(mode: string, env: Record<string, string>) {
    const r = spawnSync(process.execPath, [path.join(__dirname, "limits", "budget_child.js"), mode], {
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: 60000,
    });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: "" });
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  }

  test("TORCHEXPLAIN_MEMORY_BUDGET sets the default; the option overrides it", () => {
    const out = child("env-default", { TORCHEXPLAIN_MEMORY_BUDGET: "1000" });
    expect(out.withoutOption.code).toBe("ERR_MEMORY_BUDGET");
    expect(out.withoutOption.message).toMatch(/MiB/);
    expect(out.withOption).toEqual({ code: "resolved", shape: [2, 1, 8, 8] });
  });

  // Peak RSS while IG with 100000 steps runs with chunks sized from a 64 MiB
  // budget, until timeoutMs stops it: at most the RSS after loading and a
  // warm-up, plus the budget, plus SLACK for what the budget does not cover
  // (allocator arenas and caches of the compute threads, thread stacks,
  // LibTorch's per-thread state, the probe passes). Measured on this 2-core
  // machine: 5-35 MiB above the base, so 200 MiB is a wide margin.
  const SLACK_MIB = 200;
  test.each([
    ["TORCHEXPLAIN_MEMORY_BUDGET", { TORCHEXPLAIN_MEMORY_BUDGET: String(64 * 2 ** 20) }],
    ["the memoryBudget option", { BUDGET_MIB: "64" }],
  ])("a 64 MiB budget set by %s bounds the peak RSS of a 100000-step IG", (_how, env) => {
    const r = child("rss", { ...env, TIMEOUT_MS: "4000" });
    expect(r.code).toBe("ERR_ABORTED");
    expect(r.elapsedMs).toBeLessThan(4000 + 3000);
    const growth = r.hwmMiB - r.baseMiB;
    if (growth >= 64 + SLACK_MIB)
      throw new Error(`peak RSS ${r.hwmMiB.toFixed(0)} MiB is ${growth.toFixed(0)} MiB above the ${r.baseMiB.toFixed(0)} MiB after load; bound: 64 MiB budget + ${SLACK_MIB} MiB slack`);
  });
});

describe("resource exhaustion", () => {
  test("50 devices under a 3 GB address-space limit: a clean rejection naming devices, and the process stays usable", () => {
    const child = path.join(__dirname, "limits", "devices_exhaustion_child.js");
    const r = spawnSync("bash", ["-c", `ulimit -v 3000000 && exec "${process.execPath}" "${child}"`], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
    expect({ status: r.status, signal: r.signal, error: r.status === 0 ? "" : r.stderr.slice(-2000) }).toEqual({ status: 0, signal: null, error: "" });
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
    expect(out.after).toEqual([64, 8]);
    // 50 threads with 256 MiB stacks need 12.5 GB of address space: they cannot all start.
    expect(out.first.message).toMatch(/^devices: could not start the worker for device \d+ of 50 .*use fewer devices/);
  }, 150_000);
});
