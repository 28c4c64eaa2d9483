// Fuzz: random option objects, shapes, dtypes, values and devices for every
// algorithm, and random paths and data for loadModel() and tensor(). The cases
// (test/fuzz/cases.js) run in a child process (test/fuzz/child.js, against
// dist/) watched from here: a case that kills the child (a signal or an
// abnormal exit) is a crash, one that runs past CASE_MS is a hang, one that
// takes the child past RSS_CAP is over memory; each is attributed to the case
// in flight and a fresh child goes on from the next case. The child reports
// each case's start and end as a JSON line on fd 3, written synchronously so
// that a crash cannot swallow it. A resolved result that is not Tensors of the
// documented shape with finite values, or a rejection that is not an Error
// with a message, fails the suite too ("malformed").
// Environment: FUZZ_SEED, FUZZ_CASES, FUZZ_ONLY=i (that case alone), FUZZ_CASE_MS,
// FUZZ_BUDGET_MS (no new case starts after it), FUZZ_REPORT=file (JSON of every outcome).
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as lib from "../lib";

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { makeCase, ALGORITHMS, EXTRA, LLM, FUNCTIONS } = require("./fuzz/cases");

const ROOT = path.join(__dirname, "..");
const CHILD = path.join(__dirname, "fuzz", "child.js");
const SEED = Number(process.env.FUZZ_SEED ?? 1);
const CASES = Number(process.env.FUZZ_CASES ?? 6000);
const ONLY = process.env.FUZZ_ONLY === undefined ? undefined : Number(process.env.FUZZ_ONLY);
const CASE_MS = Number(process.env.FUZZ_CASE_MS ?? 20_000);
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 150_000);
const RSS_CAP = 3 * 2 ** 30;
const STARTUP_MS = 60_000, EXIT_MS = 10_000;

interface Limits {
  caseMs: number;
  rssCap: number;
  deadline: number;
  env?: Record<string, string>;
}

type Verdict = "resolved" | "rejected" | "bad" | "crash" | "hang" | "memory";
interface Outcome {
  case: number; // -1: the child's exit, after its last case
  outcome: Verdict;
  message?: string;
  ms?: number;
}

const live = new Set<ChildProcess>();
let tmp = "";

function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone, or no /proc (the memory cap is Linux-only)
  }
}

/**
 * Runs cases [from, to) in one child until it finishes or dies; records every
 * outcome and resolves with the next case to run.
 */
function runChild(from: number, to: number, limits: Limits, record: (o: Outcome) => void): Promise<number> {
  const { caseMs, rssCap, deadline } = limits;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, String(SEED), String(from), String(to), String(deadline)], {
      cwd: ROOT,
      // The library's default memory budget (half the free memory) is set below
      // the watcher's cap, so that a case over the cap is the library's fault.
      env: { TORCHEXPLAIN_MEMORY_BUDGET: String(2 ** 30), ...process.env, ...limits.env, FUZZ_TMP: tmp, FUZZ_WATCH_STDIN: "1" },
      stdio: ["pipe", "ignore", "pipe", "pipe"],
    });
    live.add(child);
    const spawned = Date.now();
    let ready = false, doneAt = 0, inFlight: number | null = null, started = 0, next = from, ended = 0;
    let verdict: { outcome: Verdict; message: string } | null = null, stderr = "", buf = "";
    const kill = (outcome: Verdict, message: string) => {
      if (verdict) return;
      verdict = { outcome, message };
      child.kill("SIGKILL");
    };
    const handle = (line: string) => {
      if (verdict) return; // killed: the case in flight keeps the verdict
      let ev: { ready?: boolean; done?: boolean; start?: boolean; case?: number; outcome?: Verdict; message?: string; ms?: number };
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      if (ev.ready) ready = true;
      else if (ev.done) doneAt = Date.now();
      else if (ev.start) [inFlight, started] = [ev.case!, Date.now()];
      else if (ev.outcome) {
        record({ case: ev.case!, outcome: ev.outcome, message: ev.message, ms: ev.ms });
        [inFlight, next, ended] = [null, ev.case! + 1, ended + 1];
      }
    };
    child.stdio[3]!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let k; (k = buf.indexOf("\n")) >= 0; buf = buf.slice(k + 1)) handle(buf.slice(0, k));
    });
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const watch = setInterval(() => {
      const now = Date.now();
      if (inFlight !== null && now - started > caseMs) kill("hang", `no result after ${caseMs} ms`);
      else if (!ready && now - spawned > STARTUP_MS) kill("hang", "child did not start");
      else if (doneAt && now - doneAt > EXIT_MS) kill("hang", `did not exit within ${EXIT_MS} ms of its last case`);
      else if (child.pid && rss(child.pid) > rssCap) kill("memory", `RSS over ${rssCap / 2 ** 20} MiB`);
    }, 100);
    // 'close' comes after the exit and after every line the child wrote has been read.
    child.on("close", (code, signal) => {
      clearInterval(watch);
      live.delete(child);
      if (!ready) return reject(new Error(`fuzz child failed to start (${signal ?? code}): ${stderr}`));
      const tail = stderr.trim().split("\n").slice(-3).join(" | ");
      const how = verdict ? verdict.message : `${signal ? `signal ${signal}` : `exit code ${code}`}${tail ? `: ${tail}` : ""}`;
      const outcome = verdict ? verdict.outcome : "crash";
      if (doneAt && !verdict && code === 0) return resolve(next);
      if (inFlight !== null) {
        // Work a previous case left running could be the cause: FUZZ_ONLY=<case> tells.
        record({ case: inFlight, outcome, message: `${how} (${ended ? `after ${ended} cases in the same child` : "first case of its child"})` });
        return resolve(inFlight + 1);
      }
      // Died between cases: after its last case (exit) or before the first one started.
      record({ case: doneAt ? -1 : next, outcome, message: `${how} (${doneAt ? "at exit" : "between cases"})` });
      resolve(doneAt ? to : next + 1);
    });
  });
}

/** Runs cases [first, end), a fresh child after each one that dies, until done or past the deadline. */
async function runAll(first: number, end: number, limits: Limits): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (let next = first; next < end && Date.now() < limits.deadline; ) next = await runChild(next, end, limits, (o) => outcomes.push(o));
  return outcomes;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-fuzz-"));
  try {
    execFileSync("mkfifo", [path.join(tmp, "fifo.pt")]); // loadModel() on a FIFO nobody writes to
  } catch {
    // no mkfifo: that case then sees a missing file
  }
});

afterAll(() => {
  for (const child of live) child.kill("SIGKILL");
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("the fuzz cases cover every exported algorithm class", () => {
  const abstract = ["Attribution", "LayerMethod", "NeuronMethod"];
  const exported = Object.entries(lib)
    .filter(([name, v]) => typeof v === "function" && typeof (v as { prototype?: { attribute?: unknown } }).prototype?.attribute === "function" && !abstract.includes(name))
    .map(([name]) => name);
  expect(exported.filter((name) => !(name in ALGORITHMS) && !(name in EXTRA) && !(name in LLM))).toEqual([]);
  // The attacks and metrics are fuzzed too.
  for (const name of Object.keys(EXTRA)) expect(typeof (lib as Record<string, unknown>)[name]).toBe("function");
  expect(FUNCTIONS).toEqual(expect.arrayContaining(["loadModel", "tensor"]));
  expect(fs.existsSync(path.join(ROOT, "dist", "index.js"))).toBe(true); // the children run the compiled library
});

test("the watcher attributes a crash, an abnormal exit, a hang and a memory blow-up to the case in flight, and goes on", async () => {
  const selftest = { crash: 1, exit: 3, hang: 4, memory: 6 };
  const limits = { caseMs: 4000, rssCap: 768 * 2 ** 20, deadline: Date.now() + 60_000, env: { FUZZ_SELFTEST: JSON.stringify(selftest) } };
  const outcomes = await runAll(0, 8, limits);
  const verdicts = outcomes.map((o) => `${o.case}:${["resolved", "rejected"].includes(o.outcome) ? "ok" : o.outcome}`);
  expect(verdicts).toEqual(["0:ok", "1:crash", "2:ok", "3:crash", "4:hang", "5:ok", "6:memory", "7:ok"]);
  expect(outcomes[1].message).toMatch(/SIGSEGV/);
  expect(outcomes[3].message).toMatch(/exit code 7/);
  expect(live.size).toBe(0); // every child was reaped
}, 90_000);

test(
  `fuzz: ${ONLY === undefined ? `${CASES} cases` : `case ${ONLY}`} from seed ${SEED}, each in a watched child process`,
  async () => {
    const [first, end] = ONLY === undefined ? [0, CASES] : [ONLY, ONLY + 1];
    const t0 = Date.now();
    const outcomes = await runAll(first, end, { caseMs: CASE_MS, rssCap: RSS_CAP, deadline: t0 + BUDGET_MS });

    const count = (v: Verdict) => outcomes.filter((o) => o.outcome === v).length;
    const ran = outcomes.filter((o) => o.case >= 0).length;
    const failures = outcomes
      .filter((o) => !["resolved", "rejected"].includes(o.outcome))
      .map((o) => {
        const c = o.case >= 0 ? makeCase(SEED, o.case) : null;
        return `${o.outcome}: ${c ? `#${o.case} ${c.label} {${c.desc.join("; ")}}` : "child exit"}: ${o.message}`;
      });
    const seconds = ((Date.now() - t0) / 1000).toFixed(0);
    const summary =
      `fuzz: ${ran} cases, ${count("resolved")} resolved, ${count("rejected")} rejected, ${count("crash")} crashes, ` +
      `${count("hang")} hangs, ${count("memory")} over memory` +
      (count("bad") ? `, ${count("bad")} malformed results or rejections` : "") +
      ` (seed ${SEED}, ${seconds} s${ran < end - first ? `; time budget spent after ${ran} of ${end - first}` : ""})`;
    const more = failures.length > 40 ? [`... ${failures.length - 40} more (FUZZ_REPORT=file.json writes them all)`] : [];
    console.log([summary, ...failures.slice(0, 40), ...more].join("\n"));
    if (process.env.FUZZ_REPORT) fs.writeFileSync(process.env.FUZZ_REPORT, JSON.stringify({ seed: SEED, summary, failures, outcomes }, null, 1));
    // Reproduce one: FUZZ_SEED=<seed> FUZZ_ONLY=<case> npx jest test/fuzz.test.ts
    const totals = { crashes: count("crash"), hangs: count("hang"), overMemory: count("memory"), malformed: count("bad") };
    expect({ ...totals, first: failures.slice(0, 20) }).toEqual({ crashes: 0, hangs: 0, overMemory: 0, malformed: 0, first: [] });
  },
  BUDGET_MS + CASE_MS + 60_000,
);
