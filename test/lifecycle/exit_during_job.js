// Scenario (b): process.exit(3) while work is in flight. argv: KIND DELAY_MS
// - ig: a never-ending IG on the conv net, exit after DELAY_MS;
// - lime-callback: exit from inside the similarityFunc (its compute thread
//   waits for an answer that never comes);
// - lime-busy: Lime callbacks pile up behind a blocked JavaScript thread, then exit;
// - worker: a worker thread runs both kinds of job; the main thread exits;
// - all: every one of the above at once.
// The exit code must be exactly 3, with no signal.
"use strict";
const path = require("path");
const { Worker } = require("worker_threads");
const { load, mark, busy, sleep, startEndlessIG, startEndlessLime } = require("./common");
const [kind, delayArg] = process.argv.slice(2);
const delay = Number(delayArg ?? 100);

function startWorker(busyMs = 0) {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, "worker_job.js"), { workerData: { mode: "endless", busyMs } });
    w.on("message", (m) => m === "started" && resolve(w));
    w.on("error", reject);
  });
}

(async () => {
  if (kind === "ig" || kind === "all") {
    const { job } = await startEndlessIG();
    job.then(() => mark("ig resolved (unexpected)"), (e) => mark(`ig rejected ${e.code}`));
  }
  if (kind === "worker" || kind === "all") await startWorker(kind === "all" ? 50 : 0);
  if (kind === "lime-callback") {
    let calls = 0;
    const exitAt = 1 + (delay % 7);
    const { job } = await startEndlessLime(() => {
      if (++calls === exitAt) {
        mark(`exit from similarityFunc call ${calls}`);
        process.exit(3);
      }
      return 1;
    });
    job.catch(() => {});
    return; // the exit happens inside the callback
  }
  if (kind === "lime-busy" || kind === "all") {
    const { job } = await startEndlessLime();
    job.catch(() => {});
  }
  await sleep(delay);
  if (kind === "lime-busy" || kind === "all") busy(50);
  mark("exit");
  process.exit(3);
})().catch((e) => {
  mark(`error ${e && e.stack}`);
  process.exit(1);
});
