#!/usr/bin/env python3
"""Reference outputs of Captum 0.8's captum.influence on the fixtures of
scripts/make_influence.py, written to test/fixtures/influence/references.json.
Needs Captum 0.8 importable (e.g. PYTHONPATH=<a checkout of captum v0.8.0>):

  PYTHONPATH=/tmp/captum08 .torch/bin/python scripts/make_influence_references.py

Each case names the class, the model and data, the options in this
project's (camelCase) names, and Captum's result. Captum runs on eager
copies of the modules holding each checkpoint's weights. Where the two APIs
differ in how a value is given, the case says how it was made:
- learning rates: Captum's default loader cannot read one from a state dict
  (a 'learning_rate' key fails load_state_dict), so a loader returns them;
- TracInCPFastRandProj: Annoy is not installed, so an exact nearest-neighbour
  search by dot product (what Annoy approximates) stands in;
- SimilarityInfluence fails with a single layer in 0.8.0, so cases use two.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_influence  # noqa: E402

from captum.influence import NaiveInfluenceFunction, SimilarityInfluence, TracInCP, TracInCPFast, TracInCPFastRandProj  # noqa: E402
from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction  # noqa: E402
from captum.influence._utils.nearest_neighbors import NearestNeighbors  # noqa: E402

OUT = make_influence.OUT


def load(name):
    return torch.tensor(np.load(os.path.join(OUT, name + ".npy")))


def ckpt(model, i):
    return os.path.join(OUT, f"{model}_{i}.pt")


def module(model):
    m = {"mlp": lambda: make_influence.MLP(), "cnn": lambda: make_influence.CNN(), "sig": lambda: make_influence.MLP(3, True)}[model]()
    m.load_state_dict(torch.jit.load(ckpt(model, 2)).state_dict())
    return m


def loader(rates):
    def load_checkpoint(model, path):
        model.load_state_dict(torch.jit.load(path).state_dict())
        return rates.get(os.path.basename(path), 1.0)
    return load_checkpoint


class ExactNeighbours(NearestNeighbors):
    """Exact search by dot product: what Annoy's 'dot' index approximates."""

    def setup(self, data):
        self.data = data.reshape(len(data), -1)

    def get_nearest_neighbors(self, query, k):
        scores = query.reshape(len(query), -1) @ self.data.T
        values, indices = torch.topk(scores, k, dim=1)
        return indices, values


def listify(t):
    return t.detach().double().tolist()


def main():
    torch.set_default_dtype(torch.float32)
    data = {k: load(k) for k in ["train_x", "train_img", "train_y", "train_attr", "test_x", "test_img", "test_y", "test_attr"]}
    cases = []

    def dataset(model, split):
        x = data[f"{split}_img"] if model == "cnn" else data[f"{split}_x"]
        y = data[f"{split}_attr"] if model == "sig" else data[f"{split}_y"]
        return x, y

    def record(case, result):
        if isinstance(result, torch.Tensor):
            case["expected"] = {"scores": listify(result)}
        elif isinstance(result, dict):
            case["expected"] = {k: {"indices": v[0].tolist(), "scores": listify(v[1])} for k, v in result.items()}
        else:
            case["expected"] = {"indices": result[0].tolist(), "scores": listify(result[1])}
        cases.append(case)

    losses = {
        "crossEntropy": lambda r: nn.CrossEntropyLoss(reduction=r),
        "mse": lambda r: nn.MSELoss(reduction=r),
        "nll": lambda r: nn.NLLLoss(reduction=r),
        "bce": lambda r: nn.BCELoss(reduction=r),
    }

    def tracin(model, init, calls, rates=None, loss="crossEntropy", reduction="sum", sample_wise=False):
        """TracInCP; `init` in this project's names."""
        rates = rates or {}
        x, y = dataset(model, "train")
        tx, ty = dataset(model, "test")
        # Captum's per-example path needs reduction 'none'; its sample-wise path ('sum' or 'mean') covers Linear and Conv2d.
        loss_fn = losses[loss]("none" if not sample_wise else reduction)
        t = TracInCP(module(model), TensorDataset(x, y), [ckpt(model, i) for i in range(3)], loader(rates), layers=init.get("layers"),
                     loss_fn=loss_fn, batch_size=init.get("batchSize", 16), sample_wise_grads_per_batch=sample_wise)
        for call in calls:
            case = {"class": "TracInCP", "model": model, "checkpoints": [{"file": f"{model}_{i}.pt", "learningRate": rates.get(f"{model}_{i}.pt", 1.0)} for i in range(3)],
                    "init": dict(init, lossFn={"name": loss, "reduction": reduction} if reduction != "sum" else loss), "call": call}
            if call["method"] == "selfInfluence":
                record(case, t.self_influence())
            else:
                record(case, t.influence((tx, ty), k=call.get("k"), proponents=call.get("proponents", True), aggregate=call.get("aggregate", False)))

    # TracInCP on the MLP: every parameter and one layer; k both ways; aggregate; self-influence; learning rates.
    every = [{"method": "influence"}, {"method": "influence", "k": 3}, {"method": "influence", "k": 4, "proponents": False},
             {"method": "influence", "aggregate": True}, {"method": "influence", "aggregate": True, "k": 2}, {"method": "selfInfluence"}]
    tracin("mlp", {}, every)
    tracin("mlp", {"layers": ["fc2"]}, [{"method": "influence"}, {"method": "selfInfluence"}])
    tracin("mlp", {"layers": ["fc1"]}, [{"method": "influence", "k": 2, "proponents": False}], rates={"mlp_0.pt": 0.5, "mlp_1.pt": 0.25, "mlp_2.pt": 0.125})
    # The CNN: convolutions' closed forms.
    tracin("cnn", {}, [{"method": "influence"}, {"method": "influence", "k": 3}, {"method": "selfInfluence"}])
    tracin("cnn", {"layers": ["conv2"]}, [{"method": "influence"}])
    # Losses: MSE on one-hot targets with 'mean' (1/C of 'sum' per example), NLL, BCE on the sigmoid MLP.
    tracin("sig", {}, [{"method": "influence"}, {"method": "selfInfluence"}], loss="bce")
    tracin("sig", {}, [{"method": "influence"}], loss="mse", reduction="mean", sample_wise=True)
    tracin("mlp", {"layers": ["fc2"]}, [{"method": "influence"}], loss="nll")

    # TracInCPFast on the MLP's and CNN's final layer.
    for model, layer in [("mlp", "fc2"), ("cnn", "fc")]:
        x, y = dataset(model, "train")
        tx, ty = dataset(model, "test")
        f = TracInCPFast(module(model), layer, TensorDataset(x, y), [ckpt(model, i) for i in range(3)], loader({}),
                         loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=16)
        base = {"class": "TracInCPFast", "model": model, "fcLayer": layer, "checkpoints": [{"file": f"{model}_{i}.pt", "learningRate": 1.0} for i in range(3)],
                "init": {"lossFn": "crossEntropy", "batchSize": 16}}
        record(dict(base, call={"method": "influence"}), f.influence((tx, ty)))
        record(dict(base, call={"method": "influence", "k": 3, "proponents": False}), f.influence((tx, ty), k=3, proponents=False))
        record(dict(base, call={"method": "selfInfluence"}), f.self_influence())

    # TracInCPFastRandProj: with and without projection.
    for dim in [None, 9]:
        x, y = dataset("mlp", "train")
        tx, ty = dataset("mlp", "test")
        r = TracInCPFastRandProj(module("mlp"), "fc2", TensorDataset(x, y), [ckpt("mlp", i) for i in range(3)], loader({}),
                                 loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=16, nearest_neighbors=ExactNeighbours(),
                                 projection_dim=dim, seed=0)
        init = {"lossFn": "crossEntropy", "batchSize": 16, **({"projectionDim": dim} if dim else {}), "seed": 0}
        base = {"class": "TracInCPFastRandProj", "model": "mlp", "fcLayer": "fc2", "checkpoints": [{"file": f"mlp_{i}.pt", "learningRate": 1.0} for i in range(3)], "init": init}
        record(dict(base, call={"method": "influence", "k": None}), r.influence((tx, ty), k=None))
        record(dict(base, call={"method": "influence", "k": 4}), r.influence((tx, ty), k=4))

    # SimilarityInfluence: two layers (one fails in 0.8.0), cosine and euclidean.
    with tempfile.TemporaryDirectory() as tmp:
        for metric, direction, k in [("cosine", "max", 3), ("euclidean", "min", 2)]:
            from captum.influence._core.similarity_influence import cosine_similarity, euclidean_distance
            x, _ = dataset("cnn", "train")
            tx, _ = dataset("cnn", "test")
            s = SimilarityInfluence(module("cnn"), ["conv1", "fc"], TensorDataset(x), os.path.join(tmp, metric), model_id="cnn",
                                    similarity_metric=cosine_similarity if metric == "cosine" else euclidean_distance,
                                    similarity_direction=direction, batch_size=16)
            result = s.influence(tx, top_k=k)
            record({"class": "SimilarityInfluence", "model": "cnn", "layers": ["conv1", "fc"],
                    "init": {"similarityMetric": metric, "similarityDirection": direction, "batchSize": 16},
                    "call": {"method": "influence", "topK": k}}, {l: result[l] for l in ["conv1", "fc"]})

    # Influence functions on the MLP's last layer (51 parameters) at its last checkpoint.
    for cls, init in [("NaiveInfluenceFunction", {"projectionDim": 20}), ("ArnoldiInfluenceFunction", {"projectionDim": 10, "arnoldiDim": 30})]:
        x, y = dataset("mlp", "train")
        tx, ty = dataset("mlp", "test")
        kwargs = {"projection_dim": init["projectionDim"]}
        if cls == "ArnoldiInfluenceFunction":
            kwargs["arnoldi_dim"] = init["arnoldiDim"]
        C = NaiveInfluenceFunction if cls == "NaiveInfluenceFunction" else ArnoldiInfluenceFunction
        f = C(module("mlp"), TensorDataset(x, y), ckpt("mlp", 2), loader({}), layers=["fc2"], loss_fn=nn.CrossEntropyLoss(reduction="none"),
              batch_size=16, **kwargs)
        base = {"class": cls, "model": "mlp", "checkpoint": "mlp_2.pt", "init": dict(init, layers=["fc2"], lossFn="crossEntropy", batchSize=16)}
        record(dict(base, call={"method": "influence"}), f.influence((tx, ty)))
        record(dict(base, call={"method": "influence", "k": 3}), f.influence((tx, ty), k=3))
        record(dict(base, call={"method": "selfInfluence"}), f.self_influence())

    import captum
    with open(os.path.join(OUT, "references.json"), "w") as fh:
        json.dump({"captum": captum.__version__, "torch": torch.__version__, "cases": cases}, fh, indent=None)
        fh.write("\n")
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
