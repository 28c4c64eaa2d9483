// Influence as a picture: per test example, its image beside the training
// images that support its prediction most (proponents) and least (opponents).
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import type { KMostInfluential } from "../influence/base";
import { ImageLike, imageGrid } from "./image";

export interface VisualizeInfluenceOptions {
  /** Pixels per image pixel (default: enough for about 64 pixels across). */
  scale?: number;
  /** Class of each training example (indexable by training index), shown beside its score. */
  trainLabels?: ArrayLike<number | bigint> | ((index: number) => number | string);
  /** Class of each test example. */
  testLabels?: ArrayLike<number | bigint>;
  /** Names for class ids. */
  classNames?: string[];
}

function bad(argument: string, message: string): TorchExplainError {
  return new TorchExplainError(`${argument}: ${message}`, "ERR_BAD_OPTION");
}

/** Example i of a batch [N, ...] as an image [C, H, W] or [H, W]. */
function row(batch: Tensor, i: number, what: string): ImageLike {
  const shape = batch.shape.slice(1);
  if (shape.length !== 2 && shape.length !== 3) throw bad(what, `expected images [N, C, H, W] or [N, H, W]; got [${batch.shape}]`);
  const size = shape.reduce((a, b) => a * b, 1);
  const data = (batch.data() as Float32Array).subarray(i * size, (i + 1) * size);
  return { data, shape };
}

/**
 * A PNG with one row per test example: the test image, its proponents (the
 * training examples with the highest influence) and, when given, its
 * opponents (the lowest), each titled with its influence score, training
 * index and class. `train` gives a training image by index (a Tensor of all
 * of them, or a function for a set read from files).
 */
export async function visualizeInfluence(
  test: Tensor,
  train: Tensor | ((index: number) => ImageLike | Promise<ImageLike>),
  proponents: KMostInfluential,
  opponents?: KMostInfluential,
  options: VisualizeInfluenceOptions = {},
): Promise<Buffer> {
  if (!(test instanceof Tensor)) throw bad("test", "expected the test images as a Tensor [N, C, H, W]");
  const n = test.shape[0];
  const take = (r: KMostInfluential | undefined, what: string) => {
    if (!r) return undefined;
    if (!(r.indices instanceof Tensor) || r.indices.shape[0] !== n) throw bad(what, `expected the k most influential for each of the ${n} test examples`);
    return { k: r.indices.shape[1], indices: Array.from(r.indices.data() as BigInt64Array, Number), scores: Array.from(r.influenceScores.data() as Float32Array, Number) };
  };
  const pro = take(proponents, "proponents")!, opp = take(opponents, "opponents");
  const name = (c: number | bigint | string | undefined) => (c === undefined ? "" : options.classNames?.[Number(c)] ?? String(c));
  const trainLabel = (i: number) =>
    options.trainLabels === undefined ? undefined : typeof options.trainLabels === "function" ? options.trainLabels(i) : options.trainLabels[i];
  const image = async (i: number) => (train instanceof Tensor ? row(train, i, "train") : await train(i));
  const side = Math.max(test.shape[test.shape.length - 1], test.shape[test.shape.length - 2]);
  const scale = options.scale ?? Math.max(1, Math.round(64 / side));
  const rows: { image: ImageLike; title: string }[][] = [];
  for (let t = 0; t < n; t++) {
    const label = options.testLabels ? ` · ${name(options.testLabels[t])}` : "";
    const cells = [{ image: row(test, t, "test"), title: `test ${t}${label}` }];
    for (const [r, sign] of [[pro, "+"], [opp, "−"]] as const) {
      if (!r) continue;
      for (let j = 0; j < r.k; j++) {
        const idx = r.indices[t * r.k + j], score = r.scores[t * r.k + j];
        const l = trainLabel(idx);
        cells.push({ image: await image(idx), title: `${sign === "+" && score >= 0 ? "+" : ""}${score.toPrecision(3)} #${idx}${l === undefined ? "" : ` · ${name(l)}`}` });
      }
    }
    rows.push(cells);
  }
  const header = `test example | ${pro.k} proponents (highest influence)${opp ? ` | ${opp.k} opponents (lowest)` : ""}`;
  return imageGrid(rows, scale, header);
}
