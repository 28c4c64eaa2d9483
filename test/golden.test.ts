// Every reference case in fixtures/golden (Captum 0.7 results). A case whose
// algorithm torchexplain does not export yet is skipped by name.
import * as path from "path";
import * as torchexplain from "../lib";
import { loadModel, Tensor } from "../lib";
import { GOLDEN, GoldenTensor, fromGolden, mismatch, readJson, reviveOptions } from "./helpers";

interface GoldenCase {
  id: string;
  model: string;
  algorithm: string;
  init: Record<string, unknown>;
  inputs: GoldenTensor[];
  inputsAsArray: boolean;
  options: Record<string, unknown>;
  expected: { attributions?: GoldenTensor[]; delta?: GoldenTensor; perturbed?: GoldenTensor[] };
  rtol: number;
}

const index = readJson<{ cases: string[] }>(path.join(GOLDEN, "index.json"));
// scripts/gpu-check runs the cases on another device (the CUDA build on "cuda").
const device = process.env.TORCHEXPLAIN_TEST_DEVICE ?? "cpu";
const exported = torchexplain as unknown as Record<string, unknown>;

describe("golden cases (Captum 0.7 reference)", () => {
  for (const id of index.cases) {
    const c = readJson<GoldenCase>(path.join(GOLDEN, `${id}.json`));
    const Algorithm = exported[c.algorithm] as
      | (new (...args: unknown[]) => { attribute?(...a: unknown[]): Promise<unknown>; perturb?(...a: unknown[]): Promise<unknown> })
      | undefined;
    const run = Algorithm ? test : test.skip;
    run(`${id} (${c.algorithm})`, async () => {
      const model = await loadModel(path.join(GOLDEN, c.model), { device });
      const { layer, ...init } = reviveOptions(c.init) as Record<string, unknown>;
      const algorithm = layer === undefined ? new Algorithm!(model, init) : new Algorithm!(model, layer, init);
      const inputs = c.inputs.map(fromGolden);
      const options = reviveOptions(c.options);
      // Attacks (FGSM, PGD) perturb() their inputs; attribution methods attribute() them.
      const perturbs = c.expected.perturbed !== undefined;
      const call = perturbs ? algorithm.perturb! : algorithm.attribute!;
      const result = await call.call(algorithm, c.inputsAsArray ? inputs : inputs[0], options);
      const withDelta = c.expected.delta !== undefined;
      const attributions = withDelta ? (result as { attributions: unknown }).attributions : result;
      const list = (Array.isArray(attributions) ? attributions : [attributions]) as Tensor[];
      expect(Array.isArray(attributions)).toBe(c.inputsAsArray);
      const expected = perturbs ? c.expected.perturbed! : c.expected.attributions!;
      expect(list).toHaveLength(expected.length);
      list.forEach((t, i) => expect(mismatch(t, expected[i], c.rtol)).toBeNull());
      if (withDelta) expect(mismatch((result as { delta: Tensor }).delta, c.expected.delta!, c.rtol)).toBeNull();
    });
  }
});
