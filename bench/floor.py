#!/usr/bin/env python3
"""The benchmarks' independent floor: the same bare passes as an attribution,
run by PyTorch itself on the same TorchScript file (Debian's python3-torch).

A small server so that the bench can time it in alternation with the engine
(a noisy spell on the machine then hits both sides). One JSON request per
line on stdin, one JSON reply per line on stdout:
  {"load": k, "threads": int, "passes": [pass, ...]}  -> {"ok": k}
  {"run": k}                                           -> {"seconds": s}
where a pass is
  {"model": path, "rows": [{"file": raw little-endian data, "shape": [...], "dtype": "float32"|"int64"}],
   "target": int, "chunk": rows per pass (0 = all), "backward": bool}
"run" times one round of workload k: every pass's forward (and backward: the
gradient of output[:, target] with respect to the rows, or to the first
parameter when the rows are integers) over all its rows, `chunk` rows at a time.
"""
import json
import sys
import time

import numpy as np
import torch


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


def main():
    models, workloads = {}, {}
    for line in sys.stdin:
        req = json.loads(line)
        if "load" in req:
            torch.set_num_threads(req["threads"])
            passes = []
            for p in req["passes"]:
                if p["model"] not in models:
                    models[p["model"]] = torch.jit.load(p["model"]).eval()
                rows = [load_rows(r) for r in p["rows"]]
                passes.append(lambda m=models[p["model"]], r=rows, p=p: one_pass(m, r, p["target"], p["chunk"], p["backward"]))
            workloads[req["load"]] = passes
            reply = {"ok": req["load"]}
        else:
            t0 = time.perf_counter()
            for run in workloads[req["run"]]:
                run()
            reply = {"seconds": time.perf_counter() - t0}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
