// Native memory over many calls: test/leak/leak_child.js makes 5,000 mixed
// calls (Saliency, IG with few steps, FeatureAblation, model.forward, tensor
// creation and reading; IG aborted mid-run, before it starts and by
// timeoutMs) on small models, in a process of its own run with --expose-gc
// so that its RSS is this work's alone and collections can be forced.
import { spawnSync } from "child_process";
import * as path from "path";

const CALLS = 5000, WARM = 1000, DISPOSED = 1000;

// Bounds (MiB). Growth from the warm-up (1,000 calls) to the end (5,000),
// 4,000 calls: 30 MiB is 7.7 KiB per call, while each resolving call holds
// at least 16 KiB of input and result tensors (and the aborted IGs expand
// to 400 rows), so leaking any of them would pass the bound; the rest is room
// for allocator fragmentation (measured growth here: 1-5 MiB).
const GROWTH_MIB = 30;
// After 1,000 more calls in which every input, result and model (reloaded
// every 100 calls) is disposed explicitly, RSS must not grow beyond noise.
const DISPOSED_GROWTH_MIB = 10;

test("5,000 mixed calls do not grow RSS; dispose() returns native memory at once", () => {
  const r = spawnSync(process.execPath, ["--expose-gc", path.join(__dirname, "leak", "leak_child.js")], {
    encoding: "utf8",
    env: { ...process.env, LEAK_CALLS: String(CALLS), LEAK_WARM: String(WARM), LEAK_DISPOSED: String(DISPOSED) },
    timeout: 120_000,
  });
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: "" });
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  const report = JSON.stringify(out);

  // Every call ended as it should: no other errors.
  const per = (CALLS + DISPOSED) / 8; // both phases cycle through the 8 kinds
  for (const kind of ["saliency", "ig", "ablation", "forward", "tensor"]) expect({ kind, calls: out.calls[kind] }).toEqual({ kind, calls: { resolved: per } });
  expect(out.calls["ig-preaborted"]).toEqual({ aborted: per });
  for (const kind of ["ig-abort", "ig-timeout"]) {
    const { resolved = 0, aborted = 0, ...other } = out.calls[kind];
    expect({ kind, other }).toEqual({ kind, other: {} });
    expect(resolved + aborted).toBe(per);
    expect(aborted).toBeGreaterThan(0);
  }

  const growth = out.rss.end - out.rss.warm;
  if (!(growth < GROWTH_MIB)) throw new Error(`RSS grew ${growth.toFixed(1)} MiB from call ${WARM} to call ${CALLS} (bound ${GROWTH_MIB}): ${report}`);
  const afterDispose = out.rss.disposed - out.rss.end;
  if (!(afterDispose < DISPOSED_GROWTH_MIB))
    throw new Error(`RSS grew ${afterDispose.toFixed(1)} MiB over ${DISPOSED} calls that dispose everything (bound ${DISPOSED_GROWTH_MIB}): ${report}`);

  // 10 tensors of 40 MiB: really allocated, and freed by dispose() without a
  // collection (the one 40 MiB source array stays alive in JavaScript).
  expect(out.big.held - out.big.before).toBeGreaterThan(350);
  if (!(out.big.after - out.big.before < 40 + 20))
    throw new Error(`after disposing 400 MiB of tensors RSS is still ${(out.big.after - out.big.before).toFixed(0)} MiB above where it was: ${report}`);
}, 150_000);
