// Concurrent requests share passes (lib/coalesce.ts): results equal the
// one-at-a-time results for each family, a lone request goes straight to the
// native core, one caller's cancellation or bad input leaves the others' results.
import * as path from "path";
import {
  configure, DeepLift, GradientShap, GuidedBackprop, IntegratedGradients, LayerGradCam, LayerIntegratedGradients, loadModel, LRP, Model, Occlusion,
  Saliency, Tensor, tensor,
} from "../lib";
import { native } from "../lib/native";

const root = path.join(__dirname, "..");
let conv: Model, text: Model;
const calls: number[] = [];
const originalRun = native.run;
beforeAll(async () => {
  conv = await loadModel(path.join(root, "models", "bench_convnet.pt"));
  text = await loadModel(path.join(root, "test", "fixtures", "golden", "text.pt"));
  // Counts native requests (and their batch sizes).
  native.run = ((...args: Parameters<typeof originalRun>) => {
    calls.push(args[2][0].shape[0]);
    return originalRun(...args);
  }) as typeof originalRun;
});
afterAll(() => {
  native.run = originalRun;
  conv.dispose();
  text.dispose();
});

const image = (i: number) => tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, j) => Math.sin(j * 0.37 + i)), [1, 3, 32, 32]);
const tokens = (i: number) => tensor(BigInt64Array.from({ length: 7 }, (_, j) => BigInt((j * 3 + i) % 20)), [1, 7], "int64");
const values = (t: Tensor) => Array.from(t.data() as Float32Array);

function expectClose(a: number[], b: number[], what: string) {
  expect(a.length).toBe(b.length);
  const scale = Math.max(1e-12, ...b.map(Math.abs));
  a.forEach((v, i) => {
    if (!(Math.abs(v - b[i]) <= 1e-5 * scale + 1e-5 * Math.abs(b[i]))) throw new Error(`${what}[${i}]: ${v} stacked, ${b[i]} alone`);
  });
}

// Options vary by method: the calls go through this loosely typed view.
type Explainer = { attribute(x: Tensor, o: object): Promise<unknown> };
const loose = (a: unknown) => a as Explainer;
type Case = [string, () => Explainer, (i: number) => Tensor, (i: number) => object];
const cases: Case[] = [
  ["Saliency", () => loose(new Saliency(conv)), image, (i) => ({ target: i % 10 })],
  ["IntegratedGradients", () => loose(new IntegratedGradients(conv)), image, (i) => ({ target: i % 10, nSteps: 16, returnConvergenceDelta: true })],
  ["DeepLift", () => loose(new DeepLift(conv)), image, (i) => ({ target: [i % 10] })],
  ["GuidedBackprop", () => loose(new GuidedBackprop(conv)), image, (i) => ({ target: tensor([i % 10], [1], "int64") })],
  ["LRP", () => loose(new LRP(conv)), image, (i) => ({ target: i % 10 })],
  ["LayerGradCam", () => loose(new LayerGradCam(conv, "conv2")), image, (i) => ({ target: i % 10 })],
  ["Occlusion", () => loose(new Occlusion(conv)), image, (i) => ({ target: i % 10, slidingWindowShapes: [3, 8, 8], strides: [3, 8, 8] })],
  ["LayerIntegratedGradients (tokens)", () => loose(new LayerIntegratedGradients(text, "embedding")), tokens, (i) => ({ target: i % 2, nSteps: 8 })],
];

describe("concurrent calls of one kind share passes; each gets its one-at-a-time result", () => {
  for (const [name, make, input, options] of cases)
    test(name, async () => {
      const a = make();
      const n = 8;
      const alone: unknown[] = [];
      for (let i = 0; i < n; i++) alone.push(await a.attribute(input(i), options(i)));
      calls.length = 0;
      const together = await Promise.all(Array.from({ length: n }, (_, i) => a.attribute(input(i), options(i))));
      // The first calls run at once, alone, one per request worker; the others wait and then run as one call.
      const workers = configure().workers;
      expect(calls).toEqual([...new Array(workers).fill(1), n - workers]);
      together.forEach((r, i) => {
        const mine = r as Tensor | { attributions: Tensor; delta: Tensor };
        const ref = alone[i] as typeof mine;
        if (mine instanceof Tensor) {
          expect(mine.shape).toEqual((ref as Tensor).shape);
          expectClose(values(mine), values(ref as Tensor), `call ${i}`);
        } else {
          const o = ref as { attributions: Tensor; delta: Tensor };
          expectClose(values(mine.attributions), values(o.attributions), `call ${i}`);
          // A delta is F(x) - F(baseline) - sum(attributions): float32 rounding of outputs of order 1.
          values(mine.delta).forEach((d, k) => expect(Math.abs(d - values(o.delta)[k])).toBeLessThan(1e-5));
        }
      });
    });
});

test("a lone call reaches the native core at once; methods with random draws, or options that differ, are not stacked", async () => {
  calls.length = 0;
  const p = new Saliency(conv).attribute(image(0), { target: 1 });
  expect(calls).toEqual([1]); // before any await
  await p;
  calls.length = 0;
  const refs = tensor(new Float32Array(2 * 3 * 32 * 32), [2, 3, 32, 32]);
  await Promise.all([0, 1, 2].map((i) => new GradientShap(conv).attribute(image(i), { target: 1, baselines: refs, nSamples: 2 })));
  expect(calls).toEqual([1, 1, 1]);
  calls.length = 0;
  await Promise.all([4, 8, 16].map((nSteps) => new IntegratedGradients(conv).attribute(image(0), { target: 1, nSteps })));
  expect(calls).toEqual([1, 1, 1]);
});

test("one caller's cancellation, timeout or bad target leaves the others their results", async () => {
  const sal = new Saliency(conv);
  const alone = values(await sal.attribute(image(3), { target: 3 }));
  const ac = new AbortController();
  const outcome = (p: Promise<unknown>) => p.then((r) => r, (e) => e.code);
  // The first calls take the request workers; the rest wait, stacked.
  const first = Promise.all(new Array(configure().workers).fill(0).map(() => outcome(sal.attribute(image(0), { target: 0 }))));
  const cancelled = outcome(sal.attribute(image(1), { target: 1, signal: ac.signal }));
  const timedOut = outcome(sal.attribute(image(2), { target: 2, timeoutMs: 1 }));
  const kept = outcome(sal.attribute(image(3), { target: 3 }));
  const bad = outcome(sal.attribute(image(4), { target: 99 }));
  ac.abort();
  expect(await cancelled).toBe("ERR_ABORTED");
  expect(await bad).toBe("ERR_BAD_TARGET");
  expectClose(values((await kept) as Tensor), alone, "kept");
  for (const r of await first) expect(r).toBeInstanceOf(Tensor);
  // It waited behind the first calls: 1 ms passed before its turn.
  expect(await timedOut).toBe("ERR_ABORTED");
});
