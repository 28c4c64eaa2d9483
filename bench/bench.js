#!/usr/bin/env node
// npm run bench: times attribution calls against two floors, the same bare
// forward/backward passes of the model (same rows per pass):
// - engine: run natively by torchexplain's core with none of its machinery,
//   timed in alternation with the attribution so that a noisy spell hits both;
// - PyTorch: run by Debian's python3-torch on the same TorchScript file
//   (bench/reference.py), when it is installed: a floor that owes nothing to the
//   engine, timed in the same alternation;
// and, when python3 can import captum (PYTHONPATH), the same call through Captum.
// Prints a Markdown table (the README's figures). BENCH_ONLY="a|b" runs the rows whose names contain a or b.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn, spawnSync } = require("child_process");
// Two processes timed in alternation on a few cores: OpenMP workers that spin
// after their parallel regions would steal the other side's cores. Set before
// LibTorch loads (the python floor inherits it).
process.env.OMP_WAIT_POLICY ??= "PASSIVE";
const tx = require("../dist");
const { native } = require("../dist/native");
const { llmWork } = require("./llm");
const { influenceWork } = require("./influence");
const { throughputWork, round, percentile } = require("./throughput");

const MODELS = path.join(__dirname, "..", "models");
const filled = (n, f) => Float32Array.from({ length: n }, (_, i) => f(i));
const fmt = (s) => (s >= 0.1 ? `${(s * 1e3).toFixed(0)} ms` : s >= 0.001 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(0)} µs`);
const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}×` : "—");

// Several functions timed in alternation, each as its fastest call over the
// rounds. A function that returns a number has timed itself (the native floor).
async function timeTogether(fns, { seconds = 2, rounds = 6, warmup = 3 } = {}) {
  for (const f of fns) for (let i = 0; i < warmup; i++) await f();
  const best = fns.map(() => Infinity);
  const all = fns.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (const [k, f] of fns.entries()) {
      let calls = 0, elapsed = 0;
      const start = process.hrtime.bigint();
      while (calls < 2 || elapsed < seconds / rounds) {
        const t0 = process.hrtime.bigint();
        const v = await f();
        const dt = typeof v === "number" ? v : Number(process.hrtime.bigint() - t0) / 1e9;
        best[k] = Math.min(best[k], dt);
        all[k].push(dt);
        calls++;
        elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      }
    }
  // The median call too: what a stream of calls sees, not only the luckiest one.
  best.median = all.map((xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
  return best;
}

// BENCH_PYTHON: the python whose torch (and Captum, on PYTHONPATH) the floor and
// the Captum column run on (default Debian's python3-torch); BENCH_DEVICE: the
// device torchexplain runs on (scripts/gpu-check: "cuda"; the python columns
// stay on the CPU and are left out then).
const PYTHON = process.env.BENCH_PYTHON || "/usr/bin/python3";
const DEVICE = process.env.BENCH_DEVICE || "cpu";
const pythonHas = (modules, python = PYTHON, env = process.env) => spawnSync(python, ["-c", `import ${modules}`], { stdio: "ignore", env }).status === 0;
const versionOf = (mod, python = PYTHON, env = process.env) =>
  (spawnSync(python, ["-c", `import ${mod}; print(${mod}.__version__.split("+")[0])`], { encoding: "utf8", env }).stdout || "").trim();
// BENCH_ALSO="<python>:<Captum checkout>": a second Captum beside the first, in
// its own python process (Captum 0.7 on torch 1.13 beside 0.8 on 2.13, say);
// the speed-up is then over the faster of the two.
function secondCaptum() {
  if (!process.env.BENCH_ALSO || DEVICE !== "cpu") return null;
  const [python, captumPath] = process.env.BENCH_ALSO.split(":");
  const env = { ...process.env, PYTHONPATH: captumPath || "" };
  if (!pythonHas("torch, numpy, captum.attr", python, env)) {
    console.error(`  (BENCH_ALSO: ${python} cannot import torch, numpy and captum from ${captumPath}: no second Captum column)`);
    return null;
  }
  return { python, env, name: `Captum ${versionOf("captum", python, env)} (torch ${versionOf("torch", python, env)})` };
}

// Floor passes: rows (float32 or int64 tensors), the target column, rows per
// pass (0: all), backward or forward only; several passes add up.
function pass(file, rows, { target = 0, chunk = 0, backward = true } = {}) {
  return { model: path.join(MODELS, file), rows, target, chunk, backward };
}

// The same call through Captum (reference.py's "captum" request): its class, the
// model file, the inputs and Captum's keyword arguments (tensors as tensors).
function captum(cls, file, inputs, kwargs = {}, extra = {}) {
  return { cls, model: path.join(MODELS, file), inputs, kwargs, method: "attribute", ...extra };
}

// bench/reference.py as a server: load a workload's passes (or Captum call) once,
// then time one round per request (python times itself; the pipe is not counted).
function pythonReference(python = PYTHON, env = process.env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-bench-"));
  const child = spawn(python, ["-W", "ignore", path.join(__dirname, "reference.py")], { stdio: ["pipe", "pipe", "inherit"], env });
  const waiting = [];
  let buffered = "";
  child.stdout.on("data", (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift().resolve(JSON.parse(line));
    }
  });
  child.on("exit", (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`bench/floor.py exited with ${code}`));
  });
  const ask = (req) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    child.stdin.write(JSON.stringify(req) + "\n");
  });
  let files = 0;
  const rows = (t) => {
    const file = path.join(dir, `rows${files++}.bin`);
    fs.writeFileSync(file, Buffer.from(t.data().buffer));
    return { file, shape: t.shape, dtype: t.dtype };
  };
  const tensorsToRows = (kwargs) => Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [k, v instanceof tx.Tensor ? { rows: rows(v) } : v]));
  return {
    load: (k, threads, passes) => ask({ load: k, threads, passes: passes.map((p) => ({ ...p, rows: p.rows.map(rows) })) }),
    loadCaptum: (k, threads, call) =>
      call.llm || call.influence || call.service ? ask({ load: k, threads, llm: call.llm, influence: call.influence, service: call.service }) : ask({ load: k, threads, captum: { ...call, inputs: call.inputs.map(rows), kwargs: tensorsToRows(call.kwargs) } }),
    run: async (k) => (await ask({ run: k })).seconds,
    close: () => {
      child.stdin.end();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main() {
  const info = tx.buildInfo();
  const threads = tx.configure().threads;
  console.log(`torchexplain benchmarks — LibTorch ${info.libtorch}, ${DEVICE === "cpu" ? "CPU" : DEVICE}, ${os.cpus().length} cores, ${threads} threads per worker, node ${process.version}\n`);
  const models = {};
  for (const f of ["bench_convnet.pt", "bench_resnet.pt", "bench_textcnn.pt", "bench_mlp.pt"]) models[f] = await tx.loadModel(path.join(MODELS, f), { device: DEVICE });
  const img = (n) => tx.tensor(filled(n * 3 * 32 * 32, (i) => Math.sin(i * 0.37)), [n, 3, 32, 32]);
  const conv = models["bench_convnet.pt"], res = models["bench_resnet.pt"], text = models["bench_textcnn.pt"], mlp = models["bench_mlp.pt"];
  const x8 = img(8), x16 = img(16), x4 = img(4);
  const tokens = tx.tensor(BigInt64Array.from({ length: 8 * 128 }, (_, i) => BigInt((i * 7919) % 2000)), [8, 128]);
  const mlpX = tx.tensor(filled(64, Math.sin), [1, 64]);
  const groups16 = tx.tensor(Int32Array.from({ length: 64 }, (_, i) => i % 16), [1, 64], "int64");
  const superpixels = tx.tensor(Int32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.floor((i % 1024) / 256) * 4 + Math.floor((i % 32) / 8)), [1, 3, 32, 32], "int64");
  const refs10 = tx.tensor(filled(10 * 3 * 32 * 32, (i) => Math.cos(i) * 0.1), [10, 3, 32, 32]);
  const intRows = (n) => tx.tensor(BigInt64Array.from({ length: n * 128 }, (_, i) => BigInt((i * 7919) % 2000)), [n, 128]);

  // name, the attribution call, its floor passes, and the same call through Captum.
  const C = captum, win = { sliding_window_shapes: [3, 8, 8], strides: [3, 4, 4] };
  const work = [
    ["IG, conv net, batch 8, 50 steps", () => new tx.IntegratedGradients(conv).attribute(x8, { target: 3 }), [pass("bench_convnet.pt", [img(400)], { target: 3 })],
      C("IntegratedGradients", "bench_convnet.pt", [x8], { target: 3 })],
    ["IG, conv net, batch 8, 50 steps, internalBatchSize 50", () => new tx.IntegratedGradients(conv).attribute(x8, { target: 3, internalBatchSize: 50 }), [pass("bench_convnet.pt", [img(400)], { target: 3, chunk: 50 })],
      C("IntegratedGradients", "bench_convnet.pt", [x8], { target: 3, internal_batch_size: 50 })],
    ["Occlusion, conv net, batch 8, window 3×8×8, stride 3×4×4, 16 per eval", () => new tx.Occlusion(conv).attribute(x8, { target: 3, slidingWindowShapes: [3, 8, 8], strides: [3, 4, 4], perturbationsPerEval: 16 }),
      [pass("bench_convnet.pt", [img(392)], { chunk: 128, backward: false }), pass("bench_convnet.pt", [x8], { backward: false })],
      C("Occlusion", "bench_convnet.pt", [x8], { target: 3, ...win, perturbations_per_eval: 16 })],
    ["IG, residual net, batch 16, 32 steps", () => new tx.IntegratedGradients(res).attribute(x16, { target: 3, nSteps: 32 }), [pass("bench_resnet.pt", [img(512)], { target: 3 })],
      C("IntegratedGradients", "bench_resnet.pt", [x16], { target: 3, n_steps: 32 })],
    ["IG, residual net, batch 16, 32 steps, internalBatchSize 64", () => new tx.IntegratedGradients(res).attribute(x16, { target: 3, nSteps: 32, internalBatchSize: 64 }), [pass("bench_resnet.pt", [img(512)], { target: 3, chunk: 64 })],
      C("IntegratedGradients", "bench_resnet.pt", [x16], { target: 3, n_steps: 32, internal_batch_size: 64 })],
    ["GradientShap, residual net, batch 16, 10 references, 20 samples", () => new tx.GradientShap(res).attribute(x16, { target: 3, baselines: refs10, nSamples: 20 }), [pass("bench_resnet.pt", [img(320)], { target: 3 })],
      C("GradientShap", "bench_resnet.pt", [x16], { target: 3, baselines: refs10, n_samples: 20 })],
    ["NoiseTunnel(Saliency), conv net, batch 8, 25 samples", () => new tx.NoiseTunnel(new tx.Saliency(conv)).attribute(x8, { target: 3, nSamples: 25, stdevs: 0.1 }), [pass("bench_convnet.pt", [img(200)], { target: 3 })],
      C("NoiseTunnel", "bench_convnet.pt", [x8], { target: 3, nt_samples: 25, stdevs: 0.1 }, { inner: "Saliency" })],
    ["DeepLift, residual net, batch 16", () => new tx.DeepLift(res).attribute(x16, { target: 3, baselines: 0 }), [pass("bench_resnet.pt", [img(32)], { target: 3 })],
      C("DeepLift", "bench_resnet.pt", [x16], { target: 3, baselines: 0 })],
    ["LayerGradCam, residual net, layer3, batch 16", () => new tx.LayerGradCam(res, "layer3").attribute(x16, { target: 3 }), [pass("bench_resnet.pt", [x16], { target: 3 })],
      C("LayerGradCam", "bench_resnet.pt", [x16], { target: 3 }, { layer: "layer3" })],
    ["LayerIntegratedGradients, text CNN embedding, 8×128 tokens, 32 steps", () => new tx.LayerIntegratedGradients(text, "embedding").attribute(tokens, { target: 1, nSteps: 32 }), [pass("bench_textcnn.pt", [intRows(256)], { target: 1 })],
      C("LayerIntegratedGradients", "bench_textcnn.pt", [tokens], { target: 1, n_steps: 32 }, { layer: "embedding" })],
    ["Occlusion, residual net, batch 4, window 3×8×8, stride 3×4×4", () => new tx.Occlusion(res).attribute(x4, { target: 3, slidingWindowShapes: [3, 8, 8], strides: [3, 4, 4] }),
      [pass("bench_resnet.pt", [img(196)], { backward: false }), pass("bench_resnet.pt", [x4], { backward: false })],
      C("Occlusion", "bench_resnet.pt", [x4], { target: 3, ...win })],
    ["FeatureAblation, conv net, batch 8, 16 superpixels, 16 per eval", () => new tx.FeatureAblation(conv).attribute(x8, { target: 3, featureMask: superpixels, perturbationsPerEval: 16 }),
      [pass("bench_convnet.pt", [img(128)], { backward: false }), pass("bench_convnet.pt", [x8], { backward: false })],
      C("FeatureAblation", "bench_convnet.pt", [x8], { target: 3, feature_mask: superpixels, perturbations_per_eval: 16 })],
    ["LRP epsilon, conv net, batch 8", () => new tx.LRP(conv).attribute(x8, { target: 3 }), [pass("bench_convnet.pt", [x8], { target: 3 })],
      C("LRP", "bench_convnet.pt", [x8], { target: 3 })],
    ["PGD, conv net, batch 8, 10 steps", () => new tx.PGD(conv).perturb(x8, { target: 3, radius: 0.1, stepSize: 0.02, stepNum: 10 }), [pass("bench_convnet.pt", [img(80)], { target: 3, chunk: 8 })],
      C("PGD", "bench_convnet.pt", [x8], { target: 3, radius: 0.1, step_size: 0.02, step_num: 10 }, { method: "perturb" })],
    ["infidelity, conv net, batch 8, 10 samples", () => tx.infidelity(conv, { type: "gaussian", stdev: 0.01 }, x8, x8, { target: 3, nPerturbSamples: 10 }),
      [pass("bench_convnet.pt", [img(80)], { backward: false }), pass("bench_convnet.pt", [x8], { backward: false })],
      C(null, "bench_convnet.pt", [x8], { target: 3, n_perturb_samples: 10, stdev: 0.01 }, { method: "infidelity" })],
    ["IG, MLP 64-32-10, batch 1, 50 steps", () => new tx.IntegratedGradients(mlp).attribute(mlpX, { target: 1 }), [pass("bench_mlp.pt", [tx.tensor(filled(50 * 64, Math.sin), [50, 64])], { target: 1 })],
      C("IntegratedGradients", "bench_mlp.pt", [mlpX], { target: 1 })],
    ["FeatureAblation, MLP, 64 features", () => new tx.FeatureAblation(mlp).attribute(mlpX, { target: 1 }),
      [pass("bench_mlp.pt", [tx.tensor(filled(64 * 64, Math.sin), [64, 64])], { backward: false }), pass("bench_mlp.pt", [mlpX], { backward: false })],
      C("FeatureAblation", "bench_mlp.pt", [mlpX], { target: 1 })],
    ["ShapleyValueSampling, MLP, 16 groups, 25 samples", () => new tx.ShapleyValueSampling(mlp).attribute(mlpX, { target: 1, featureMask: groups16 }),
      [pass("bench_mlp.pt", [tx.tensor(filled(400 * 64, Math.sin), [400, 64])], { backward: false }), pass("bench_mlp.pt", [mlpX], { backward: false })],
      C("ShapleyValueSampling", "bench_mlp.pt", [mlpX], { target: 1, feature_mask: groups16 })],
    ["KernelShap, MLP, 16 groups, 200 samples", () => new tx.KernelShap(mlp).attribute(mlpX, { target: 1, featureMask: groups16, nSamples: 200 }),
      [pass("bench_mlp.pt", [tx.tensor(filled(200 * 64, Math.sin), [200, 64])], { backward: false }), pass("bench_mlp.pt", [mlpX], { backward: false })],
      C("KernelShap", "bench_mlp.pt", [mlpX], { target: 1, feature_mask: groups16, n_samples: 200 })],
    ["Lime, MLP, 16 groups, 200 samples", () => new tx.Lime(mlp).attribute(mlpX, { target: 1, featureMask: groups16, nSamples: 200 }),
      [pass("bench_mlp.pt", [tx.tensor(filled(200 * 64, Math.sin), [200, 64])], { backward: false }), pass("bench_mlp.pt", [mlpX], { backward: false })],
      C("Lime", "bench_mlp.pt", [mlpX], { target: 1, feature_mask: groups16, n_samples: 200 })],
  ];
  // PyTorch's floor (and Captum): a python3 process timed in the same alternation.
  const py = DEVICE === "cpu" && pythonHas("torch, numpy") ? pythonReference() : null;
  const only = (rows) => rows.filter(([name]) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split("|").some((s) => name.includes(s)));
  if (DEVICE === "cpu" && (!process.env.BENCH_ONLY || process.env.BENCH_ONLY.includes("LLM"))) work.push(...(await llmWork(tx, PYTHON)));
  if (DEVICE === "cpu" && (!process.env.BENCH_ONLY || process.env.BENCH_ONLY.includes("TracIn"))) work.push(...(await influenceWork(tx, PYTHON, models)));
  work.splice(0, work.length, ...only(work));
  const withCaptum = py && pythonHas("captum.attr");
  const torchVersion = py ? versionOf("torch") : "", captumVersion = withCaptum ? versionOf("captum") : "";
  const captumName = withCaptum ? `Captum ${captumVersion} (torch ${torchVersion})` : "";
  const second = withCaptum ? secondCaptum() : null;
  const also = second ? pythonReference(second.python, second.env) : null;
  if (py) console.log(`PyTorch floor and Captum: ${PYTHON}, torch ${torchVersion}${withCaptum ? `, captum ${captumVersion}` : ""}\n`);
  if (!py) console.error(DEVICE === "cpu" ? `  (${PYTHON} cannot import torch: no PyTorch floor)` : `  (on ${DEVICE}: no PyTorch floor or Captum column, which run on the CPU)`);
  else if (!withCaptum) console.error(`  (${PYTHON} cannot import captum: no Captum column; PYTHONPATH=<a Captum checkout> adds it)`);
  // The last column is a speed-up: Captum's time over torchexplain's (above 1 is faster).
  // Rows are printed as they are measured (a full run with Captum takes a while).
  const captumColumns = withCaptum ? ` ${[captumName, ...(second ? [second.name] : [])].join(" | ")} | speed-up over ${second ? "the faster Captum" : "Captum"} |` : "";
  console.log(`| workload | time (best) | median call | ÷ engine floor | ÷ PyTorch floor |${captumColumns}`);
  console.log(`| --- | ---: | ---: | ---: | ---: |${withCaptum ? ` ---: |${second ? " ---: |" : ""} ---: |` : ""}`);
  for (const [k, [name, run, rowsPasses, call, timing]] of work.entries()) {
    // No floor where the passes depend on the method's sampling (ShapleyValueSampling's coalitions).
    const passes = rowsPasses || [];
    // The engine's floor: every pass through the bare model, natively.
    const engineFloor = () =>
      passes.reduce((sum, p) => sum + (p.rows[0].dtype === "int64" || !models[path.basename(p.model)] ? NaN : native.benchFloor(models[path.basename(p.model)].native, p.rows.map((r) => r.native), p.target, p.chunk, 1, p.backward)), passes.length ? 0 : NaN);
    const fns = [run, engineFloor];
    if (py && passes.length) {
      await py.load(`floor${k}`, threads, passes);
      fns.push(() => py.run(`floor${k}`));
    }
    if (withCaptum) {
      await py.loadCaptum(`captum${k}`, threads, call);
      fns.push(() => py.run(`captum${k}`));
    }
    // The second Captum only where it has the method (LLM and influence classes are new in 0.8).
    const alsoHere = also && !call.llm && !call.influence;
    if (alsoHere) {
      await also.loadCaptum(`captum${k}`, threads, call);
      fns.push(() => also.run(`captum${k}`));
    }
    // Rows whose Captum calls take seconds (LLM, influence) ask for fewer rounds.
    const times = await timeTogether(fns, timing ?? {});
    const [t, floor] = times;
    const pyFloor = py && passes.length ? times[2] : undefined;
    const captumTimes = withCaptum ? times.slice(times.length - (alsoHere ? 2 : 1)) : [];
    const fastest = Math.min(...captumTimes);
    const r = { name, t, median: times.median[0], floor: Number.isNaN(floor) ? 0 : floor, pyFloor };
    console.error(`  ${name}: ${fmt(t)} (engine floor ${Number.isNaN(floor) ? "—" : fmt(floor)}, PyTorch floor ${pyFloor ? fmt(pyFloor) : "—"}, Captum ${captumTimes.map(fmt).join(" / ") || "—"})`);
    const captumCells = withCaptum ? ` ${[...captumTimes.map(fmt), ...(also && !alsoHere ? ["—"] : [])].join(" | ")} | ${ratio(fastest, r.t)} |` : "";
    console.log(`| ${r.name} | ${fmt(r.t)} | ${fmt(r.median)} | ${ratio(r.t, r.floor)} | ${r.pyFloor ? ratio(r.t, r.pyFloor) : "—"} |${captumCells}`);
  }
  await throughput(models, py, withCaptum, threads);
  if (py) py.close();
  if (also) also.close();
}

// Server throughput: N requests at once against the same N one at a time, and a
// Python service answering them one Captum call each; best of 6 rounds, alternated.
async function throughput(models, py, withCaptum, threads) {
  const rows = throughputWork(tx, models).filter(([name]) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split("|").some((s) => name.includes(s)));
  if (!rows.length) return;
  console.log(`\n| server throughput | requests/s | p50 latency | p99 latency | one at a time, requests/s |${withCaptum ? " Captum service, requests/s | speed-up over Captum |" : ""}`);
  console.log(`| --- | ---: | ---: | ---: | ---: |${withCaptum ? " ---: | ---: |" : ""}`);
  for (const [k, [name, send, call]] of rows.entries()) {
    if (withCaptum) await py.loadCaptum(`service${k}`, threads, call);
    const n = 64;
    let best = null, sequential = Infinity, captumTime = Infinity;
    await round(send); // warm-up
    for (let r = 0; r < 6; r++) {
      const c = await round(send);
      if (!best || c.seconds < best.seconds) best = c;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const out = await send(i);
        (Array.isArray(out) ? out : [out]).forEach((t) => t && t.dispose && t.dispose());
      }
      sequential = Math.min(sequential, Number(process.hrtime.bigint() - t0) / 1e9);
      if (withCaptum) captumTime = Math.min(captumTime, await py.run(`service${k}`));
    }
    const rps = n / best.seconds;
    console.error(`  ${name}: ${rps.toFixed(0)} requests/s (one at a time ${(n / sequential).toFixed(0)}, Captum ${withCaptum ? (n / captumTime).toFixed(0) : "—"})`);
    console.log(`| ${name} | ${rps.toFixed(0)} | ${fmt(percentile(best.latencies, 50) / 1e3)} | ${fmt(percentile(best.latencies, 99) / 1e3)} | ${(n / sequential).toFixed(0)} |${withCaptum ? ` ${(n / captumTime).toFixed(0)} | ${ratio(rps, n / captumTime)} |` : ""}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
