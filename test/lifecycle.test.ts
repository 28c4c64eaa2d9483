// Process and thread life cycle: scripts in test/lifecycle/ (CommonJS, on the
// compiled library in dist/) each run as a child process, many times, with
// varying timings. Whatever is in flight when a script ends, calls
// process.exit(), or terminates a worker, the process must end with the
// script's exit code and no signal (no crash in LibTorch or Node teardown),
// print what the script expects, and end soon after exit() is called.
// LIFECYCLE_RUNS=k multiplies the number of runs (default 1).
import { spawn } from "child_process";
import * as path from "path";

const DIR = path.join(__dirname, "lifecycle");
const SCALE = Number(process.env.LIFECYCLE_RUNS ?? 1);
const PARALLEL = 2; // the machine's cores
// Exits race teardown against compute threads: more processes than cores
// make the interleavings vary more (a rare crash showed up this way).
const PARALLEL_EXIT = 4;
const RUN_TIMEOUT_MS = 60_000;
// From process.exit() to the process being gone: requests stop within one
// chunk (milliseconds here), so seconds mean teardown waited on something.
const EXIT_MS = 5_000;

interface Run {
  args: string[];
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  exitMs?: number; // from the script's "exit" line to the end of the process
  timedOut: boolean;
}

function runScript(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, [path.join(DIR, args[0]), ...args.slice(1)], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "", exitAt: number | undefined, timedOut = false;
    child.stdout.on("data", (d) => {
      stdout += d;
      if (exitAt === undefined && /^exit/m.test(stdout)) exitAt = Date.now();
    });
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, RUN_TIMEOUT_MS);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      const end = Date.now();
      resolve({ args, status, signal, stdout, stderr, ms: end - start, exitMs: exitAt === undefined ? undefined : end - exitAt, timedOut });
    });
  });
}

/** Runs every argument list, `parallel` at a time; resolves with the runs in order. */
async function runAll(list: string[][], parallel = PARALLEL): Promise<Run[]> {
  const out: Run[] = new Array(list.length);
  let next = 0;
  const lane = async () => {
    while (next < list.length) {
      const i = next++;
      out[i] = await runScript(list[i]);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return out;
}

// Signs of a crash that an exit code alone could hide.
const CRASH = /Segmentation fault|terminate called|Assertion .* failed|FATAL ERROR|core dumped|double free|corrupted|\bAborted\b|libc\+\+abi|pure virtual/;

/**
 * Checks every run: exit code, no signal, no timeout, no crash text on
 * stderr, the lines the script must print; returns one description per bad run.
 */
function verdicts(runs: Run[], expected: { status: number; lines?: RegExp[]; exitWithinMs?: number }): string[] {
  const bad: string[] = [];
  for (const r of runs) {
    const problems: string[] = [];
    if (r.timedOut) problems.push(`still running after ${RUN_TIMEOUT_MS} ms (killed)`);
    if (r.signal !== null) problems.push(`killed by signal ${r.signal}`);
    if (r.status !== expected.status) problems.push(`exit code ${r.status}, expected ${expected.status}`);
    if (CRASH.test(r.stderr)) problems.push("crash message on stderr");
    if (/^error /m.test(r.stdout)) problems.push("the script reported an error");
    for (const line of expected.lines ?? []) if (!line.test(r.stdout)) problems.push(`no line matching ${line}`);
    if (expected.exitWithinMs !== undefined && r.exitMs !== undefined && r.exitMs > expected.exitWithinMs)
      problems.push(`took ${r.exitMs} ms to end after process.exit() (limit ${expected.exitWithinMs} ms)`);
    if (problems.length)
      bad.push(
        `node ${r.args.join(" ")} (${r.ms} ms): ${problems.join("; ")}\n  stdout: ${r.stdout.trim().slice(-600)}\n  stderr: ${r.stderr.trim().slice(-1200)}`,
      );
  }
  return bad;
}

const times = (n: number) => Array.from({ length: Math.max(1, Math.round(n * SCALE)) }, (_, i) => i);

test("(a) Lime with similarityFunc and attributions with onProgress; the script ends after or while they run", async () => {
  const runs = await runAll([
    ...times(5).map(() => ["end_normally.js", "after"]),
    ...times(5).map(() => ["end_normally.js", "while"]),
  ]);
  const lines = [/^lime 3,8 calls=240$/m, /^ablation 2,1,8,8 progress=1$/m, /^ig 2,1,8,8$/m, /^end$/m];
  expect(verdicts(runs, { status: 0, lines }).join("\n\n")).toBe("");
}, 180_000);

test("(b) process.exit(3) during a long IG, a Lime job waiting on its callback, or a worker's jobs: exit code 3, no signal", async () => {
  const runs = await runAll([
    ...times(6).map((i) => ["exit_during_job.js", "ig", String(i * 50)]),
    ...times(4).map((i) => ["exit_during_job.js", "lime-callback", String(i)]),
    ...times(4).map((i) => ["exit_during_job.js", "lime-busy", String(i * 60)]),
    ...times(16).map((i) => ["exit_during_job.js", "worker", String((i % 5) * 50)]),
    ...times(2).map((i) => ["exit_during_job.js", "all", String(50 + i * 100)]),
  ], PARALLEL_EXIT);
  expect(verdicts(runs, { status: 3, lines: [/^exit/m], exitWithinMs: EXIT_MS }).join("\n\n")).toBe("");
}, 240_000);

test("(c) two worker threads (and the main thread) compute at once; all finish with equal results", async () => {
  const runs = await runAll(times(6).map(() => ["two_workers.js"]));
  expect(verdicts(runs, { status: 0, lines: [/^both finished$/m] }).join("\n\n")).toBe("");
}, 180_000);

test("(d) a worker terminated mid-job, then a new worker: no crash, both work, exit code 0", async () => {
  const runs = await runAll([
    ...times(5).map((i) => ["terminate_worker.js", String(i * 50), "0"]),
    ...times(5).map((i) => ["terminate_worker.js", String(i * 50), "300"]),
  ], PARALLEL_EXIT);
  expect(verdicts(runs, { status: 0, lines: [/^terminated$/m, /^new worker finished$/m, /^main finished$/m] }).join("\n\n")).toBe("");
}, 180_000);

test("(e) long jobs nobody awaits, process.exitCode = 0 and a natural exit: they finish, exit code 0", async () => {
  const runs = await runAll([...times(3).map(() => ["unhandled_job.js", "plain"]), ...times(3).map(() => ["unhandled_job.js", "exitcode-first"])]);
  expect(verdicts(runs, { status: 0, lines: [/^end of script$/m, /^ig done$/m, /^lime done$/m] }).join("\n\n")).toBe("");
}, 180_000);
