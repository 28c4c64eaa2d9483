// TCAV on a model built for it (test/fixtures/models/concept_net.pt): the
// layer `hidden` is the identity and output 0 rises along its first feature,
// output 1 falls along it. A concept displaced along +e0 then raises class 0.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Concept, TCAV, loadModel, tensor, Model, Tensor, manualSeed } from "../lib";
import { values } from "./helpers";
import { welch } from "../lib/concept/tcav";

let model: Model;
// Deterministic pseudo-random examples around `center`.
const cloud = (n: number, center: number[], seed: number) =>
  tensor(Float32Array.from({ length: n * 4 }, (_, i) => center[i % 4] + 0.3 * Math.sin((i + 1) * (seed + 1.37) * 12.9898)), [n, 4]);
const inputs = cloud(12, [0, 0, 0, 0], 99);

beforeAll(async () => {
  manualSeed(0);
  model = await loadModel(path.join(__dirname, "fixtures", "models", "concept_net.pt"));
});

describe("TCAV", () => {
  const up = () => new Concept(0, "up", cloud(40, [2, 0, 0, 0], 1));
  const random = (id: number) => new Concept(id, `random${id}`, cloud(40, [0, 0, 0, 0], id));

  test("scores ~1 for a concept along directions that raise the target and ~0 for the opposite", async () => {
    const tcav = new TCAV(model, ["hidden"]);
    for (const [target, expected] of [[0, 1], [1, 0]] as const) {
      const scores = await tcav.attribute(inputs, [[up(), random(1)]], { target });
      const s = scores["0-1"]["hidden"];
      expect(values(s.signCount)[0]).toBeCloseTo(expected, 5);
      expect(values(s.signCount)[1]).toBeCloseTo(1 - expected, 5);
      // magnitude: the mean directional derivative, opposite for the two concepts
      const m = values(s.magnitude);
      expect(Math.sign(m[0])).toBe(expected ? 1 : -1);
      expect(m[0] + m[1]).toBeCloseTo(0, 4);
    }
  });

  test("logistic CAVs agree, and the CAV is held-out accurate", async () => {
    const tcav = new TCAV(model, ["hidden"], { classifier: "logistic" });
    const scores = await tcav.attribute(inputs, [[up(), random(1)]], { target: 0 });
    expect(values(scores["0-1"]["hidden"].signCount)).toEqual([1, 0]);
    const cav = await tcav.computeCAV([up(), random(1)], "hidden");
    expect(cav.accuracy).toBeGreaterThan(0.9);
    // One direction per class in id order: towards "up" (+e0) for class 0, away for class 1.
    expect(cav.classes).toEqual([0, 1]);
    expect(cav.vectors[0][0]).toBeGreaterThan(0);
    expect(cav.vectors[1][0]).toBeLessThan(0);
  });

  test("CAVs are saved under savePath and reloaded without touching the concepts' data", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcav-"));
    try {
      const first = await new TCAV(model, ["hidden", "out"], { savePath: dir }).attribute(inputs, [[up(), random(1)]], { target: 0 });
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".json"))).toHaveLength(2);
      // Same ids, data that throws when read: only the cache can answer.
      const poisoned = (id: number) =>
        new Concept(id, "poisoned", {
          [Symbol.iterator]: () => {
            throw new Error("concept data was read");
          },
        } as Iterable<Tensor>);
      const again = await new TCAV(model, ["hidden", "out"], { savePath: dir }).attribute(inputs, [[poisoned(0), poisoned(1)]], { target: 0 });
      for (const layer of ["hidden", "out"]) expect(values(again["0-1"][layer].magnitude)).toEqual(values(first["0-1"][layer].magnitude));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("significance: the concept against random ones, with a two-sided t-test", async () => {
    const tcav = new TCAV(model, ["hidden"]);
    const randoms = [1, 2, 3, 4, 5].map(random);
    const r = await tcav.significance(inputs, up(), randoms, { target: 0 });
    expect(r.hidden.scores).toEqual([1, 1, 1, 1, 1]);
    expect(r.hidden.nullScores).toHaveLength(4);
    expect(r.hidden.pValue).toBeGreaterThanOrEqual(0);
    expect(r.hidden.pValue).toBeLessThanOrEqual(1);
    expect(r.hidden).toMatchObject(welch(r.hidden.scores, r.hidden.nullScores));
  });

  test("the t-test matches scipy.stats.ttest_ind(equal_var=False)", () => {
    // Reference values from SciPy 1.10.
    for (const [a, b, t, p] of [
      [[1, 1, 1, 1, 1], [0, 1, 0, 1], 1.7320508075688774, 0.18169011381620923],
      [[0.9, 0.8, 1.0, 0.95, 0.85], [0.5, 0.3, 0.6, 0.4], 6.114295984380819, 0.002031304858725334],
      [[1, 2, 3, 4, 5], [2, 4, 6, 8, 10, 12], -2.3763541031440183, 0.04928433820673049],
    ] as [number[], number[], number, number][]) {
      const r = welch(a, b);
      expect(r.t).toBeCloseTo(t, 9);
      expect(r.pValue).toBeCloseTo(p, 9);
    }
    // Two constant samples: no t (not t = infinity, p = 0), and it says why.
    const flat = welch([1, 1, 1], [0, 0, 0]);
    expect([flat.t, flat.pValue]).toEqual([NaN, NaN]);
    expect(flat.note).toMatch(/undefined: both samples have zero variance/);
  });

  test("bad input is a rejected Promise naming the argument", async () => {
    expect(() => new TCAV(model, ["nope"])).toThrow(/no layer 'nope'/);
    const empty = new Concept(7, "empty", [] as Tensor[]);
    await expect(new TCAV(model, ["hidden"]).attribute(inputs, [[up(), empty]], { target: 0 })).rejects.toThrow(/no examples/);
    await expect(new TCAV(model, ["hidden"]).attribute(inputs, [[up()]], { target: 0 })).rejects.toThrow(/at least two/);
    expect(() => new Concept(-1, "x", inputs)).toThrow(/id/);
  });
});
