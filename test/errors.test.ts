// Bad input is a rejected Promise (or a thrown Error for synchronous calls)
// whose message names the argument and what was expected; the process lives on.
import * as path from "path";
import { GradientShap, IntegratedGradients, loadModel, Model, NeuronConductance, NoiseTunnel, Saliency, tensor, Tensor, TorchExplainError } from "../lib";
import { GOLDEN } from "./helpers";

let toy: Model, multi: Model;
let x: Tensor;
beforeAll(async () => {
  toy = await loadModel(path.join(GOLDEN, "toy.pt"));
  multi = await loadModel(path.join(GOLDEN, "multi.pt"));
  x = tensor([[0.2, 0.4, 0.6], [0.1, 0.9, 0.3]]);
});

describe("loading", () => {
  test("missing file", async () => {
    await expect(loadModel(path.join(GOLDEN, "nope.pt"))).rejects.toThrow(/path: no such file '.*nope\.pt'/);
  });
  test("a file that is not TorchScript", async () => {
    await expect(loadModel(path.join(GOLDEN, "index.json"))).rejects.toThrow(/path: '.*index\.json' is not a TorchScript model/);
  });
  test("a directory", async () => {
    await expect(loadModel(GOLDEN)).rejects.toThrow(/is a directory/);
  });
  test("code nested deeper than the compiler can recurse", async () => {
    // Compiling these would overflow the thread's stack: rejected before compiling.
    for (const f of ["deep_brackets.pt", "deep_unary.pt"]) {
      const err = await loadModel(path.join(__dirname, "fixtures", "models", f)).catch((e) => e);
      expect(err.code).toBe("ERR_MODEL_LOAD");
      expect(err.message).toMatch(/nested too deeply to compile safely/);
    }
  });
  test("a device this build cannot use", async () => {
    await expect(loadModel(path.join(GOLDEN, "toy.pt"), { device: "tpu" })).rejects.toThrow(/device: expected 'cpu', 'cuda' or 'cuda:N'/);
  });
});

describe("attribute()", () => {
  const ig = () => new IntegratedGradients(toy);
  test("input and baseline shapes that do not match", async () => {
    await expect(ig().attribute(x, { target: 0, baselines: tensor([[1, 2]]) })).rejects.toThrow(
      "baselines[0]: shape [1, 2] does not match input 0 of shape [2, 3]; expected [2, 3] or [1, 3]",
    );
  });
  test("one baseline per input", async () => {
    await expect(ig().attribute(x, { target: 0, baselines: [0, 0] })).rejects.toThrow("baselines: expected one baseline per input (1), got 2");
  });
  test("target out of range", async () => {
    await expect(ig().attribute(x, { target: 2 })).rejects.toThrow(
      "target: index 2 is out of range for output dimension 1 of size 2 (each example's output has shape [2])",
    );
    await expect(ig().attribute(x, { target: [0, -3] })).rejects.toThrow(/target: index -3 is out of range/);
  });
  test("one target per example", async () => {
    await expect(ig().attribute(x, { target: [0, 1, 0] })).rejects.toThrow("target: expected one target per example (2) or a single one, got 3");
  });
  test("no target where the output has several values per example", async () => {
    await expect(new Saliency(toy).attribute(x)).rejects.toThrow(/target: gradient methods need one scalar per example.*give a target/);
  });
  test("nSteps < 1", async () => {
    await expect(ig().attribute(x, { target: 0, nSteps: 0 })).rejects.toThrow("nSteps: expected an integer >= 1, got 0");
    await expect(ig().attribute(x, { target: 0, nSteps: 2.5 })).rejects.toThrow(/nSteps: expected an integer/);
  });
  test("unknown method", async () => {
    await expect(ig().attribute(x, { target: 0, method: "simpson" as never })).rejects.toThrow(/method: expected one of gausslegendre, riemann_left/);
  });
  test("integer inputs to a gradient method", async () => {
    await expect(ig().attribute(tensor([[1, 2, 3]], undefined, "int64"), { target: 0 })).rejects.toThrow(
      /inputs\[0\]: gradient methods need floating-point inputs, got int64/,
    );
  });
  test("a model whose forward throws", async () => {
    await expect(ig().attribute(tensor([[1, 2]]), { target: 0 })).rejects.toThrow(/model forward failed: .*mat1 and mat2 shapes cannot be multiplied/);
  });
  test("inputs that do not match forward()'s arguments", async () => {
    await expect(new Saliency(multi).attribute(x, { target: 0 })).rejects.toThrow(
      /inputs: the model's forward\(a: Tensor, b: Tensor, scale: float\) takes 3 argument\(s\); got 1 input tensor\(s\) and 0 additionalForwardArgs/,
    );
    await expect(new Saliency(multi).attribute([tensor([[1, 2, 3, 4]]), tensor([[1, 2, 3]])], { target: 0, additionalForwardArgs: ["big"] })).rejects.toThrow(
      "additionalForwardArgs[0] ('scale'): expected float, got string",
    );
  });
  test("inputs with different batch sizes", async () => {
    await expect(new Saliency(multi).attribute([tensor([[1, 2, 3, 4]]), tensor([[1, 2, 3], [4, 5, 6]])], { target: 0, additionalForwardArgs: [1] })).rejects.toThrow(
      "inputs[1]: batch size 2 differs from inputs[0]'s 1",
    );
  });
  test("an option no algorithm knows (a typo)", async () => {
    await expect(ig().attribute(x, { target: 0, nStep: 5 } as never)).rejects.toThrow(/IntegratedGradients: unknown option nStep/);
  });
  test("internalBatchSize and devices", async () => {
    await expect(ig().attribute(x, { target: 0, internalBatchSize: 0 })).rejects.toThrow("internalBatchSize: expected an integer >= 1, got 0");
    await expect(ig().attribute(x, { target: 0, devices: [] })).rejects.toThrow(/devices: expected a non-empty array/);
    await expect(ig().attribute(x, { target: 0, devices: ["gpu7"] })).rejects.toThrow(/devices\[0\]|device: expected/);
  });
  test("GradientShap without baselines, NoiseTunnel with a bad type", async () => {
    await expect(new GradientShap(toy).attribute(x, { target: 0 } as never)).rejects.toThrow(/baselines: GradientShap needs a baseline distribution/);
    await expect(new GradientShap(toy).attribute(x, { target: 0, baselines: 0, nSamples: 0 })).rejects.toThrow("nSamples: expected an integer >= 1, got 0");
    await expect(new NoiseTunnel(new Saliency(toy)).attribute(x, { target: 0, ntType: "smooth" as never })).rejects.toThrow(
      /ntType: expected one of smoothgrad, smoothgrad_sq, vargrad/,
    );
  });
  test("not a tensor", async () => {
    await expect(ig().attribute([1, 2, 3] as never, { target: 0 })).rejects.toThrow(/inputs\[0\]: expected a Tensor/);
  });
  test("the process survives all of the above and still computes", async () => {
    const r = await ig().attribute(x, { target: 0 });
    expect(r.shape).toEqual([2, 3]);
  });
});

describe("tensor()", () => {
  test("ragged arrays, sizes that do not fill the shape, bad dtypes", () => {
    expect(() => tensor([[1, 2], [3]])).toThrow(/ragged/);
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow("data: 3 values do not fill shape [2, 2] (4 values)");
    expect(() => tensor([1.5], [1], "int64")).toThrow(/int64 values must be integers/);
    expect(() => tensor([1], [1], "float16" as never)).toThrow(/dtype must be one of/);
  });
});

describe("error codes, argument and stack", () => {
  const rejection = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as TorchExplainError);
  const ig = () => new IntegratedGradients(toy);
  test("each kind of bad input has its code and names the argument", async () => {
    const cases: [() => Promise<unknown>, string, string][] = [
      [() => ig().attribute(x, { target: 0, baselines: tensor([[1, 2]]) }), "ERR_BAD_SHAPE", "baselines[0]"],
      [() => new Saliency(multi).attribute([tensor([[1, 2, 3, 4]]), tensor([[1, 2, 3], [4, 5, 6]])], { target: 0, additionalForwardArgs: [1] }), "ERR_BAD_SHAPE", "inputs[1]"],
      [() => ig().attribute(x, { target: 2 }), "ERR_BAD_TARGET", "target"],
      [() => new Saliency(toy).attribute(x), "ERR_BAD_TARGET", "target"],
      [() => ig().attribute(x, { target: 0, nSteps: 0 }), "ERR_BAD_OPTION", "nSteps"],
      [() => ig().attribute(x, { target: 0, nStep: 5 } as never), "ERR_BAD_OPTION", "nStep"],
      [() => ig().attribute([1, 2, 3] as never, { target: 0 }), "ERR_BAD_OPTION", "inputs[0]"],
    ];
    for (const [call, code, argument] of cases) {
      const e = await rejection(call());
      expect(e).toBeInstanceOf(TorchExplainError);
      expect([e!.code, e!.argument]).toEqual([code, argument]);
    }
    const ragged = (() => {
      try {
        tensor([[1, 2], [3]]);
      } catch (e) {
        return e as TorchExplainError;
      }
    })();
    expect([ragged?.code, ragged instanceof TorchExplainError]).toEqual(["ERR_BAD_SHAPE", true]);
  });
  test("failures that are not bad input: model load, model forward, memory, abort", async () => {
    const load = await rejection(loadModel(path.join(GOLDEN, "index.json")));
    expect([load!.code, load!.argument]).toEqual(["ERR_MODEL_LOAD", undefined]);
    expect((await rejection(ig().attribute(tensor([[1, 2]]), { target: 0 })))!.code).toBe("ERR_MODEL_FORWARD");
    expect((await rejection(ig().attribute(x, { target: 0, memoryBudget: 1 })))!.code).toBe("ERR_MEMORY_BUDGET");
    const aborted = await rejection(ig().attribute(x, { target: 0, signal: AbortSignal.abort() }));
    expect([aborted!.code, aborted!.name]).toEqual(["ERR_ABORTED", "AbortError"]);
  });
  test("a native rejection carries the caller's JavaScript stack", async () => {
    const e = await rejection(ig().attribute(x, { target: 2 }));
    expect(e!.stack).toMatch(/^TorchExplainError: target: index 2/);
    expect(e!.stack).toContain("errors.test.ts");
  });
  test("a neuronSelector that NeuronConductance cannot use is named as such", async () => {
    const e = await rejection(new NeuronConductance(toy, "lin1").attribute(x, { target: 0, neuronSelector: [7] }));
    expect(e!.message).toMatch(/^neuronSelector: /);
  });
});
