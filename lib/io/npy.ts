// NumPy's .npy and .npz formats, read and written without numpy.
// .npy: magic "\x93NUMPY", version (1.0, 2.0 or 3.0), a header length (2 bytes
// in 1.0, 4 bytes after), a Python dict literal header, then the raw values.
// .npz: a zip of .npy files (stored or deflated), read and written with node's zlib.
import * as fs from "fs";
import * as zlib from "zlib";
import { Tensor, tensor, DType, TypedData } from "../tensor";
import { TorchExplainError } from "../errors";

/** The element types this module reads and writes. */
export type NpyDType = "float32" | "float64" | "int32" | "int64" | "bool" | "uint8";
export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** A decoded array: C-order values and a shape. `data` may be a view into the file's bytes (no copy). */
export interface NpyArray {
  data: NpyData;
  shape: number[];
  dtype: NpyDType;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// descr kind+size -> dtype; the byte-order character is handled apart.
const DESCR: Record<string, NpyDType> = { f4: "float32", f8: "float64", i4: "int32", i8: "int64", b1: "bool", u1: "uint8" };
const DESCR_OF: Record<NpyDType, string> = { float32: "<f4", float64: "<f8", int32: "<i4", int64: "<i8", bool: "|b1", uint8: "|u1" };
const CTOR: Record<NpyDType, { new (buffer: ArrayBufferLike, byteOffset: number, length: number): NpyData; new (n: number): NpyData; BYTES_PER_ELEMENT: number }> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  uint8: Uint8Array,
};

function bad(what: string, message: string): TorchExplainError {
  return new TorchExplainError(`${what}: ${message}`, "ERR_BAD_OPTION");
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
function parseHeader(text: string, what: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw bad(what, `not a valid .npy header: ${JSON.stringify(text.trim().slice(0, 120))}`);
  const dims = shape[1]
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, "")));
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw bad(what, `bad shape (${shape[1]}) in the .npy header`);
  return { descr: descr[1], fortran: fortran[1] === "True", shape: dims };
}

/** Reverses a C-order permutation: values stored Fortran-order (first index fastest) become C-order. */
function fortranToC(src: NpyData, shape: number[]): NpyData {
  const n = src.length;
  const out = new (src.constructor as { new (n: number): NpyData })(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  // Fortran strides: stride[0] = 1, stride[k] = stride[k-1] * shape[k-1].
  const fstride = new Array<number>(rank);
  for (let k = 0, s = 1; k < rank; k++) { fstride[k] = s; s *= shape[k]; }
  for (let c = 0; c < n; c++) {
    let f = 0;
    for (let k = 0; k < rank; k++) f += idx[k] * fstride[k];
    (out as Float64Array)[c] = (src as Float64Array)[f];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

/**
 * Decodes a .npy file's bytes. The values are a view of `bytes` when they are
 * little-endian, C-ordered and aligned for their type (numpy pads headers to 64
 * bytes, so files read whole usually are); otherwise a converted copy.
 */
/** A .npy header: the values' type, shape and order, and where they start. */
export interface NpyHeader {
  dtype: NpyDType;
  shape: number[];
  fortran: boolean;
  bigEndian: boolean;
  /** Byte offset of the first value. */
  offset: number;
}

/** Reads the header at the start of `buf` (which needs to hold the header, not the values). */
export function parseNpyHeader(buf: Buffer, what = "npy"): NpyHeader {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad(what, "not a .npy file (no \\x93NUMPY magic)");
  const major = buf[6];
  let headerLen: number, start: number;
  if (major === 1) { headerLen = buf.readUInt16LE(8); start = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad(what, "truncated .npy header");
    headerLen = buf.readUInt32LE(8); start = 12;
  } else throw bad(what, `unsupported .npy format version ${major}.${buf[7]} (1.0, 2.0 and 3.0 are read)`);
  if (start + headerLen > buf.length) throw bad(what, "truncated .npy header");
  // Version 3.0 allows UTF-8 in the header (structured field names); 1.0 and 2.0 are latin-1.
  const header = parseHeader(buf.toString(major === 3 ? "utf8" : "latin1", start, start + headerLen), what);
  const m = /^([<>|=])?([a-z])(\d+)$/.exec(header.descr);
  const dtype = m ? DESCR[m[2] + m[3]] : undefined;
  if (!m || !dtype)
    throw bad(what, `unsupported dtype '${header.descr}' (float32, float64, int32, int64, bool and uint8 are read)`);
  const bigEndian = m[1] === ">" || (m[1] === "=" && !isLittleEndianHost);
  return { dtype, shape: header.shape, fortran: header.fortran, bigEndian, offset: start + headerLen };
}

/** Values of `count` elements from bytes: a view of them where little-endian and aligned, else a copy (byte-swapped from big-endian). */
export function npyValues(bytes: Buffer, dtype: NpyDType, count: number, bigEndian: boolean): NpyData {
  const Ctor = CTOR[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  // Aligned little-endian values are used where they are; others are copied into memory
  // of their own (not Node's shared pool), aligned for the type.
  if (!bigEndian && bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = Buffer.from(new ArrayBuffer(count * size));
  bytes.copy(copy, 0, 0, count * size);
  if (bigEndian && size === 2) copy.swap16();
  else if (bigEndian && size === 4) copy.swap32();
  else if (bigEndian && size === 8) copy.swap64();
  return new Ctor(copy.buffer, copy.byteOffset, count);
}

/**
 * Decodes a .npy file's bytes. The values are a view of `bytes` when they are
 * little-endian, C-ordered and aligned for their type (numpy pads headers to 64
 * bytes, so files read whole usually are); otherwise a converted copy.
 */
export function parseNpy(bytes: Uint8Array, what = "npy"): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = parseNpyHeader(buf, what);
  const { dtype, offset } = header;
  const Ctor = CTOR[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  const count = header.shape.reduce((a, b) => a * b, 1);
  if (buf.length - offset < count * size)
    throw bad(what, `truncated data: shape [${header.shape}] of ${dtype} needs ${count * size} bytes, the file has ${buf.length - offset}`);
  let data = npyValues(buf.subarray(offset), dtype, count, header.bigEndian);
  if (header.fortran && header.shape.length > 1) data = fortranToC(data, header.shape);
  return { data, shape: header.shape, dtype };
}

/** The .npy header for an array: the smallest version that holds it (1.0 unless the header is over 65535 bytes), padded to 64 bytes. */
function npyHeader(shape: number[], dtype: NpyDType): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${DESCR_OF[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  for (const [version, prefix] of [[1, 10], [2, 12]] as const) {
    const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
    const headerLen = total - prefix;
    if (version === 1 && headerLen > 0xffff) continue;
    const out = Buffer.alloc(total, 0x20);
    MAGIC.copy(out, 0);
    out[6] = version;
    out[7] = 0;
    if (version === 1) out.writeUInt16LE(headerLen, 8);
    else out.writeUInt32LE(headerLen, 8);
    out.write(dict, prefix, "latin1");
    out[total - 1] = 0x0a;
    return out;
  }
  throw new Error("unreachable");
}

function dtypeOfData(data: ArrayBufferView): NpyDType | undefined {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Uint8Array) return "uint8";
  return undefined;
}

/** What can be written: a Tensor, or values with a shape (and a dtype, for bool). */
export type NpyWritable = Tensor | { data: NpyData; shape: number[]; dtype?: NpyDType };

function asArray(value: NpyWritable, what: string): NpyArray {
  if (value instanceof Tensor) {
    if (value.device !== "cpu") value = value.to("cpu");
    return { data: value.data(), shape: value.shape, dtype: value.dtype as NpyDType };
  }
  if (!value || !ArrayBuffer.isView(value.data) || !Array.isArray(value.shape))
    throw bad(what, "expected a Tensor or { data: TypedArray, shape: number[] }");
  const own = dtypeOfData(value.data);
  const dtype = value.dtype ?? own;
  if (!dtype || !own || !(dtype === own || (dtype === "bool" && own === "uint8")))
    throw bad(what, `data of type ${value.data.constructor.name} cannot be written as ${dtype ?? "a .npy dtype"}`);
  const count = value.shape.reduce((a, b) => a * b, 1);
  if (count !== value.data.length) throw bad(what, `shape [${value.shape}] has ${count} elements but data has ${value.data.length}`);
  return { data: value.data, shape: value.shape, dtype };
}

/** The .npy bytes as two parts (header, values): the values are not copied. */
function npyParts(value: NpyWritable, what: string): [Buffer, Buffer] {
  const a = asArray(value, what);
  if (!isLittleEndianHost) throw bad(what, "writing .npy on a big-endian host is not supported");
  return [npyHeader(a.shape, a.dtype), Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength)];
}

/** Encodes a Tensor (or typed array and shape) as .npy bytes (format 1.0; 2.0 for very long headers). */
export function toNpy(value: NpyWritable): Buffer {
  return Buffer.concat(npyParts(value, "value"));
}

/** Writes a .npy file, atomically: a temporary file in the same folder, then a rename. */
export async function saveNpy(path: string, value: NpyWritable): Promise<void> {
  await writeAtomic(path, npyParts(value, "value"));
}

/** Writes buffers to `path` through a temporary file and a rename, so readers never see a partial file. */
export async function writeAtomic(path: string, parts: Uint8Array[] | Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fh = await fs.promises.open(tmp, "w");
  try {
    if (typeof parts === "string") await fh.writeFile(parts);
    else await fh.writev(Array.isArray(parts) ? parts : [parts]);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await fs.promises.rename(tmp, path);
}

const TENSOR_OF: Record<NpyDType, DType> = { float32: "float32", float64: "float64", int32: "int32", int64: "int64", bool: "bool", uint8: "int32" };

/**
 * A Tensor of the array's values. uint8 (which Tensors lack) becomes int32 by
 * default, exactly; `dtype` converts to another type (say float32 for images).
 */
export function npyToTensor(a: NpyArray, dtype?: DType): Tensor {
  const want = dtype ?? TENSOR_OF[a.dtype];
  if (want === a.dtype) return tensor(a.data as TypedData, a.shape, want);
  const src = a.data;
  const Out = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array, bool: Uint8Array }[want];
  if (!Out) throw bad("dtype", `expected one of float32, float64, int32, int64, bool; got '${want}'`);
  const out = new Out(src.length);
  if (want === "int64") for (let i = 0; i < src.length; i++) (out as BigInt64Array)[i] = BigInt(Math.trunc(Number(src[i])));
  else if (want === "bool") for (let i = 0; i < src.length; i++) out[i] = Number(src[i]) !== 0 ? 1 : 0;
  else if (want === "int32") for (let i = 0; i < src.length; i++) out[i] = Math.trunc(Number(src[i]));
  else for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
  return tensor(out as TypedData, a.shape, want);
}

async function readFileChecked(path: string, what: string): Promise<Buffer> {
  if (typeof path !== "string" || path.length === 0) throw bad(what, "expected a file path");
  try {
    return await fs.promises.readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw bad(what, `no such file: ${path}`);
    if (err.code === "EISDIR") throw bad(what, `is a directory, not a file: ${path}`);
    throw bad(what, `cannot read ${path}: ${err.message}`);
  }
}

export interface LoadNpyOptions {
  /** The Tensor's dtype (default the file's; uint8 as int32). */
  dtype?: DType;
  /** uint8 arrays (images saved as bytes) as float32 in [0, 1]: each value / 255 (a float `dtype` is kept). */
  scaleUint8?: boolean;
}

function loaded(a: NpyArray, options: LoadNpyOptions): Tensor {
  if (options.scaleUint8 !== undefined && typeof options.scaleUint8 !== "boolean") throw bad("scaleUint8", "expected a boolean");
  if (!options.scaleUint8 || a.dtype !== "uint8") return npyToTensor(a, options.dtype);
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64") throw bad("dtype", `scaleUint8 makes floats; got dtype '${dtype}'`);
  const out = dtype === "float32" ? new Float32Array(a.data.length) : new Float64Array(a.data.length);
  const src = a.data as Uint8Array;
  for (let i = 0; i < src.length; i++) out[i] = src[i] / 255;
  return tensor(out, a.shape, dtype);
}

/** Reads a .npy file into a Tensor (uint8 as int32 unless `dtype` or `scaleUint8` says otherwise). */
export async function loadNpy(path: string, options: LoadNpyOptions = {}): Promise<Tensor> {
  return loaded(parseNpy(await readFileChecked(path, "path"), `path '${path}'`), options);
}

/** Reads a .npy file's array without making a Tensor. */
export async function readNpy(path: string): Promise<NpyArray> {
  return parseNpy(await readFileChecked(path, "path"), `path '${path}'`);
}

// ---- .npz: zip archives of .npy files ----------------------------------------

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  localOffset: number;
}

/**
 * Reads the central directory (zip64 records included, as numpy writes them
 * for large arrays). `buf` holds the archive's bytes from offset `base` to its
 * end (all of it by default: a large archive's tail is enough).
 */
export function zipEntries(buf: Buffer, what: string, base = 0): ZipEntry[] {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--)
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) throw bad(what, "not a .npz (zip) file: no end of central directory");
  let count = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) throw bad(what, "corrupt zip64 archive");
    const rec = Number(buf.readBigUInt64LE(loc + 8)) - base;
    if (rec < 0 || rec + 56 > buf.length || buf.readUInt32LE(rec) !== 0x06064b50) throw bad(what, "corrupt zip64 end record");
    count = Number(buf.readBigUInt64LE(rec + 32));
    cdOffset = Number(buf.readBigUInt64LE(rec + 48));
  }
  const out: ZipEntry[] = [];
  let p = cdOffset - base;
  if (p < 0) throw bad(what, "corrupt zip central directory");
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw bad(what, "corrupt zip central directory");
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    let uncompressed = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString("utf8", p + 46, p + 46 + nameLen);
    // zip64 extra field (id 1): the 0xffffffff fields, in order, as 8-byte values.
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e), len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        if (uncompressed === 0xffffffff) { uncompressed = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (localOffset === 0xffffffff) { localOffset = Number(buf.readBigUInt64LE(q)); q += 8; }
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, localOffset });
    p = end + commentLen;
  }
  return out;
}

function entryBytes(buf: Buffer, e: ZipEntry, what: string): Buffer {
  const p = e.localOffset;
  if (p + 30 > buf.length || buf.readUInt32LE(p) !== 0x04034b50) throw bad(what, `corrupt zip entry '${e.name}'`);
  // The local header's name and extra lengths may differ from the central directory's.
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  const raw = buf.subarray(start, start + e.compressedSize);
  if (e.method === 0) return raw;
  if (e.method === 8) return zlib.inflateRawSync(raw);
  throw bad(what, `entry '${e.name}' uses zip compression method ${e.method} (stored and deflated are read)`);
}

/** Decodes .npz bytes: each member's array by name (without ".npy"), in the archive's order. */
export function parseNpz(bytes: Uint8Array, what = "npz"): Record<string, NpyArray> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Record<string, NpyArray> = {};
  for (const e of zipEntries(buf, what)) {
    if (e.name.endsWith("/")) continue;
    const key = e.name.replace(/\.npy$/, "");
    out[key] = parseNpy(entryBytes(buf, e, what), `${what}[${key}]`);
  }
  return out;
}

/** Reads a .npz file into Tensors by name (np.savez's positional arrays are arr_0, arr_1, ...). */
export async function loadNpz(path: string, options: LoadNpyOptions = {}): Promise<Record<string, Tensor>> {
  const arrays = parseNpz(await readFileChecked(path, "path"), `path '${path}'`);
  return Object.fromEntries(Object.entries(arrays).map(([k, a]) => [k, loaded(a, options)]));
}

/** Encodes arrays as .npz bytes; `compress: true` deflates each member (as np.savez_compressed). */
export function toNpz(arrays: Record<string, NpyWritable>, options: { compress?: boolean } = {}): Buffer {
  if (!arrays || typeof arrays !== "object") throw bad("arrays", "expected an object of name → Tensor");
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [key, value] of Object.entries(arrays)) {
    const body = Buffer.concat(npyParts(value, `arrays.${key}`));
    const data = options.compress ? zlib.deflateRawSync(body) : body;
    const name = Buffer.from(`${key}.npy`, "utf8");
    const crc = zlib.crc32(body);
    if (offset > 0xfffffffe || body.length > 0xfffffffe) throw bad(`arrays.${key}`, "archives over 4 GiB are not written (no zip64)");
    const method = options.compress ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date: 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(body.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(0x0800, 8);
    dir.writeUInt16LE(method, 10);
    dir.writeUInt16LE(0, 12);
    dir.writeUInt16LE(0x21, 14);
    dir.writeUInt32LE(crc, 16);
    dir.writeUInt32LE(data.length, 20);
    dir.writeUInt32LE(body.length, 24);
    dir.writeUInt16LE(name.length, 28);
    dir.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    central.push(dir, name);
    offset += local.length + name.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  const n = Object.keys(arrays).length;
  end.writeUInt16LE(n, 8);
  end.writeUInt16LE(n, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** Writes a .npz file atomically. */
export async function saveNpz(path: string, arrays: Record<string, NpyWritable>, options: { compress?: boolean } = {}): Promise<void> {
  await writeAtomic(path, toNpz(arrays, options));
}
