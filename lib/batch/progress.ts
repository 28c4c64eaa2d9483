// Progress of a batch job on stderr: a bar with rate and ETA on a terminal
// (redrawn at most every 100 ms), one line per finished shard otherwise (logs).
export class Progress {
  private done = 0;
  private shardsDone = 0;
  private readonly started = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly shards: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    alreadyDone = { rows: 0, shards: 0 },
  ) {
    this.tty = !!stream.isTTY;
    this.done = alreadyDone.rows;
    this.shardsDone = alreadyDone.shards;
    this.initial = alreadyDone.rows;
  }
  private readonly initial: number;

  private rate(): number {
    const s = (Date.now() - this.started) / 1000;
    return s > 0 ? (this.done - this.initial) / s : 0;
  }

  private eta(): string {
    if (this.done >= this.total) return seconds(0);
    const r = this.rate();
    if (r <= 0) return "?";
    return seconds((this.total - this.done) / r);
  }

  /** Rows finished inside a shard (the bar moves; logs wait for the shard). */
  rows(n: number): void {
    this.done += n;
    if (this.tty) this.draw();
  }

  /** A whole shard finished (rows counted unless already reported by rows()). */
  shard(index: number, start: number, end: number, ms: number, countRows: boolean, note = ""): void {
    this.shardsDone++;
    if (countRows) this.done += end - start;
    if (this.tty) this.draw(true);
    else
      this.stream.write(
        `shard ${index + 1}/${this.shards} (rows ${start}-${end - 1}) done in ${seconds(ms / 1000)}${note}; ` +
          `${this.done}/${this.total} examples, ${this.rate().toFixed(1)}/s, ETA ${this.eta()}\n`,
      );
  }

  private draw(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 30;
    const filled = this.total ? Math.round((width * this.done) / this.total) : width;
    this.stream.write(
      `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${this.done}/${this.total} examples, shard ${this.shardsDone}/${this.shards}, ` +
        `${this.rate().toFixed(1)}/s, ETA ${this.eta()}   `,
    );
  }

  finish(): void {
    if (this.tty) {
      this.draw(true);
      this.stream.write("\n");
    }
  }
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
