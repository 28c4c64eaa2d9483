// The model-parameter randomisation sanity check.
import * as path from "path";
import { IntegratedGradients, Saliency, loadModel, parameterRandomization, tensor, Model } from "../lib";
import { GOLDEN, values } from "./helpers";
import { spearman } from "../lib/metrics/randomization";

let cnn: Model;
const x = tensor(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i * 0.7)), [2, 1, 8, 8]);
beforeAll(async () => {
  cnn = await loadModel(path.join(GOLDEN, "cnn.pt"));
});

test("randomised copies leave the model alone and change its outputs", async () => {
  const before = values(await cnn.forward(x));
  const copy = cnn.randomized(cnn.layers());
  const changed = values(await copy.forward(x));
  expect(values(await cnn.forward(x))).toEqual(before);
  expect(changed.some((v, i) => Math.abs(v - before[i]) > 1e-3)).toBe(true);
  expect(() => cnn.randomized(["nope"])).toThrow(/no layer 'nope'/);
});

test("gradients decorrelate as the cascade goes down; the result has one row per layer", async () => {
  const r = await parameterRandomization(cnn, (m) => new Saliency(m), x, { attributeOptions: { target: 1 } });
  expect(r.rankCorrelation.shape).toEqual([r.layers.length, 2]);
  // Only layers with parameters: a ReLU's step would repeat the row before it.
  expect(r.layers).toEqual(["fc", "conv2", "conv1"]);
  expect(cnn.layers({ withParameters: true })).toEqual(["conv1", "conv2", "fc"]);
  const c = values(r.rankCorrelation);
  const last = c.slice(-2);
  last.forEach((v) => expect(v).toBeLessThan(0.9));
  // An empty cascade is rejected.
  const same = await parameterRandomization(cnn, (m) => new IntegratedGradients(m), x, { layers: [], attributeOptions: { target: 1 } }).catch((e) => e);
  expect(String(same)).toMatch(/at least one layer/);
});

test("spearman: ±1 for monotone relations, ties share ranks", () => {
  expect(spearman(Float64Array.from([1, 2, 3, 4]), Float64Array.from([10, 20, 30, 45]))).toBeCloseTo(1, 12);
  expect(spearman(Float64Array.from([1, 2, 3, 4]), Float64Array.from([4, 3, 2, 1]))).toBeCloseTo(-1, 12);
  // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
  expect(spearman(Float64Array.from([1, 2, 2, 3]), Float64Array.from([1, 3, 2, 4]))).toBeCloseTo(0.9486832980505138, 10);
});
