// Layer and neuron attribution: completeness at the layer, conductance
// against IG, taps on one of two blocks of one class, selectors, errors.
import * as path from "path";
import {
  IntegratedGradients, interpolate, LayerActivation, LayerConductance, LayerDeepLift, LayerDeepLiftShap, LayerFeatureAblation,
  LayerGradCam, LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients, LayerLRP, loadModel, manualSeed, Model,
  NeuronDeepLift, NeuronDeepLiftShap, NeuronFeatureAblation, NeuronGradient, NeuronGradientShap, NeuronIntegratedGradients,
  Tensor, tensor,
} from "../lib";
import { expectClose, GOLDEN, maxAbsDiff, STRUCTURAL_ZERO, values } from "./helpers";

const FIXTURES = path.join(__dirname, "fixtures", "models");
let resnet: Model, traced: Model, shared: Model, mlp: Model, text: Model;
let x: Tensor, b: Tensor;

const image = (n: number, phase: number) =>
  tensor(Float32Array.from({ length: n * 64 }, (_, i) => Math.sin(i * 1.3 + phase) * 0.9), [n, 1, 8, 8]);
const rowSums = (t: Tensor) => {
  const d = values(t), n = t.shape[0], per = d.length / n;
  return Array.from({ length: n }, (_, i) => d.slice(i * per, (i + 1) * per).reduce((a, c) => a + c, 0));
};

beforeAll(async () => {
  [resnet, traced, shared] = await Promise.all(
    ["resnet_scripted.pt", "resnet_traced.pt", "relu_shared.pt"].map((f) => loadModel(path.join(FIXTURES, f))),
  );
  [mlp, text] = await Promise.all(["mlp.pt", "text.pt"].map((f) => loadModel(path.join(GOLDEN, f))));
  x = image(3, 0);
  b = image(3, 2);
});

describe("layer methods", () => {
  test("LayerIntegratedGradients is complete at a layer every path crosses: attributions sum to F(x) - F(baseline)", async () => {
    // (block1.conv is bypassed by block1's residual addition, so it is not such a layer.)
    for (const layer of ["conv", "block1", "block2", "pool"]) {
      const { attributions, delta } = await new LayerIntegratedGradients(resnet, layer).attribute(x, {
        baselines: b, target: 1, nSteps: 200, returnConvergenceDelta: true,
      });
      const fx = values(await resnet.forward(x)), fb = values(await resnet.forward(b));
      rowSums(attributions).forEach((s, i) => {
        const gap = fx[i * 3 + 1] - fb[i * 3 + 1];
        expect({ layer, miss: Math.abs(s - gap) < 2e-3 * Math.max(1, Math.abs(gap)) }).toEqual({ layer, miss: true });
      });
      values(delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(2e-3));
    }
  });

  test("LayerIntegratedGradients on an embedding layer fed integer tokens", async () => {
    const tokens = tensor([[1, 5, 3, 7, 2, 0, 4], [6, 6, 1, 2, 3, 9, 8]], undefined, "int64");
    const base = tensor([[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]], undefined, "int64");
    const { attributions, delta } = await new LayerIntegratedGradients(text, "embedding").attribute(tokens, {
      baselines: base, target: 0, nSteps: 300, returnConvergenceDelta: true,
    });
    expect(attributions.shape).toEqual([2, 7, 6]);
    values(delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(1e-2));
  });

  test("several layers at once: one attribution per layer, as each alone", async () => {
    const both = await new LayerActivation(resnet, ["block1.conv", "block2.conv"]).attribute(x);
    expect(Array.isArray(both)).toBe(true);
    const [one, two] = both as unknown as Tensor[];
    expectClose(one, await new LayerActivation(resnet, "block1.conv").attribute(x));
    expectClose(two, await new LayerActivation(resnet, "block2.conv").attribute(x));
    expect(maxAbsDiff(one, two)).toBeGreaterThan(1e-3);
  });

  test("a layer in one of two blocks of one class is tapped alone; the model itself is untouched", async () => {
    const before = await resnet.forward(x);
    const g1 = await new LayerGradientXActivation(resnet, "block1.conv").attribute(x, { target: 0 });
    const g2 = await new LayerGradientXActivation(resnet, "block2.conv").attribute(x, { target: 0 });
    expect(maxAbsDiff(g1, g2)).toBeGreaterThan(1e-4);
    // Substituting block1.conv's value leaves block2 running as before:
    // integrating from the inputs' own layer value gives zero everywhere.
    const zero = await new LayerIntegratedGradients(resnet, "block1.conv").attribute(x, { baselines: x, target: 0 });
    expectClose(zero, 0, { atol: STRUCTURAL_ZERO });
    expectClose(await resnet.forward(x), before);
  });

  test("LayerConductance summed over the layer equals IntegratedGradients' total", async () => {
    const cond = await new LayerConductance(mlp, "fc2").attribute(tensor(values(x).slice(0, 16), [2, 8]), { target: 1, nSteps: 300 });
    const ig = await new IntegratedGradients(mlp).attribute(tensor(values(x).slice(0, 16), [2, 8]), { target: 1, nSteps: 300 });
    rowSums(cond).forEach((s, i) => expect(Math.abs(s - rowSums(ig)[i])).toBeLessThan(1e-3));
  });

  test("scripted and traced models give the same layer attributions", async () => {
    const runs: [string, (m: Model) => Promise<Tensor>][] = [
      ["LayerGradCam", (m) => new LayerGradCam(m, "block2.conv").attribute(x, { target: 2 })],
      ["LayerDeepLift", (m) => new LayerDeepLift(m, "block1").attribute(x, { target: 2, baselines: b })],
      ["LayerLRP", (m) => new LayerLRP(m, "pool").attribute(x, { target: 2 })],
      ["LayerConductance input", (m) => new LayerConductance(m, "fc").attribute(x, { target: 2, attributeToLayerInput: true })],
    ];
    for (const [name, run] of runs) {
      const a = await run(resnet), c = await run(traced);
      expect({ name, diff: maxAbsDiff(a, c) < 1e-5 }).toEqual({ name, diff: true });
    }
  });

  test("LayerGradientShap with one reference and no noise is expected gradients times the layer's change", async () => {
    manualSeed(3);
    const one = tensor(values(b).slice(0, 64), [1, 1, 8, 8]);
    const { attributions, delta } = await new LayerGradientShap(resnet, "block2").attribute(x, {
      baselines: one, target: 0, nSamples: 400, returnConvergenceDelta: true,
    });
    expect(delta.shape).toEqual([1200]);
    const ig = await new LayerIntegratedGradients(resnet, "block2").attribute(x, {
      baselines: tensor(Array.from({ length: 3 }, () => Array.from(values(one))).flat(), [3, 1, 8, 8]), target: 0,
    });
    rowSums(attributions).forEach((s, i) => expect(Math.abs(s - rowSums(ig)[i])).toBeLessThan(0.1 * Math.max(1, Math.abs(rowSums(ig)[i]))));
  });

  test("interpolate resizes layer maps to the input's size", async () => {
    const cam = await new LayerGradCam(resnet, "block2").attribute(x, { target: 0 });
    const up = interpolate(cam, [16, 16]);
    expect(up.shape).toEqual([3, 1, 16, 16]);
    const c = values(cam), u = values(up);
    expectClose(u[0], c[0]);
    expectClose(u[16 * 16 - 1], c[64 - 1]);
    expect(interpolate(cam, [4, 4], "area").shape).toEqual([3, 1, 4, 4]);
    expect(() => interpolate(cam, [4], "nearest")).toThrow(/size: expected 2 output sizes/);
    expect(() => interpolate(cam, [4, 4], "cubic" as never)).toThrow(/mode: expected/);
  });
});

describe("neuron methods", () => {
  const v = () => tensor(values(x).slice(0, 24), [3, 8]);

  test("a neuronSelector function chooses the neuron from the layer's value", async () => {
    const act = await new LayerActivation(mlp, "fc2").attribute(v());
    const a = values(act), per = act.shape[1];
    const argmax = Array.from({ length: 3 }, (_, i) => {
      const row = a.slice(i * per, (i + 1) * per);
      return [row.indexOf(Math.max(...row))];
    });
    const byFunction = await new NeuronGradient(mlp, "fc2").attribute(v(), {
      neuronSelector: (value: Tensor) => {
        const d = values(value), k = value.shape[1];
        return Array.from({ length: value.shape[0] }, (_, i) => {
          const row = d.slice(i * k, (i + 1) * k);
          return [row.indexOf(Math.max(...row))];
        });
      },
    });
    const byIndex = await Promise.all(argmax.map(([j], i) =>
      new NeuronGradient(mlp, "fc2").attribute(tensor(values(v()).slice(i * 8, i * 8 + 8), [1, 8]), { neuronSelector: j })));
    byIndex.forEach((t, i) => expectClose(tensor(values(byFunction).slice(i * 8, i * 8 + 8), [1, 8]), t));
  });

  test("NeuronIntegratedGradients is complete for the neuron", async () => {
    const { attributions, delta } = await new NeuronIntegratedGradients(mlp, "fc2").attribute(v(), {
      neuronSelector: 3, nSteps: 300, returnConvergenceDelta: true,
    });
    expect(attributions.shape).toEqual([3, 8]);
    values(delta).forEach((d) => expect(Math.abs(d)).toBeLessThan(5e-3));
  });
});

describe("Shap variants", () => {
  // Rows k of the reference set, broadcast over the 3 examples.
  const refs = () => image(4, 5);
  const ref = (k: number) => tensor(Array.from({ length: 3 }, () => values(refs()).slice(k * 64, k * 64 + 64)).flat(), [3, 1, 8, 8]);
  const mean = (ts: Tensor[]) => tensor(Float32Array.from(values(ts[0]), (_, i) => ts.reduce((a, t) => a + values(t)[i], 0) / ts.length), ts[0].shape);

  test("LayerDeepLiftShap and NeuronDeepLiftShap are the means of their DeepLift over the references", async () => {
    const layerShap = await new LayerDeepLiftShap(resnet, "block1").attribute(x, { baselines: refs(), target: 2 });
    const layerEach = await Promise.all([0, 1, 2, 3].map((k) => new LayerDeepLift(resnet, "block1").attribute(x, { baselines: ref(k), target: 2 })));
    expect(maxAbsDiff(layerShap, mean(layerEach))).toBeLessThan(1e-5);
    const neuronShap = await new NeuronDeepLiftShap(resnet, "block2.conv").attribute(x, { baselines: refs(), neuronSelector: [1, 2, 3] });
    const neuronEach = await Promise.all([0, 1, 2, 3].map((k) =>
      new NeuronDeepLift(resnet, "block2.conv").attribute(x, { baselines: ref(k), neuronSelector: [1, 2, 3] })));
    expect(maxAbsDiff(neuronShap, mean(neuronEach))).toBeLessThan(1e-5);
  });

  test("NeuronGradientShap with one reference and no noise approaches NeuronIntegratedGradients", async () => {
    manualSeed(11);
    const shap = await new NeuronGradientShap(resnet, "block2").attribute(x, { baselines: tensor(values(refs()).slice(0, 64), [1, 1, 8, 8]), neuronSelector: [0, 3, 3], nSamples: 2000 });
    const ig = await new NeuronIntegratedGradients(resnet, "block2").attribute(x, { baselines: ref(0), neuronSelector: [0, 3, 3], nSteps: 100 });
    rowSums(shap).forEach((s, i) => expect(Math.abs(s - rowSums(ig)[i])).toBeLessThan(0.05 * Math.max(1, Math.abs(rowSums(ig)[i]))));
  });

  test("ablating a layer's units or the inputs for a neuron: the layer's own units, zero for units the neuron ignores", async () => {
    const layer = await new LayerFeatureAblation(resnet, "pool").attribute(x, { target: 0, perturbationsPerEval: "auto" });
    expect(layer.shape).toEqual([3, 4, 4, 4]);
    // A unit of the first convolution sees a 3x3 patch: pixels outside it do not move it.
    const neuron = await new NeuronFeatureAblation(resnet, "conv").attribute(x, { neuronSelector: [0, 0, 0], perturbationsPerEval: "auto" });
    const n = values(neuron);
    for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) if (r > 1 || c > 1) expectClose(n[r * 8 + c], 0, { atol: STRUCTURAL_ZERO });
    expect(n.slice(0, 64).some((a) => Math.abs(a) > STRUCTURAL_ZERO)).toBe(true);
  });
});

describe("bad input", () => {
  test("a wrong layer name is a rejected Promise listing the valid names", async () => {
    await expect(new LayerGradCam(resnet, "conv9").attribute(x, { target: 0 })).rejects.toThrow(
      "layer: the model has no submodule 'conv9': did you mean 'conv'? (11 layers: conv, bn, relu, block1, block1.conv, block1.relu, block2, block2.conv, block2.relu, pool, fc)",
    );
    await expect(new NeuronGradient(resnet, "blok1", ).attribute(x, { neuronSelector: [0, 0, 0] })).rejects.toThrow(/no submodule 'blok1'/);
    expect(() => new LayerGradCam(resnet, 3 as never)).toThrow(/layer: expected a submodule name/);
  });

  test("a layer called twice, a neuron out of range, a target where none is taken", async () => {
    await expect(new LayerActivation(shared, "relu").attribute(v6())).rejects.toThrow(/'relu' is called 2 times in forward\(\)/);
    await expect(new NeuronGradient(mlp, "fc2").attribute(tensor(values(x).slice(0, 24), [3, 8]), { neuronSelector: 99 })).rejects.toThrow(/^neuronSelector/);
    await expect(new NeuronGradient(mlp, "fc2").attribute(tensor(values(x).slice(0, 24), [3, 8]), { neuronSelector: 1, target: 0 } as never)).rejects.toThrow(
      /NeuronGradient: takes no target; it explains one neuron of the layer, chosen by neuronSelector/,
    );
    await expect(new NeuronGradient(mlp, "fc2").attribute(tensor(values(x).slice(0, 24), [3, 8]), {} as never)).rejects.toThrow(/neuronSelector: NeuronGradient needs/);
    await expect(new LayerIntegratedGradients(mlp, "fc2").attribute(tensor(values(x).slice(0, 24), [3, 8]), { target: 0, nStep: 3 } as never)).rejects.toThrow(
      /^LayerIntegratedGradients: unknown option nStep/,
    );
  });
});

function v6() {
  return tensor(values(x).slice(0, 12), [2, 6]);
}

test("a layer that batch norm follows is read before the norm (batch norms are folded into their layers elsewhere)", async () => {
  // Reference: PyTorch and Captum 0.7 on an eager copy of resnet_scripted.pt
  // (scripts/make_models.py's ResNet with the file's weights), first 4 values.
  const input = tensor(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i * 0.71)), [2, 1, 8, 8]);
  const first4 = (t: Tensor) => values(t).slice(0, 4);
  expectClose(first4(await new LayerActivation(resnet, "conv").attribute(input)), [-0.3641878, -0.4294521, -0.3598005, -0.1585925], { rtol: 1e-4 });
  expectClose(first4(await new LayerActivation(resnet, "bn").attribute(input)), [-0.732063, -0.8017873, -0.7273759, -0.5124179], { rtol: 1e-4 });
  expectClose(first4(await new LayerGradCam(resnet, "conv").attribute(input, { target: 1 })),
    [-0.0010439283, -0.0010954281, -0.0007374769, -0.0006252301], { rtol: 1e-4, atol: 1e-9 });
});
