// Shards across machines on BullMQ (Redis): `explain --redis` enqueues one
// queue job per shard and waits for the shards' files; `worker` processes
// take shards. A worker that dies mid-shard loses its lock; another worker's
// stalled-job check puts the shard back in the queue, and since a shard's
// files are written by rename, a shard run twice still counts once.
import * as path from "path";
import { Queue, QueueEvents, Worker, Job, ConnectionOptions } from "bullmq";
import { TorchExplainError } from "../errors";
import { JobManifest, readManifest, runShard, shardFiles } from "./job";
import * as fs from "fs";
import * as net from "net";

export const DEFAULT_QUEUE = "torchexplain";

/** ioredis options from a redis:// or rediss:// URL (host, port, user, password, database). */
export function redisConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TorchExplainError(`redis: '${url}' is not a URL (expected redis://host:port[/db])`, "ERR_BAD_OPTION");
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new TorchExplainError(`redis: expected a redis:// or rediss:// URL; got '${url}'`, "ERR_BAD_OPTION");
  const db = u.pathname && u.pathname !== "/" ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname || "127.0.0.1",
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    tls: u.protocol === "rediss:" ? {} : undefined,
    maxRetriesPerRequest: null, // BullMQ's workers need blocking commands without a retry limit
  };
}

/**
 * Waits for a connection: fails at once when nothing listens there (ioredis
 * would retry for ever), or after `ms` without an answer.
 */
async function connected(client: { waitUntilReady(): Promise<unknown>; on(event: "error", f: (e: Error) => void): unknown; off(event: "error", f: (e: Error) => void): unknown }, url: string, ms = 10000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onError: ((e: Error) => void) | undefined;
  const fail = (why: string) => new TorchExplainError(`redis: cannot connect to ${url} (${why})`, "ERR_BAD_OPTION");
  const failed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(fail(`no answer within ${ms / 1000} s`)), ms);
    onError = (e: Error) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || /NOAUTH|WRONGPASS/.test(e.message)) reject(fail(e.message));
    };
    client.on("error", onError);
  });
  try {
    await Promise.race([client.waitUntilReady().catch((e) => Promise.reject(fail((e as Error).message))), failed]);
  } finally {
    clearTimeout(timer);
    client.off("error", onError!);
  }
}

/** One PING over a plain socket: a clear error at once when nothing answers (before BullMQ's clients, which retry for ever). */
export function probe(c: { host: string; port: number }, url: string, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(c.port, c.host);
    const fail = (why: string) => {
      sock.destroy();
      reject(new TorchExplainError(`redis: cannot connect to ${url} (${why})`, "ERR_BAD_OPTION"));
    };
    sock.setTimeout(ms, () => fail(`no answer within ${ms / 1000} s`));
    sock.once("error", (e) => fail(e.message));
    sock.once("connect", () => sock.write("PING\r\n"));
    // Any reply (+PONG, or -NOAUTH when a password is needed) shows a Redis server there.
    sock.once("data", () => {
      sock.destroy();
      resolve();
    });
  });
}

export interface ShardJobData {
  /** The job's folder (absolute; the same path on every machine). */
  out: string;
  shard: number;
  hash: string;
}

export interface DistributedOptions {
  redis: string;
  queue?: string;
  /** Called as shards finish (files seen), with the shard's result summary. */
  onShard?: (shard: number, start: number, end: number, ms: number, worker: string) => void;
  /** Called once the shards are in the queue. */
  onQueued?: (shards: number) => void;
  /** What the coordinator sees while it waits (no worker yet, a shard back in the queue), a line at a time. */
  onNote?: (line: string) => void;
  /** With no worker on the queue for this long, the queued shards are removed and the job fails (ms, default 300000). */
  workerTimeoutMs?: number;
  /** Attempts per shard before the job fails (default 3). */
  attempts?: number;
  pollMs?: number;
}

/**
 * Enqueues the shards still to do and waits until every shard's files exist.
 * Fails with the shard's error when a shard fails on its last attempt.
 */
export async function runDistributed(manifest: JobManifest, todo: number[], options: DistributedOptions): Promise<void> {
  const connection = redisConnection(options.redis);
  await probe(connection as { host: string; port: number }, options.redis);
  const name = options.queue ?? DEFAULT_QUEUE;
  const queue = new Queue<ShardJobData>(name, { connection });
  queue.on("error", () => undefined); // connection errors surface through the awaited calls
  // The queue's events: a worker that dies mid-shard is found by the others' stalled-job check (its lock lapses).
  const events = new QueueEvents(name, { connection });
  events.on("error", () => undefined);
  const out = path.resolve(manifest.spec.out);
  const run = `${manifest.hash}-${Date.now().toString(36)}`;
  const note = options.onNote ?? (() => undefined);
  try {
    await connected(queue, options.redis);
    await events.waitUntilReady();
    events.on("stalled", ({ jobId }) => {
      if (jobId.startsWith(`${run}-`)) note(`shard ${jobId.slice(run.length + 1)}: its worker stopped answering; back in the queue for another worker`);
    });
    const attempts = options.attempts ?? 3;
    const ids = new Map<number, string>();
    await queue.addBulk(
      todo.map((shard) => {
        const jobId = `${run}-${shard}`;
        ids.set(shard, jobId);
        return {
          name: "shard",
          data: { out, shard, hash: manifest.hash },
          opts: { jobId, attempts, backoff: { type: "fixed", delay: 500 }, removeOnComplete: true, removeOnFail: 1000 },
        };
      }),
    );
    options.onQueued?.(todo.length);
    const pending = new Set(todo);
    const removePending = async () => {
      for (const shard of pending) await queue.remove(ids.get(shard)!).catch(() => undefined);
    };
    // Stopped by a signal: its queued shards are taken back (a kill -9 leaves them for the workers; --resume keeps their files).
    const onSignal = (signal: NodeJS.Signals) => {
      note(`${signal}: removing ${pending.size} queued shards`);
      removePending().finally(() => {
        process.removeListener("SIGINT", onSignal).removeListener("SIGTERM", onSignal);
        process.kill(process.pid, signal);
      });
    };
    process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
    const hint = `torchexplain worker --redis ${options.redis}${options.queue ? ` --queue ${options.queue}` : ""}`;
    const timeout = options.workerTimeoutMs ?? 300000;
    let lastWorker = Date.now(), lastCheck = 0, lastNote = Date.now();
    try {
      while (pending.size > 0) {
        const check = Date.now() - lastCheck >= 1000; // the queue's state once a second; the files every poll
        if (check) lastCheck = Date.now();
        for (const shard of [...pending]) {
          const f = shardFiles(out, shard).json;
          if (fs.existsSync(f)) {
            pending.delete(shard);
            const r = JSON.parse(await fs.promises.readFile(f, "utf8"));
            options.onShard?.(shard, r.start, r.end, r.timeMs, r.worker);
            continue;
          }
          if (!check) continue;
          const job = await Job.fromId<ShardJobData>(queue, ids.get(shard)!);
          if (job && (await job.isFailed()) && job.attemptsMade >= attempts) {
            // The job has failed: its other shards would be work for nothing.
            pending.delete(shard);
            await removePending();
            throw new TorchExplainError(`shard ${shard} failed on the workers: ${job.failedReason}`, "ERR_NATIVE");
          }
        }
        if (check) {
          const workers = await queue.getWorkersCount();
          if (workers > 0) lastWorker = Date.now();
          else if (Date.now() - lastWorker >= timeout) {
            await removePending();
            throw new TorchExplainError(`no worker took shards from queue '${name}' for ${Math.round(timeout / 1000)} s; its ${pending.size} queued shards were removed (start one: ${hint}; then --resume)`, "ERR_ABORTED");
          } else if (Date.now() - lastNote >= 30000) {
            lastNote = Date.now();
            note(`no worker on queue '${name}' yet; waiting (start one: ${hint})`);
          }
        }
        if (pending.size > 0) await new Promise((r) => setTimeout(r, options.pollMs ?? 200));
      }
    } finally {
      process.removeListener("SIGINT", onSignal).removeListener("SIGTERM", onSignal);
    }
  } finally {
    await Promise.all([queue.close(), events.close()]);
  }
}

export interface WorkerOptions {
  redis: string;
  queue?: string;
  concurrency?: number;
  /** How long a shard's lock lasts without renewal (ms, default 30000): a dead worker's shard returns to the queue after this. */
  lockDuration?: number;
  /** How often stalled shards are looked for (ms, default 15000). */
  stalledInterval?: number;
  /** Times a shard may stall before it fails (default 2). */
  maxStalledCount?: number;
  log?: (line: string) => void;
}

/** Starts a worker taking shards from the queue; resolves to it once connected (close() stops it). */
export async function startWorker(options: WorkerOptions): Promise<Worker<ShardJobData>> {
  const log = options.log ?? (() => undefined);
  const connection = redisConnection(options.redis);
  await probe(connection as { host: string; port: number }, options.redis);
  const manifests = new Map<string, JobManifest>();
  const worker = new Worker<ShardJobData>(
    options.queue ?? DEFAULT_QUEUE,
    async (job) => {
      const { out, shard, hash } = job.data;
      let manifest = manifests.get(out);
      if (!manifest || manifest.hash !== hash) {
        manifest = await readManifest(out);
        if (manifest.hash !== hash) throw new TorchExplainError(`job: ${out}/job.json is another job than the queued shard's`, "ERR_BAD_OPTION");
        manifests.set(out, manifest);
      }
      if (fs.existsSync(shardFiles(out, shard).json)) {
        log(`shard ${shard} of ${out}: already done`);
        return { skipped: true };
      }
      log(`shard ${shard} of ${out}: started (attempt ${job.attemptsMade + 1})`);
      const r = await runShard(manifest, shard);
      log(`shard ${shard} of ${out}: done, rows ${r.start}-${r.end - 1} in ${r.timeMs} ms`);
      return { rows: r.end - r.start };
    },
    {
      connection,
      concurrency: options.concurrency ?? 1,
      lockDuration: options.lockDuration ?? 30000,
      stalledInterval: options.stalledInterval ?? 15000,
      maxStalledCount: options.maxStalledCount ?? 2,
      autorun: true,
    },
  );
  worker.on("failed", (job, err) => log(`shard ${job?.data.shard} of ${job?.data.out}: failed: ${err.message}`));
  worker.on("error", (err) => log(`worker error: ${err.message}`));
  try {
    await connected(worker, options.redis);
  } catch (e) {
    await worker.close(true).catch(() => undefined);
    throw e;
  }
  return worker;
}
