// Scenario (c): two worker threads run attributions at once (and the main
// thread too); every one finishes, the workers' results agree with each
// other and with the main thread's, and the process ends on its own (exit 0).
"use strict";
const path = require("path");
const { Worker } = require("worker_threads");
const { T, mark } = require("./common");

function run(rounds) {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, "worker_job.js"), { workerData: { mode: "work", rounds } });
    w.on("message", (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
    w.on("error", reject);
    w.on("exit", (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
}

function compare(a, b, name) {
  if (a.length !== b.length) throw new Error(`${name}: ${a.length} values vs ${b.length}`);
  const scale = Math.max(1, ...b.map(Math.abs));
  a.forEach((v, i) => {
    if (!(Math.abs(v - b[i]) <= 1e-5 * scale)) throw new Error(`${name}[${i}]: ${v} vs ${b[i]}`);
  });
}

(async () => {
  const [one, two, mine] = await Promise.all([
    run(3),
    run(3),
    (async () => {
      const toy = await T.loadModel(path.join(__dirname, "../fixtures/golden/toy.pt"));
      return Array.from((await new T.Saliency(toy).attribute(T.tensor([[1, 2, 3]]), { target: 0 })).data());
    })(),
  ]);
  for (const k of ["saliency", "ig", "ablation", "forward"]) compare(one[k], two[k], k);
  compare(one.saliency, mine, "saliency (main thread)");
  if (JSON.stringify(one.limeShape) !== "[2,8]" || JSON.stringify(two.limeShape) !== "[2,8]") throw new Error(`lime shapes ${one.limeShape} ${two.limeShape}`);
  mark("both finished");
  process.exitCode = 0;
})().catch((e) => {
  mark(`error ${e && e.stack}`);
  process.exitCode = 1;
});
