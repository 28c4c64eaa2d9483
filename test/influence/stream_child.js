// A training set larger than is reasonable to hold: 50,000 x 3 x 32 x 32
// float32 images (614 MB) written as .npy a block at a time, streamed through
// TracInCPFast; prints the peak RSS, the progress seen and an abort's outcome.
"use strict";
const fs = require("fs");
const path = require("path");
const tx = require(process.env.TORCHEXPLAIN_DIST || path.join(__dirname, "..", "..", "dist"));

(async () => {
  const dir = process.argv[2];
  const n = 50000, per = 3 * 32 * 32;
  const x = path.join(dir, "x.npy"), y = path.join(dir, "y.npy");
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${n}, 3, 32, 32), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const magic = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(magic);
  magic.writeUInt16LE(header.length + pad + 1, 8);
  const fd = fs.openSync(x, "w");
  fs.writeSync(fd, magic);
  fs.writeSync(fd, header + " ".repeat(pad) + "\n");
  const block = new Float32Array(1000 * per);
  for (let b = 0; b < n; b += 1000) {
    for (let i = 0; i < block.length; i++) block[i] = Math.sin((b * per + i) * 0.001);
    fs.writeSync(fd, Buffer.from(block.buffer));
  }
  fs.closeSync(fd);
  await tx.saveNpy(y, tx.tensor(BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 10)), [n], "int64"));
  const convnet = path.join(__dirname, "..", "..", "models", "bench_convnet.pt");
  const model = await tx.loadModel(convnet);
  const t = new tx.TracInCPFast(model, "fc", { inputs: x, labels: y }, [convnet, convnet], { batchSize: 256 });
  const test = { inputs: tx.tensor(new Float32Array(4 * per).fill(0.5), [4, 3, 32, 32]), labels: tx.tensor([1, 2, 3, 4], [4], "int64") };
  const progress = [];
  // What the process holds before the stream: LibTorch, the model, the test set.
  (await model.forward(test.inputs)).dispose();
  const baseRss = process.memoryUsage().rss;
  let peak = baseRss, buffers = 0;
  const watch = () => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    buffers = Math.max(buffers, m.arrayBuffers);
  };
  const top = await t.influence(test, { k: 5, onProgress: (d, total) => (progress.push([d, total]), watch()) });
  const first = peak;
  // A second pass over the same 50,000: a bounded stream holds no more than after the first.
  (await t.selfInfluence(undefined, { onProgress: watch })).dispose();
  const second = peak;
  const ac = new AbortController();
  let aborted = null;
  await t.selfInfluence(undefined, { signal: ac.signal, onProgress: (d) => d > 0 && ac.abort() }).catch((e) => (aborted = e.code));
  await t.dispose();
  const MiB = 2 ** 20;
  console.log(JSON.stringify({ progress, shape: top.indices.shape, growthMiB: Math.round((Math.max(first, second) - baseRss) / MiB), firstMiB: Math.round((first - baseRss) / MiB), secondMiB: Math.round((second - baseRss) / MiB), arrayBuffersMiB: Math.round(buffers / MiB), baseMiB: Math.round(baseRss / MiB), aborted, fileMiB: Math.round(fs.statSync(x).size / MiB) }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
