// Memory over many calls of every method family on real networks:
// torchvision's resnet18 (batch norm folded into rewritten copies, residual
// adds) and a transformer text classifier, from scripts/make_zoo.py (run by
// the test set-up, scripts/bootstrap.js). test/leak/real_leak_child.js runs
// ROUNDS rounds of one call per family in a process of its own.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as T from "../lib";

const ZOO = path.join(__dirname, "fixtures", "zoo");
const ROUNDS = 60, WARM = 20;
// Growth (MiB) from round 20 to round 60, 40 rounds of 17 calls. The leak
// this guards against (a graph copy rebuilt and kept per call) grew 6 MiB a
// round here (~250 MiB over these rounds); measured now: 1-4 MiB.
const GROWTH_MIB = 40;

test("every family on resnet18 and a transformer: RSS flat over 1,020 calls", () => {
  for (const f of ["resnet18.pt", "transformer.pt"])
    if (!fs.existsSync(path.join(ZOO, f))) throw new Error(`${path.join(ZOO, f)} is missing: run npm test (its set-up makes the zoo with scripts/make_zoo.py)`);
  const r = spawnSync(process.execPath, ["--expose-gc", path.join(__dirname, "leak", "real_leak_child.js")], {
    encoding: "utf8",
    env: { ...process.env, LEAK_ROUNDS: String(ROUNDS), LEAK_WARM: String(WARM) },
    timeout: 240_000,
    maxBuffer: 256 << 20, // LibTorch may warn per call (NNPACK on some CPUs)
  });
  expect({ status: r.status, signal: r.signal, error: r.status === 0 ? "" : r.stderr.slice(-2000) }).toEqual({ status: 0, signal: null, error: "" });
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  for (const [kind, how] of Object.entries(out.calls)) expect({ kind, how }).toEqual({ kind, how: { resolved: ROUNDS } });
  // 11 families on resnet18, 6 on the transformer (which LibTorch 1.13 cannot load).
  expect(Object.keys(out.calls).length).toBe(Number(T.buildInfo().libtorch.split(".")[0]) >= 2 ? 17 : 11);
  const growth = out.rss.end - out.rss.warm;
  if (!(growth < GROWTH_MIB)) throw new Error(`RSS grew ${growth.toFixed(1)} MiB from round ${WARM} to ${ROUNDS} (bound ${GROWTH_MIB}): ${JSON.stringify(out.rss)}`);
}, 300_000);
