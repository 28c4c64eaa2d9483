// Rows of arrays too large to read whole: a .npy file, or a member of a .npz
// archive, read a range of rows at a time (stored members and .npy files
// from their offset; deflated members by inflating forward, restarting when
// asked for earlier rows).
import * as fs from "fs";
import * as zlib from "zlib";
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import { NpyDType, NpyHeader, npyToTensor, npyValues, parseNpyHeader, zipEntries, ZipEntry } from "./npy";

function bad(what: string, message: string): TorchExplainError {
  return new TorchExplainError(`${what}: ${message}`, "ERR_BAD_OPTION");
}

const SIZE: Record<NpyDType, number> = { float32: 4, float64: 8, int32: 4, int64: 8, bool: 1, uint8: 1 };

/** Sequential bytes of a byte source, read on demand. */
interface ByteSource {
  /** `length` bytes from `position` (relative to the source's start), valid until the next read. */
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

class FileBytes implements ByteSource {
  // One buffer reused from read to read: its bytes are copied into a tensor
  // before the next read, and a chunk's worth of garbage per read piled up
  // (900 MB over a 586 MB file) where the garbage collector ran late.
  private scratch = new ArrayBuffer(0);
  constructor(private readonly fd: fs.promises.FileHandle, private readonly start: number, private readonly what: string) {}
  async read(position: number, length: number): Promise<Buffer> {
    if (this.scratch.byteLength < length) this.scratch = new ArrayBuffer(length);
    const out = Buffer.from(this.scratch, 0, length); // memory of its own, not Node's pool: aligned
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fd.read(out, done, length - done, this.start + position + done);
      if (bytesRead === 0) throw bad(this.what, `truncated: ${length} bytes wanted at offset ${position}, the file ends first`);
      done += bytesRead;
    }
    return out;
  }
  async close() {}
}

/** A deflated zip member: inflated forward from its start, restarted when an earlier position is asked for. */
class InflatedBytes implements ByteSource {
  private position = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private iterator: AsyncIterator<Buffer> | null = null;
  private stream: zlib.InflateRaw | null = null;
  constructor(private readonly path: string, private readonly start: number, private readonly size: number, private readonly what: string) {}

  private restart() {
    this.stream?.destroy();
    const raw = fs.createReadStream(this.path, { start: this.start, end: Math.max(this.start, this.start + this.size - 1), highWaterMark: 1 << 20 });
    this.stream = raw.pipe(zlib.createInflateRaw());
    raw.on("error", (e) => this.stream?.destroy(e));
    this.iterator = this.stream[Symbol.asyncIterator]();
    this.position = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }

  private async take(n: number): Promise<Buffer> {
    while (this.pendingBytes < n) {
      const next = await this.iterator!.next();
      if (next.done) throw bad(this.what, "truncated: the archive member ends before the rows asked for");
      this.pending.push(next.value);
      this.pendingBytes += next.value.length;
    }
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    this.position += n;
    return Buffer.from(out);
  }

  async read(position: number, length: number): Promise<Buffer> {
    if (!this.iterator || position < this.position) this.restart();
    if (position > this.position) await this.take(position - this.position);
    return this.take(length);
  }
  async close() {
    this.stream?.destroy();
    this.stream = null;
  }
}

/** An array read a range of rows (first-dimension entries) at a time. */
export class RowReader {
  private constructor(
    private readonly bytes: ByteSource,
    private readonly header: NpyHeader,
    private readonly fd: fs.promises.FileHandle,
    /** What the reader reads, for messages. */
    readonly what: string,
  ) {}

  /** The array's shape; shape[0] rows. */
  get shape(): number[] {
    return this.header.shape;
  }
  get dtype(): NpyDType {
    return this.header.dtype;
  }
  get rows(): number {
    return this.header.shape[0] ?? 0;
  }
  /** Bytes of one row. */
  get rowBytes(): number {
    return this.header.shape.slice(1).reduce((a, b) => a * b, 1) * SIZE[this.header.dtype];
  }

  /** Opens a .npy file, or the member `key` of a .npz archive (`file.npz`, key). */
  static async open(path: string, key?: string): Promise<RowReader> {
    const what = key === undefined ? `'${path}'` : `'${path}' [${key}]`;
    let fd: fs.promises.FileHandle;
    try {
      fd = await fs.promises.open(path, "r");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw bad("path", err.code === "ENOENT" ? `no such file: ${path}` : `cannot read ${path}: ${err.message}`);
    }
    try {
      const size = (await fd.stat()).size;
      let source: ByteSource;
      if (key === undefined) {
        source = new FileBytes(fd, 0, what);
      } else {
        const tail = Math.min(size, (1 << 16) + 22 + 1024);
        const buf = Buffer.alloc(tail);
        await fd.read(buf, 0, tail, size - tail);
        let entries: ZipEntry[];
        try {
          entries = zipEntries(buf, `path '${path}'`, size - tail);
        } catch {
          // A central directory longer than the tail read: the whole archive's bytes.
          entries = zipEntries(await fd.readFile(), `path '${path}'`);
        }
        const entry = entries.find((e) => e.name === `${key}.npy` || e.name === key);
        if (!entry) throw bad("key", `'${path}' has no array '${key}' (it has ${entries.map((e) => e.name.replace(/\.npy$/, "")).join(", ")})`);
        const local = Buffer.alloc(30);
        await fd.read(local, 0, 30, entry.localOffset);
        if (local.readUInt32LE(0) !== 0x04034b50) throw bad("path", `'${path}': corrupt zip entry '${entry.name}'`);
        const start = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
        if (entry.method === 0) source = new FileBytes(fd, start, what);
        else if (entry.method === 8) source = new InflatedBytes(path, start, entry.compressedSize, what);
        else throw bad("path", `'${path}': member '${entry.name}' uses zip compression method ${entry.method} (stored and deflated are read)`);
      }
      // The header's length is in its first bytes (2 of them in version 1.0, 4 after).
      const start = await source.read(0, 12);
      if (start.subarray(0, 6).toString("latin1") !== "\x93NUMPY") throw bad("path", `${what} is not a .npy array (no \\x93NUMPY magic)`);
      const length = start[6] === 1 ? start.readUInt16LE(8) + 10 : start.readUInt32LE(8) + 12;
      const header = parseNpyHeader(await source.read(0, length), what);
      if (header.fortran && header.shape.length > 1)
        throw bad("path", `${what} is stored in Fortran order: rows cannot be read one range at a time (save it with np.ascontiguousarray)`);
      if (header.shape.length === 0) throw bad("path", `${what} holds a scalar, not rows`);
      return new RowReader(source, header, fd, what);
    } catch (e) {
      await fd.close();
      throw e;
    }
  }

  /** Rows [start, end) as a Tensor (uint8 as int32, as loadNpy). */
  read(start: number, end: number): Promise<Tensor> {
    // One read at a time: the sources reuse their buffer (files) or stream forward (deflated members).
    const run = this.tail.then(() => this.readNow(start, end));
    this.tail = run.catch(() => undefined);
    return run;
  }
  private tail: Promise<unknown> = Promise.resolve();

  private async readNow(start: number, end: number): Promise<Tensor> {
    if (!(start >= 0 && end >= start && end <= this.rows)) throw bad("rows", `[${start}, ${end}) is outside ${this.what}'s ${this.rows} rows`);
    const count = (end - start) * (this.rowBytes / SIZE[this.dtype]);
    const bytes = await this.bytes.read(this.header.offset + start * this.rowBytes, (end - start) * this.rowBytes);
    // Aligned little-endian values are viewed where they were read (the tensor copies them).
    const data = npyValues(bytes, this.dtype, count, this.header.bigEndian);
    return npyToTensor({ data, shape: [end - start, ...this.header.shape.slice(1)], dtype: this.dtype });
  }

  async close(): Promise<void> {
    await this.bytes.close();
    await this.fd.close().catch(() => undefined);
  }
}
