#!/usr/bin/env python3
"""Reference outputs of Captum 0.8 on the zoo (scripts/make_zoo.py's modules,
same seeds), written to test/fixtures/zoo_references/<model>.json for
test/zoo.test.ts. Captum is not a dependency: run from a checkout of its
v0.8.0 tag, with the zoo's torch (2.13), torchvision and transformers:

    PYTHONPATH=/path/to/captum .torch/bin/python scripts/make_zoo_references.py

Each file holds the input, the model's output (the test checks the zoo
file computes it, so a stale zoo fails clearly) and, per method, Captum's
attributions as base64 float32, or the message Captum raised. Where Captum's
answer is known to be wrong for a reason the test states, `reference` says so
and the test checks a property of ours instead.
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_zoo  # noqa: E402
import captum  # noqa: E402
from captum import attr as A  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "zoo_references")

# Where the reference's answer is wrong, and why: the test checks a
# property of ours instead (and, where VARIANTS has the model, compares with
# the reference run on the same weights with the missed ops as modules).
HOOKS = "the reference's hooks see module instances, once per instance"
PRODUCTS = ("the reference takes plain gradients through products of two input-dependent tensors ({}), so its "
            "summation to delta fails (its delta is recorded); ours is exact")
KNOWN = {
    ("resnet18", "DeepLift"): "each BasicBlock calls one nn.ReLU instance twice, which the reference refuses (" + HOOKS + ")",
    ("resnet18", "LRP"): "the reference's rules miss the residual additions (x + identity is not a module): relevance is not conserved across them",
    ("densenet", "DeepLift"): "DenseNet's forward ends with F.relu and F.adaptive_avg_pool2d, which the reference's module hooks miss",
    ("densenet", "GuidedBackprop"): "DenseNet's forward ends with F.relu, which the reference's module hooks miss",
    ("densenet", "LRP"): "the reference's rules miss DenseNet's F.relu and the torch.cat joining its dense layers",
    ("mobilenet_v3_small", "DeepLift"): PRODUCTS.format("squeeze-excitation gates"),
    ("efficientnet_b0", "DeepLift"): PRODUCTS.format("squeeze-excitation gates"),
    ("convnext", "DeepLift"): PRODUCTS.format("layer norm's normalisation"),
    ("vit", "DeepLift"): PRODUCTS.format("attention, layer norm"),
}
for text_model in ("transformer", "bert", "distilbert", "gpt2"):
    KNOWN[(text_model, "LayerDeepLift")] = PRODUCTS.format("attention, layer norm")
KNOWN[("lstm", "LayerDeepLift")] = ("the reference takes plain gradients through the LSTM's gates, so its summation to "
                                     "delta fails (its delta is recorded); aten::lstm has no rule here yet")


def variant(name, model):
    """The same weights with what the reference's hooks miss made modules
    (one nn.ReLU per call, functional relu and pooling as modules)."""
    import copy
    import types
    import torch.nn.functional as F
    m = copy.deepcopy(model)
    if name == "densenet":
        m.relu_out, m.pool_out = torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d((1, 1))

        def forward(self, x):
            return self.classifier(torch.flatten(self.pool_out(self.relu_out(self.features(x))), 1))
        m.forward = types.MethodType(forward, m)
        return m
    if name == "resnet18":
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for block in layer:
                block.relu2 = torch.nn.ReLU()

                def forward(self, x):
                    identity = x if self.downsample is None else self.downsample(x)
                    out = self.relu(self.bn1(self.conv1(x)))
                    return self.relu2(self.bn2(self.conv2(out)) + identity)
                block.forward = types.MethodType(forward, block)
        return m
    return None


VARIANT_METHODS = {("densenet", "DeepLift"), ("densenet", "GuidedBackprop"), ("resnet18", "DeepLift")}


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4")).tobytes()).decode()


def tensor_json(t):
    dtype = "int64" if t.dtype == torch.int64 else "float32"
    data = np.ascontiguousarray(t.cpu().numpy().astype("<i8" if dtype == "int64" else "<f4")).tobytes()
    return {"dtype": dtype, "shape": list(t.shape), "data": base64.b64encode(data).decode()}


def image(shape):
    n = int(np.prod(shape))
    return torch.tensor([math.sin(i * 0.37) for i in range(n)], dtype=torch.float32).reshape(shape)


VISION_LAYER = {"resnet18": "layer4", "mobilenet_v3_small": "features", "efficientnet_b0": "features", "vgg11_bn": "features",
                "densenet": "features", "convnext": "features", "vit": "conv_proj", "audio": "conv2"}
TEXT_LAYER = {"transformer": "embedding", "lstm": "embedding", "bert": "model.bert.embeddings.word_embeddings",
              "distilbert": "model.distilbert.embeddings.word_embeddings", "gpt2": "model.transformer.wte"}


def submodule(model, dotted):
    m = model
    for part in dotted.split("."):
        m = getattr(m, part)
    return m


def run(make):
    """Captum's answer as float64 (`attributions`, the reference) and how far
    its own float32 run is from it (`float32Error`, relative to the largest
    value): the test allows for float32 rounding what the reference itself
    shows (1e-7 on most nets, 1e-4 for IG on vgg11_bn)."""
    out = {}
    try:
        results = []
        for dtype in (torch.float64, torch.float32):
            torch.manual_seed(0)
            results.append(make(dtype)())
        (r64, r32) = results
        delta = None
        if isinstance(r64, tuple):
            (r64, delta), r32 = r64, r32[0]
        scale = r64.abs().max().item()
        out = {"attributions": b64(r64), "shape": list(r64.shape),
               "float32Error": (r32.double() - r64).abs().max().item() / scale if scale > 0 else 0.0}
        if delta is not None:
            out["captumDelta"] = float(delta.reshape(-1)[0])
        return out
    except Exception as e:  # the reference refuses: recorded, and the test checks a property
        return {"captumError": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}


def in_dtype(model, tensors, dtype):
    """A copy of the model and the float tensors in `dtype` (ids stay int64)."""
    import copy
    m = copy.deepcopy(model).to(dtype)
    return m, [t.to(dtype) if t.is_floating_point() else t for t in tensors]


def vision_cases(name, model, x, target):
    """method -> (our options, f(model, x) running Captum)."""
    layer = VISION_LAYER[name]
    window = (1, 32) if x.dim() == 3 else (3, 8, 8)
    cases = {
        "Saliency": ({}, lambda model, x: A.Saliency(model).attribute(x, target=target)),
        "IntegratedGradients": ({"nSteps": 50}, lambda model, x: A.IntegratedGradients(model).attribute(x, target=target, n_steps=50)),
        "InputXGradient": ({}, lambda model, x: A.InputXGradient(model).attribute(x, target=target)),
        "DeepLift": ({"returnConvergenceDelta": True},
                     lambda model, x: A.DeepLift(model).attribute(x, target=target, return_convergence_delta=True)),
        "GuidedBackprop": ({}, lambda model, x: A.GuidedBackprop(model).attribute(x, target=target)),
        "LRP": ({}, lambda model, x: A.LRP(model).attribute(x, target=target)),
        "LayerGradCam": ({"layer": layer}, lambda model, x: A.LayerGradCam(model, submodule(model, layer)).attribute(x, target=target)),
        "Occlusion": ({"slidingWindowShapes": list(window), "strides": list(window)},
                      lambda model, x: A.Occlusion(model).attribute(x, sliding_window_shapes=window, strides=window, target=target)),
    }
    return cases


def text_cases(name, model, ids, extra, target):
    """method -> (our options, f(model, extra) running Captum)."""
    layer = TEXT_LAYER[name]
    zeros = torch.zeros_like(ids)

    def kw(extra):
        return {"additional_forward_args": tuple(extra)} if extra else {}
    return {
        "LayerIntegratedGradients": ({"layer": layer, "nSteps": 50, "returnConvergenceDelta": True},
                                     lambda model, extra: A.LayerIntegratedGradients(model, submodule(model, layer)).attribute(
                                         ids, baselines=zeros, target=target, n_steps=50, return_convergence_delta=True, **kw(extra))),
        "LayerGradientXActivation": ({"layer": layer},
                                     lambda model, extra: A.LayerGradientXActivation(model, submodule(model, layer)).attribute(
                                         ids, target=target, **kw(extra))),
        "LayerDeepLift": ({"layer": layer, "returnConvergenceDelta": True},
                          lambda model, extra: A.LayerDeepLift(model, submodule(model, layer)).attribute(
                              ids, baselines=zeros, target=target, return_convergence_delta=True, **kw(extra))),
        "LayerConductance": ({"layer": layer, "returnConvergenceDelta": True},
                             lambda model, extra: A.LayerConductance(model, submodule(model, layer)).attribute(
                                 ids, baselines=zeros, target=target, **kw(extra))),
        "FeatureAblation": ({}, lambda model, extra: A.FeatureAblation(model).attribute(ids, baselines=0, target=target, **kw(extra))),
    }


def main():
    assert captum.__version__.startswith("0.8"), f"Captum 0.8 expected, got {captum.__version__}"
    os.makedirs(OUT, exist_ok=True)
    builders = make_zoo.builders()
    for name, build in builders.items():
        if name not in VISION_LAYER and name not in TEXT_LAYER:
            continue  # gpt2_dict, gpt2_tuple: for loadModel's output option only
        model = build()
        for p in model.parameters():
            p.requires_grad_(False)
        text = name in TEXT_LAYER
        if text:
            ids = torch.tensor([[5, 17, 3, 99, 42, 7, 8, 1]])
            extra = (torch.ones_like(ids),) if name in ("bert", "distilbert", "gpt2") else ()
            target = (7, 42) if name == "gpt2" else 1
            inputs = [ids]
            with torch.no_grad():
                out = model(ids, *extra)
            cases = text_cases(name, model, ids, extra, target)
        else:
            x = image((1, 1, 256) if name == "audio" else (1, 3, 32, 32))
            extra, target, inputs = (), 1, [x]
            with torch.no_grad():
                out = model(x)
            cases = vision_cases(name, model, x, target)
        doc = {"model": name, "captum": captum.__version__, "torch": torch.__version__,
               "inputs": [tensor_json(t) for t in inputs], "extra": [tensor_json(t) for t in extra],
               "target": list(target) if isinstance(target, tuple) else target,
               "output": {"shape": list(out.shape), "data": b64(out)}, "cases": {}}
        for method, (options, fn) in cases.items():
            def make(dtype, fn=fn, m=model):
                dm, dt = in_dtype(m, inputs if not text else list(extra), dtype)
                return lambda: fn(dm, dt[0] if not text else dt)
            r = run(make)
            r["options"] = options
            if (name, method) in KNOWN:
                r["reference"] = "wrong: " + KNOWN[(name, method)]
            if (name, method) in VARIANT_METHODS:
                r["variant"] = run(lambda dtype, fn=fn: make(dtype, fn, variant(name, model)))
            doc["cases"][method] = r
            print(name, method, r.get("captumError", "ok")[:100], r.get("captumDelta", ""))
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
