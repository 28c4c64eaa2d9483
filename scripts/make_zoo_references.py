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


def run(fn):
    try:
        torch.manual_seed(0)
        r = fn()
        if isinstance(r, tuple) and len(r) == 2 and torch.is_tensor(r[1]) and r[1].numel() == 1:
            return {"attributions": b64(r[0]), "shape": list(r[0].shape), "captumDelta": float(r[1].reshape(-1)[0])}
        return {"attributions": b64(r), "shape": list(r.shape)}
    except Exception as e:  # the reference refuses: recorded, and the test checks a property
        return {"captumError": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}


def vision_cases(name, model, x, target):
    layer = VISION_LAYER[name]
    window = (1, 32) if x.dim() == 3 else (3, 8, 8)
    cases = {
        "Saliency": ({}, lambda: A.Saliency(model).attribute(x, target=target)),
        "IntegratedGradients": ({"nSteps": 50}, lambda: A.IntegratedGradients(model).attribute(x, target=target, n_steps=50)),
        "InputXGradient": ({}, lambda: A.InputXGradient(model).attribute(x, target=target)),
        "DeepLift": ({"returnConvergenceDelta": True},
                     lambda: A.DeepLift(model).attribute(x, target=target, return_convergence_delta=True)),
        "GuidedBackprop": ({}, lambda: A.GuidedBackprop(model).attribute(x, target=target)),
        "LRP": ({}, lambda: A.LRP(model).attribute(x, target=target)),
        "LayerGradCam": ({"layer": layer}, lambda: A.LayerGradCam(model, submodule(model, layer)).attribute(x, target=target)),
        "Occlusion": ({"slidingWindowShapes": list(window), "strides": list(window)},
                      lambda: A.Occlusion(model).attribute(x, sliding_window_shapes=window, strides=window, target=target)),
    }
    return cases


def text_cases(name, model, ids, extra, target):
    layer = TEXT_LAYER[name]
    emb = submodule(model, layer)
    kw = {"additional_forward_args": extra} if extra else {}
    zeros = torch.zeros_like(ids)
    return {
        "LayerIntegratedGradients": ({"layer": layer, "nSteps": 50, "returnConvergenceDelta": True},
                                     lambda: A.LayerIntegratedGradients(model, emb).attribute(
                                         ids, baselines=zeros, target=target, n_steps=50, return_convergence_delta=True, **kw)),
        "LayerGradientXActivation": ({"layer": layer},
                                     lambda: A.LayerGradientXActivation(model, emb).attribute(ids, target=target, **kw)),
        "LayerDeepLift": ({"layer": layer, "returnConvergenceDelta": True},
                          lambda: A.LayerDeepLift(model, emb).attribute(ids, baselines=zeros, target=target,
                                                                         return_convergence_delta=True, **kw)),
        "LayerConductance": ({"layer": layer, "returnConvergenceDelta": True},
                             lambda: A.LayerConductance(model, emb).attribute(ids, baselines=zeros, target=target, **kw)),
        "FeatureAblation": ({}, lambda: A.FeatureAblation(model).attribute(ids, baselines=0, target=target, **kw)),
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
            r = run(fn)
            r["options"] = options
            if (name, method) in KNOWN:
                r["reference"] = "wrong: " + KNOWN[(name, method)]
            if (name, method) in VARIANT_METHODS:
                v = variant(name, model)
                r["variant"] = run(lambda: vision_cases(name, v, x, target)[method][1]())
            doc["cases"][method] = r
            print(name, method, r.get("captumError", "ok")[:100], r.get("captumDelta", ""))
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
