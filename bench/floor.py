#!/usr/bin/env python3
"""The benchmarks' independent floor: the same bare passes as an attribution,
run by PyTorch itself on the same TorchScript file (Debian's python3-torch).

Reads a JSON list of passes from stdin, each
  {"model": path, "rows": [{"file": raw little-endian data, "shape": [...], "dtype": "float32"|"int64"}],
   "target": int, "chunk": rows per pass (0 = all), "backward": bool, "threads": int, "seconds": float}
and prints one JSON list of seconds per round (the fastest round), in order.
A round runs forward (and backward: the gradient of output[:, target] with
respect to the rows, or to the first parameter when the rows are integers)
over all rows, `chunk` rows at a time.
"""
import json
import sys
import time

import numpy as np
import torch


def load_rows(spec):
    dtype = {"float32": np.float32, "int64": np.int64}[spec["dtype"]]
    return torch.from_numpy(np.fromfile(spec["file"], dtype=dtype).reshape(spec["shape"]))


def one_round(model, rows, target, chunk, backward):
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


def measure(spec):
    torch.set_num_threads(spec["threads"])
    model = torch.jit.load(spec["model"]).eval()
    rows = [load_rows(r) for r in spec["rows"]]
    run = lambda: one_round(model, rows, spec["target"], spec["chunk"], spec["backward"])
    for _ in range(3):
        run()
    best, spent = float("inf"), 0.0
    while spent < spec["seconds"]:
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


if __name__ == "__main__":
    print(json.dumps([measure(s) for s in json.load(sys.stdin)]))
