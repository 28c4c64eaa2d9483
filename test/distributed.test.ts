// Shards across processes on a real Redis (BullMQ): two `torchexplain worker`
// processes, one killed with SIGKILL in the middle of a shard; the job still
// completes, every example once, equal to the single-machine run, and the
// killed worker's shard is finished by the other worker. The test starts its
// own redis-server (Debian's package, installed with apt-get when missing) on
// a free port, with no persistence, and stops it after.
import { spawn, spawnSync, ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { loadNpy, saveNpy, tensor } from "../lib";
import { ensureDist } from "./dist";

const root = path.join(__dirname, "..");
const bin = path.join(root, "bin", "torchexplain.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-dist-"));
const REDIS = "/usr/bin/redis-server";
const children: ChildProcess[] = [];
let redis: ChildProcess | undefined;
let url = "";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("error", () => resolve(false));
    c.once("connect", () => c.write("PING\r\n"));
    c.once("data", (d) => {
      c.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
  });
}

/** A child process whose output lines are kept and can be waited for. */
function start(args: string[]) {
  const child = spawn(process.execPath, [bin, ...args], { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onData = (d: Buffer) => {
    for (const line of d.toString().split("\n").filter(Boolean)) {
      lines.push(line);
      for (const w of [...waiters]) {
        const m = line.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // The first line from line `from` on that matches, now or later.
  const waitFor = (re: RegExp, ms = 30000, from = 0) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const hit = lines.slice(from).map((l) => l.match(re)).find(Boolean);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${lines.join("\n")}`)), ms);
      waiters.push({ re, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  return { child, lines, exited, waitFor };
}

beforeAll(async () => {
  if (!fs.existsSync(REDIS)) {
    // Debian's redis-server; apt's index may be empty on a fresh machine.
    let r = spawnSync("apt-get", ["install", "-y", "redis-server"], { encoding: "utf8" });
    if (r.status !== 0) {
      spawnSync("apt-get", ["update"], { encoding: "utf8" });
      r = spawnSync("apt-get", ["install", "-y", "redis-server"], { encoding: "utf8" });
    }
    if (r.status !== 0) throw new Error(`apt-get install redis-server failed:\n${r.stderr}`);
  }
  const port = await freePort();
  redis = spawn(REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"], { stdio: "ignore" });
  for (let i = 0; i < 100 && !(await ping(port)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await ping(port))) throw new Error(`redis-server did not answer on port ${port}`);
  url = `redis://127.0.0.1:${port}`;
  ensureDist();
  // 16 images for the benchmark conv net.
  const n = 16, per = 3 * 32 * 32;
  await saveNpy(path.join(tmp, "images.npy"), tensor(Float32Array.from({ length: n * per }, (_, i) => Math.abs(Math.sin(i * 0.37))), [n, 3, 32, 32]));
}, 180000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  if (redis && redis.exitCode === null) {
    const gone = new Promise((r) => redis!.once("exit", r));
    redis.kill("SIGTERM");
    await gone;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const job = (out: string) => [
  "explain", "--model", path.join(root, "models", "bench_convnet.pt"), "--method", "IntegratedGradients", "--inputs", "images.npy",
  "--out", out, "--target", "predicted", "--options", '{"nSteps": 256, "internalBatchSize": 128}', "--shard-size", "2",
];

test("two workers, one killed mid-shard: complete, each example once, equal to one machine", async () => {
  // The single-machine run (no Redis): the reference.
  const local = start(job("local"));
  expect(await local.exited).toBe(0);

  const queue = `q${Date.now()}`;
  const workerArgs = ["worker", "--redis", url, "--queue", queue, "--lock-duration", "2000", "--stalled-interval", "1000"];
  const a = start(workerArgs);
  const b = start(workerArgs);
  await Promise.all([a.waitFor(/ready on/), b.waitFor(/ready on/)]);
  const explain = start([...job("distributed"), "--redis", url, "--queue", queue]);

  // Kill worker A as soon as it has begun a shard (after its first, so that it is warm and mid-work).
  await a.waitFor(/shard \d+ of .*: done/);
  const [, killedShard] = await a.waitFor(/shard (\d+) of [^:]*: started/, 30000, a.lines.findIndex((l) => /: done,/.test(l)));
  const startedByA = a.lines.filter((l) => / started/.test(l)).length;
  a.child.kill("SIGKILL");
  await a.exited;
  const doneByA = a.lines.filter((l) => /: done,/.test(l)).map((l) => Number(/shard (\d+)/.exec(l)![1]));
  expect(doneByA).not.toContain(Number(killedShard)); // killed before finishing it
  expect(startedByA).toBeGreaterThan(doneByA.length);

  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([explain.exited, new Promise((r) => (timer = setTimeout(() => r("timeout"), 60000)))]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`explain exited ${code}:\n${explain.lines.join("\n")}\nworker A:\n${a.lines.join("\n")}\nworker B:\n${b.lines.join("\n")}`);

  // The coordinator said so, and workers' lines carry their time.
  expect(explain.lines).toContainEqual(expect.stringMatching(new RegExp(`^shard ${killedShard}: its worker stopped answering; back in the queue`)));
  expect(b.lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[worker \d+\] ready on/);

  // The killed shard was taken up again and finished by worker B.
  const shardJson = JSON.parse(fs.readFileSync(path.join(tmp, "distributed", "shards", `shard-${killedShard.padStart(6, "0")}.json`), "utf8"));
  expect(shardJson.worker).toMatch(new RegExp(`:${b.child.pid}$`));
  expect(b.lines.some((l) => new RegExp(`shard ${killedShard} of .*: started`).test(l))).toBe(true);

  // Complete, each example once, equal to the single-machine run.
  const index = JSON.parse(fs.readFileSync(path.join(tmp, "distributed", "index.json"), "utf8"));
  expect(index.examples.map((e: { index: number }) => e.index)).toEqual(Array.from({ length: 16 }, (_, i) => i));
  const localIndex = JSON.parse(fs.readFileSync(path.join(tmp, "local", "index.json"), "utf8"));
  expect(index.examples.map((e: { target: number }) => e.target)).toEqual(localIndex.examples.map((e: { target: number }) => e.target));
  const d = Array.from((await loadNpy(path.join(tmp, "distributed", "attributions.npy"))).data() as Float32Array);
  const l = Array.from((await loadNpy(path.join(tmp, "local", "attributions.npy"))).data() as Float32Array);
  expect(d.length).toBe(16 * 3 * 32 * 32);
  const scale = Math.max(...l.map(Math.abs));
  for (let i = 0; i < l.length; i++) expect(Math.abs(d[i] - l[i])).toBeLessThanOrEqual(1e-4 * Math.abs(l[i]) + 1e-5 * scale);
  // No temporary files are left among the shards.
  expect(fs.readdirSync(path.join(tmp, "distributed", "shards")).filter((f) => !/^shard-\d{6}\.(npy|json)$/.test(f))).toEqual([]);

  b.child.kill("SIGTERM");
  expect(await b.exited).toBe(0);
}, 120000);

test("a Redis that does not answer is one clear line", async () => {
  const port = await freePort();
  const r = start([...job("noredis"), "--redis", `redis://127.0.0.1:${port}`]);
  const code = await r.exited;
  expect(code).not.toBe(0);
  expect(r.lines).toEqual([expect.stringMatching(/^torchexplain: redis: cannot connect to redis:\/\/127\.0\.0\.1:\d+ \(connect ECONNREFUSED/)]);
}, 30000);

test("with no worker the coordinator says how to start one, gives up after --worker-timeout, and a stopped coordinator takes its shards back", async () => {
  const { Queue } = await import("bullmq");
  const u = new URL(url);
  const waiting = async (name: string) => {
    const q = new Queue(name, { connection: { host: u.hostname, port: Number(u.port) } });
    try {
      return await q.getJobCounts("waiting", "active", "delayed", "prioritized");
    } finally {
      await q.close();
    }
  };
  const none = { waiting: 0, active: 0, delayed: 0, prioritized: 0, paused: 0 };

  const q1 = `nobody${Date.now()}`;
  const r = start([...job("noworker"), "--redis", url, "--queue", q1, "--worker-timeout", "2"]);
  await r.waitFor(/8 shards queued/);
  expect(r.lines[0]).toContain(`(torchexplain worker --redis ${url} --queue ${q1})`);
  expect(await r.exited).toBe(1);
  expect(r.lines[r.lines.length - 1]).toMatch(new RegExp(`^torchexplain: no worker took shards from queue '${q1}' for 2 s; its 8 queued shards were removed \\(start one: torchexplain worker --redis ${url} --queue ${q1}; then --resume\\)$`));
  expect(await waiting(q1)).toEqual(none);

  const q2 = `stopped${Date.now()}`;
  const c = start([...job("stopped"), "--redis", url, "--queue", q2]);
  await c.waitFor(/8 shards queued/);
  expect((await waiting(q2)).waiting).toBe(8);
  c.child.kill("SIGTERM");
  await c.exited;
  expect(c.lines).toContain("SIGTERM: removing 8 queued shards");
  expect(await waiting(q2)).toEqual(none);
}, 60000);
