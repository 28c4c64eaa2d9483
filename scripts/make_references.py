#!/usr/bin/env python3
"""Reference LRP relevances for rule combinations the golden cases do not cover,
computed by a direct implementation of each rule's formula on the golden MLP
(fc1 -> relu -> fc2 -> relu -> fc3). Run with Debian's python3-torch:
/usr/bin/python3 scripts/make_references.py (writes test/fixtures/references/).

Rules, for a linear layer z = W a + b with relevance R at its output and s = R / z'
(z' the rule's output, stabilised by eps with sign(0) = +1):
- epsilon: z' = W a + b; R_in = a * (s W)
- gamma:   W' = W + gamma * max(W, 0), bias kept: z' = W' a + b; R_in = a * (s W')
- alpha1beta0 (bias dropped or kept): W' = max(W, 0)
- zplus:   z' = W+ a+ + W- a- (no bias); R_in = a+ * (s W+) + a- * (s W-)
- zbox:    z' = W a - W+ l - W- h (no bias); R_in = a * (s W) - l * (s W+) - h * (s W-)
Activations pass relevance on; the result is scaled by the target output.
"""
import json
import math
import os

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def lrp(model, x, target, rules, eps=1e-9):
    layers = [model.fc1, model.fc2, model.fc3]
    acts, a = [], x
    for i, layer in enumerate(layers):
        acts.append(a)
        z = torch.nn.functional.linear(a, layer.weight, layer.bias)
        a = torch.relu(z) if i < 2 else z
    out = a[:, target]
    R = torch.zeros_like(a)
    R[:, target] = 1.0
    for i in reversed(range(3)):
        W, b, act = layers[i].weight, layers[i].bias, acts[i]
        rule = rules[i]
        kind = rule["rule"]
        e = rule.get("epsilon", eps)
        pos, neg = W.clamp(min=0), W.clamp(max=0)
        if kind == "zplus":
            ap, an = act.clamp(min=0), act.clamp(max=0)
            z = ap @ pos.T + an @ neg.T
        elif kind == "zbox":
            lo = torch.full_like(act, rule["low"])
            hi = torch.full_like(act, rule["high"])
            z = act @ W.T - lo @ pos.T - hi @ neg.T
        else:
            if kind == "gamma":
                W2 = W + rule.get("gamma", 0.25) * pos
            elif kind == "alpha1beta0":
                W2 = pos
            else:
                W2 = W
            b2 = torch.zeros_like(b) if rule.get("setBiasToZero") else b
            z = act @ W2.T + b2
        s = R / (z + e * torch.where(z >= 0, 1.0, -1.0))
        if kind == "zplus":
            R = ap * (s @ pos) + an * (s @ neg)
        elif kind == "zbox":
            R = act * (s @ W) - lo * (s @ pos) - hi * (s @ neg)
        else:
            R = act * (s @ W2)
    return R * out[:, None]


def main():
    model = torch.jit.load(os.path.join(ROOT, "test", "fixtures", "golden", "mlp.pt"))
    x = torch.tensor([math.sin(i * 0.9) * 1.5 for i in range(24)], dtype=torch.float32).view(3, 8)
    cases = []
    combos = {
        "gamma everywhere": [{"rule": "gamma", "gamma": 0.25}] * 3,
        "alpha1beta0, bias kept and dropped": [{"rule": "epsilon"}, {"rule": "alpha1beta0"}, {"rule": "alpha1beta0", "setBiasToZero": True}],
        "zbox, zplus, epsilon 0.01": [{"rule": "zbox", "low": -2.0, "high": 2.0}, {"rule": "zplus"}, {"rule": "epsilon", "epsilon": 0.01}],
    }
    for name, rules in combos.items():
        with torch.no_grad():
            r = lrp(model, x, 1, rules)
        cases.append({"name": name, "rules": dict(zip(["fc1", "fc2", "fc3"], rules)), "target": 1,
                      "expected": [round(v, 7) for v in r.flatten().tolist()]})
    out = os.path.join(ROOT, "test", "fixtures", "references")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lrp_rules_mlp.json"), "w") as f:
        json.dump({"model": "golden/mlp.pt", "input": {"shape": [3, 8], "data": x.flatten().tolist()}, "cases": cases}, f, indent=1)
    print("wrote lrp_rules_mlp.json")


if __name__ == "__main__":
    main()
