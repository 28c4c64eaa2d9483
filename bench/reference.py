#!/usr/bin/env python3
"""The benchmarks' references, run in Python on the same TorchScript files:

- the independent floor: the same bare passes as an attribution, run by PyTorch
  itself (Debian's python3-torch);
- Captum, when it can be imported (for example PYTHONPATH pointing at a Captum 0.7
  checkout): the same attribution call through Captum's public API, on an eager copy of
  the model (scripts/make_models.py's class with the file's weights), because Captum's
  hook-based methods (DeepLift, LRP, layer methods) refuse ScriptModules.

A small server so that the bench can time it in alternation with the engine
(a noisy spell on the machine then hits every side). One JSON request per
line on stdin, one JSON reply per line on stdout:
  {"load": k, "threads": int, "passes": [pass, ...]}   -> {"ok": k}
  {"load": k, "threads": int, "captum": call}          -> {"ok": k}
  {"run": k}                                            -> {"seconds": s}
where a pass is
  {"model": path, "rows": [rows], "target": int, "chunk": rows per pass (0 = all), "backward": bool}
rows are {"file": raw little-endian data, "shape": [...], "dtype": "float32"|"int64"},
and a Captum call is
  {"model": path, "cls": "IntegratedGradients", "inner": class wrapped by cls (NoiseTunnel),
   "layer": submodule name, "method": "attribute" | "perturb" | "infidelity",
   "inputs": [rows], "kwargs": {name: value or {"rows": rows}}}
or an LLM call (bench/llm.js), one Captum LLMAttribution call per prompt
  {"llm": {"model": path, "tokenizer": tokenizer.json, "method": cls, "layer": submodule,
           "template": str, "prompts": [[value, ...], ...], "target": [ids], "kwargs": {...}}}
or a service (bench/throughput.js): `count` requests of one image each, answered one
Captum call at a time, as a Python service answers them
  {"service": {"cls": cls, "model": path, "count": int, "kwargs": {...}, "layer": submodule}}
or an influence call (bench/influence.js) on scripts/make_influence.py's bench set
  {"influence": {"cls": "TracInCP" | "TracInCPFast", "dir": folder, "batchSize": int, "k": int,
                 "method": "influence" | "self_influence"}}
"run" times one round of workload k. A pass is every forward (and backward: the
gradient of output[:, target] with respect to the rows, or to the first parameter
when the rows are integers) over all its rows, `chunk` rows at a time.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))


def load_rows(spec):
    dtype = {"float32": np.float32, "int64": np.int64}[spec["dtype"]]
    return torch.from_numpy(np.fromfile(spec["file"], dtype=dtype).reshape(spec["shape"]))


def one_pass(model, rows, target, chunk, backward):
    n = rows[0].shape[0]
    size = chunk or n
    for b in range(0, n, size):
        part = [r[b : b + size] for r in rows]
        if not backward:
            with torch.no_grad():
                model(*part)
            continue
        leaves = [p.detach().requires_grad_(True) if p.is_floating_point() else p for p in part]
        wrt = [p for p in leaves if p.requires_grad] or [next(model.parameters())]
        out = model(*leaves)
        torch.autograd.grad(out[:, target].sum(), wrt)


def eager_copy(path, scripted):
    """The eager module the file was scripted from, with the file's weights."""
    import make_models

    classes = {"bench_convnet.pt": make_models.ConvNet, "bench_mlp.pt": make_models.TinyMLP,
               "bench_resnet.pt": make_models.BenchResNet, "bench_textcnn.pt": make_models.BenchTextCNN}
    model = classes[os.path.basename(path)]().eval()
    model.load_state_dict(scripted.state_dict())
    return model


def captum_call(model, spec):
    import captum.attr
    import captum.metrics
    import captum.robust

    def value(v):
        if isinstance(v, dict) and "rows" in v:
            return load_rows(v["rows"])
        return tuple(v) if isinstance(v, list) else v

    inputs = tuple(load_rows(r) for r in spec["inputs"])
    kwargs = {k: value(v) for k, v in spec.get("kwargs", {}).items()}
    if spec["method"] == "infidelity":
        stdev = kwargs.pop("stdev")

        def gaussian(x):
            noise = torch.randn_like(x) * stdev
            return noise, x - noise

        attributions = inputs
        return lambda: captum.metrics.infidelity(model, gaussian, inputs, attributions, **kwargs)
    cls = getattr(captum.robust if spec["method"] == "perturb" else captum.attr, spec["cls"])
    if "inner" in spec:
        algorithm = cls(getattr(captum.attr, spec["inner"])(model))
    elif "layer" in spec:
        algorithm = cls(model, model.get_submodule(spec["layer"]))
    else:
        algorithm = cls(model)
    method = getattr(algorithm, spec["method"])
    return lambda: method(inputs if len(inputs) > 1 else inputs[0], **kwargs)


def llm_call(spec):
    """Captum 0.8's LLMAttribution on the transformers GPT-2 the file was traced from."""
    import captum.attr as ca
    from transformers import PreTrainedTokenizerFast

    import make_llm

    traced = torch.jit.load(spec["model"])
    model = make_llm.bench_gpt2(make_llm.vocab_sizes()["bpe"])
    weights = {k[2:]: v for k, v in traced.state_dict().items()}
    missing = [k for k in model.load_state_dict(weights, strict=False).missing_keys if not k.endswith("attn.bias")]
    assert not missing, missing
    tok = PreTrainedTokenizerFast(tokenizer_file=spec["tokenizer"])
    target = torch.tensor(spec["target"])
    method = spec["method"]
    if "layer" in spec and spec["layer"]:
        llm = ca.LLMGradientAttribution(getattr(ca, method)(model, model.get_submodule(spec["layer"])), tok)
        inputs = [ca.TextTokenInput(spec["template"].format(*p), tok) for p in spec["prompts"]]
    else:
        llm = ca.LLMAttribution(getattr(ca, method)(model), tok)
        inputs = [ca.TextTemplateInput(spec["template"], values=p) for p in spec["prompts"]]
    kwargs = dict(spec.get("kwargs", {}))
    if not spec.get("layer"):
        # Captum 0.8's key/value-cache path (its default) fails under transformers 5 (index
        # out of range on this model; other scores on the test models): the uncached path.
        kwargs["use_cached_outputs"] = False
    return lambda: [llm.attribute(inp, target=target, **kwargs) for inp in inputs]


def influence_call(spec):
    """Captum 0.8's TracInCP (per-example gradients by batch: linear and convolution
    layers) or TracInCPFast on the bench set, checkpoints loaded from the files."""
    from torch.utils.data import TensorDataset
    from captum.influence import TracInCP, TracInCPFast

    import make_influence

    folder = spec["dir"]
    data = {k: torch.from_numpy(np.load(os.path.join(folder, k + ".npy"))) for k in ["train_x", "train_y", "test_x", "test_y"]}
    checkpoints = [os.path.join(folder, f"cnn_{i}.pt") for i in range(3)]

    def load(model, path):
        model.load_state_dict(torch.jit.load(path).state_dict())
        return 1.0

    model = make_influence.CNN(channels=3, size=16)
    train = TensorDataset(data["train_x"], data["train_y"])
    loss = torch.nn.CrossEntropyLoss(reduction="sum")
    if spec["cls"] == "TracInCP":
        t = TracInCP(model, train, checkpoints, load, loss_fn=loss, batch_size=spec["batchSize"], sample_wise_grads_per_batch=True)
    else:
        t = TracInCPFast(model, "fc", train, checkpoints, load, loss_fn=loss, batch_size=spec["batchSize"])
    if spec.get("method") == "self_influence":
        return lambda: t.self_influence()
    return lambda: t.influence((data["test_x"], data["test_y"]), k=spec.get("k"))


def service_call(spec):
    """`count` single-image requests, one Captum call each (the images differ, the targets cycle)."""
    import captum.attr

    model = eager_copy(spec["model"], torch.jit.load(spec["model"]))
    cls = getattr(captum.attr, spec["cls"])
    method = cls(model, model.get_submodule(spec["layer"])) if spec.get("layer") else cls(model)
    j = torch.arange(3 * 32 * 32, dtype=torch.float32)
    images = [torch.sin(j * 0.37 + i).reshape(1, 3, 32, 32) for i in range(spec["count"])]
    kwargs = spec.get("kwargs", {})
    return lambda: [method.attribute(x, target=i % 10, **kwargs) for i, x in enumerate(images)]


def main():
    models, workloads = {}, {}
    for line in sys.stdin:
        req = json.loads(line)
        if "load" in req:
            torch.set_num_threads(req["threads"])
            runs = []
            for p in req.get("passes", []):
                if p["model"] not in models:
                    models[p["model"]] = torch.jit.load(p["model"]).eval()
                rows = [load_rows(r) for r in p["rows"]]
                runs.append(lambda m=models[p["model"]], r=rows, p=p: one_pass(m, r, p["target"], p["chunk"], p["backward"]))
            if "llm" in req:
                runs.append(llm_call(req["llm"]))
            if "influence" in req:
                runs.append(influence_call(req["influence"]))
            if "service" in req:
                runs.append(service_call(req["service"]))
            if "captum" in req:
                spec = req["captum"]
                runs.append(captum_call(eager_copy(spec["model"], torch.jit.load(spec["model"])), spec))
            workloads[req["load"]] = runs
            reply = {"ok": req["load"]}
        else:
            t0 = time.perf_counter()
            for run in workloads[req["run"]]:
                run()
            reply = {"seconds": time.perf_counter() - t0}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
