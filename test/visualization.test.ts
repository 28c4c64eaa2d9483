// Pictures: the normalisation against a direct reading of the reference's
// rule, then pixels of the rendered PNGs (decoded with sharp) for every
// method and sign, titles and colour bars, several pictures side by side,
// and the text page.
import sharp from "sharp";
import {
  tensor, visualizeImageAttr, visualizeImageAttrMultiple, normalizeAttribution, cumulativeSumThreshold, getColormap,
  visualizeText, VisualizationDataRecord, attributionColor,
} from "../lib";

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, info, at: (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x + 1) * info.channels)) };
}

// A 4×4 attribution over 2 channels: the left half positive, the right half
// negative, one strong pixel in each half; the channel sum is what counts.
const H = 4, W = 4;
const sum = [
  [1, 1, -1, -1],
  [1, 8, -1, -1],
  [0.5, 1, -8, -1],
  [0, 0, 0, -0.5],
];
const attr = tensor([sum.map((r) => r.map((v) => v / 2)), sum.map((r) => r.map((v) => v / 2))]); // [2, 4, 4]
const image = tensor(Float32Array.from({ length: 3 * H * W }, (_, i) => ((i * 7) % 16) / 16), [3, H, W]); // values in [0, 1)

describe("normalisation", () => {
  test("the cumulative-sum threshold: the smallest value whose running sum reaches the percentile", () => {
    // sorted 1,2,3,4 (sum 10): 98% of 10 = 9.8 is first reached at 4; 50% = 5 at 3; 0% at 1.
    expect(cumulativeSumThreshold([4, 1, 3, 2], 98)).toBe(4);
    expect(cumulativeSumThreshold([4, 1, 3, 2], 50)).toBe(3);
    expect(cumulativeSumThreshold([4, 1, 3, 2], 0)).toBe(1);
  });

  test("signs: channels summed, the sign kept, divided by the threshold, clipped", () => {
    const flat = sum.flat();
    const pos = flat.map((v) => Math.max(v, 0));
    const tPos = cumulativeSumThreshold(pos, 98);
    const { values } = normalizeAttribution(attr, "positive");
    values.forEach((v, i) => expect(Math.abs(v - Math.min(1, pos[i] / tPos))).toBeLessThan(1e-12));
    const neg = normalizeAttribution(attr, "negative").values;
    const tNeg = cumulativeSumThreshold(flat.map((v) => Math.max(-v, 0)), 98);
    neg.forEach((v, i) => expect(Math.abs(v - Math.min(1, Math.max(-flat[i], 0) / tNeg))).toBeLessThan(1e-12));
    const all = normalizeAttribution(attr, "all").values;
    const tAll = cumulativeSumThreshold(flat.map(Math.abs), 98);
    all.forEach((v, i) => expect(Math.abs(v - Math.max(-1, Math.min(1, flat[i] / tAll)))).toBeLessThan(1e-12));
    // |sum| totals 26; with outlierPerc 70 the running sum reaches 30% (7.8) at a value of 1:
    // everything of magnitude 1 and above saturates.
    const a70 = normalizeAttribution(attr, "absolute_value", 70).values;
    expect(a70[5]).toBe(1);
    expect(a70[0]).toBe(1);
    expect(normalizeAttribution(attr, "absolute_value").values[0]).toBe(1 / 8);
  });

  test("nothing of the sign gives zeros, not NaN", () => {
    const { values } = normalizeAttribution(tensor([[1, 2], [3, 4]]), "negative");
    expect(Array.from(values)).toEqual([0, 0, 0, 0]);
  });
});

describe("image methods", () => {
  test("heat_map, positive: positive areas green (darker where stronger), negative areas the colour of 0", async () => {
    const { info, at } = await pixels(await visualizeImageAttr(attr, null, { method: "heat_map", sign: "positive" }));
    expect([info.width, info.height, info.channels]).toEqual([W, H, 3]);
    const greens = getColormap("Greens");
    for (const [x, y] of [[0, 0], [1, 1]]) {
      const [r, g, b] = at(x, y);
      expect(g).toBeGreaterThan(r);
      expect(g).toBeGreaterThan(b);
    }
    expect(at(1, 1)[1]).toBeLessThan(at(0, 0)[1]); // the strongest pixel is the darkest green
    expect(at(3, 0)).toEqual(greens(0)); // negative: nothing of the sign
    expect(at(1, 1)).toEqual(greens(1));
  });

  test("heat_map, negative: negative areas red; all: red and green about white", async () => {
    const neg = await pixels(await visualizeImageAttr(attr, null, { sign: "negative" }));
    const [r, g, b] = neg.at(2, 2);
    expect(r).toBeGreaterThan(g);
    expect(r).toBeGreaterThan(b);
    expect(neg.at(0, 0)).toEqual(getColormap("Reds")(0));
    const all = await pixels(await visualizeImageAttr(attr, null, { sign: "all" }));
    expect(all.at(1, 1)).toEqual(getColormap("RdWhGn")(1)); // +max: green
    expect(all.at(1, 1)[1]).toBeGreaterThan(all.at(1, 1)[0]);
    expect(all.at(2, 2)[0]).toBeGreaterThan(all.at(2, 2)[1]); // -max: red
    const zero = all.at(0, 3); // 0: the middle, near white
    for (const c of zero) expect(c).toBeGreaterThan(250);
  });

  test("heat_map, absolute_value: Blues by default; cmap overrides", async () => {
    const abs = await pixels(await visualizeImageAttr(attr, null, {}));
    expect(abs.at(2, 2)).toEqual(getColormap("Blues")(1));
    const grey = await pixels(await visualizeImageAttr(attr, null, { cmap: "gray" }));
    expect(grey.at(2, 2)).toEqual([255, 255, 255]);
    expect(grey.at(0, 3)).toEqual([0, 0, 0]);
  });

  test("masked_image: zero where the attribution is below the threshold of its sign, the image where it saturates", async () => {
    const img = await pixels(await visualizeImageAttr(attr, image, { method: "masked_image", sign: "positive" }));
    const values = image.data() as Float32Array;
    const norm = normalizeAttribution(attr, "positive").values;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        const want = [0, 1, 2].map((c) => Math.trunc(Math.trunc(values[c * H * W + i] * 255) * norm[i]));
        const got = img.at(x, y);
        for (let c = 0; c < 3; c++) expect(Math.abs(got[c] - want[c])).toBeLessThanOrEqual(1);
        if (norm[i] === 0) expect(got).toEqual([0, 0, 0]);
      }
    expect(img.at(3, 0)).toEqual([0, 0, 0]); // a negative pixel under sign positive
  });

  test("alpha_scaling: RGBA, alpha the normalised attribution, colour the image", async () => {
    const img = await pixels(await visualizeImageAttr(attr, image, { method: "alpha_scaling", sign: "absolute_value" }));
    expect(img.info.channels).toBe(4);
    const norm = normalizeAttribution(attr, "absolute_value").values;
    const values = image.data() as Float32Array;
    for (let i = 0; i < H * W; i++) {
      const [r, , , a] = img.at(i % W, Math.floor(i / W));
      expect(Math.abs(a - Math.trunc(norm[i] * 255))).toBeLessThanOrEqual(1);
      expect(r).toBe(Math.trunc(values[i] * 255));
    }
  });

  test("original_image and blended_heat_map", async () => {
    const orig = await pixels(await visualizeImageAttr(attr, image, { method: "original_image" }));
    const v = image.data() as Float32Array;
    expect(orig.at(1, 0)).toEqual([0, 1, 2].map((c) => Math.trunc(v[c * 16 + 1] * 255)));
    // 0-255 images are taken as they are.
    const bytes = tensor(Float32Array.from(v, (x) => Math.round(x * 255)), [3, H, W]);
    const orig255 = await pixels(await visualizeImageAttr(attr, bytes, { method: "original_image" }));
    expect(orig255.at(1, 0)).toEqual([0, 1, 2].map((c) => Math.round(v[c * 16 + 1] * 255)));
    // Blended at alpha 1 is the heat map; at alpha 0, the grey image stretched to black..white.
    const heat = await pixels(await visualizeImageAttr(attr, null, { sign: "positive" }));
    const b1 = await pixels(await visualizeImageAttr(attr, image, { method: "blended_heat_map", sign: "positive", alphaOverlay: 1 }));
    expect(Buffer.compare(b1.data, heat.data)).toBe(0);
    const b0 = await pixels(await visualizeImageAttr(attr, image, { method: "blended_heat_map", sign: "positive", alphaOverlay: 0 }));
    const greys = Array.from({ length: 16 }, (_, i) => b0.at(i % W, Math.floor(i / W)));
    for (const g of greys) expect(g[0] === g[1] && g[1] === g[2]).toBe(true);
    expect(Math.min(...greys.map((g) => g[0]))).toBe(0);
    expect(Math.max(...greys.map((g) => g[0]))).toBe(255);
  });

  test("shapes: [H, W] and [1, C, H, W] accepted, scale enlarges by whole pixels", async () => {
    const hw = await pixels(await visualizeImageAttr(tensor(sum), null, { sign: "positive", scale: 3 }));
    expect([hw.info.width, hw.info.height]).toEqual([12, 12]);
    const one = await pixels(await visualizeImageAttr(tensor([sum]), null, { sign: "positive" }));
    expect(hw.at(4, 4)).toEqual(one.at(1, 1)); // pixel (1,1) covers 3..5
  });

  test("bad arguments name themselves", async () => {
    await expect(visualizeImageAttr(attr, null, { method: "masked_image", sign: "positive" })).rejects.toThrow(/^image: the original image is needed/);
    await expect(visualizeImageAttr(attr, image, { method: "masked_image", sign: "all" })).rejects.toThrow(/^sign: 'all' cannot be shown by masked_image/);
    await expect(visualizeImageAttr(attr, null, { method: "sparkles" as "heat_map" })).rejects.toThrow(/^method: expected one of/);
    await expect(visualizeImageAttr(attr, null, { sign: "both" as "all" })).rejects.toThrow(/^sign:/);
    await expect(visualizeImageAttr(attr, null, { cmap: "jet" })).rejects.toThrow(/^cmap: unknown colour map "jet"/);
    await expect(visualizeImageAttr(attr, null, { outlierPerc: 120 })).rejects.toThrow(/^outlierPerc:/);
    await expect(visualizeImageAttr(attr, tensor([[1, 2], [3, 4]]), { method: "original_image" })).rejects.toMatchObject({ code: "ERR_BAD_SHAPE" });
    await expect(visualizeImageAttr(tensor([1, 2, 3]), null)).rejects.toThrow(/^attribution: expected shape/);
  });
});

describe("titles, colour bars, several pictures", () => {
  test("a title adds a strip above with dark text; a colour bar one below that runs through the map", async () => {
    const png = await visualizeImageAttr(attr, null, { sign: "positive", scale: 20, title: "Positive", showColorbar: true });
    const { info, at, data } = await pixels(png);
    expect(info.height).toBeGreaterThan(80 + 20); // title + 80 px map + bar
    expect(info.width).toBeGreaterThanOrEqual(80);
    // Some dark text pixels in the title strip.
    let dark = 0;
    for (let y = 0; y < 20; y++) for (let x = 0; x < info.width; x++) if (at(x, y)[0] < 100) dark++;
    expect(dark).toBeGreaterThan(10);
    // The map: where the plain picture is.
    const left = Math.floor((info.width - 80) / 2);
    expect(at(left + 30, 22 + 30)).toEqual(getColormap("Greens")(1)); // pixel (1,1) of the 4×4 map at scale 20
    // The bar: a row below the map goes from light to dark green.
    const barY = 22 + 80 + 6 + 5;
    const row = Array.from({ length: info.width }, (_, x) => at(x, barY));
    const greenish = row.filter(([r, g, b]) => g > r && g > b);
    expect(greenish.length).toBeGreaterThan(40);
    expect(data.length).toBe(info.width * info.height * 3);
  });

  test("visualizeImageAttrMultiple: pictures side by side, each as alone", async () => {
    const methods = ["original_image", "heat_map", "masked_image"] as const;
    const signs = ["all", "positive", "absolute_value"] as const;
    const png = await visualizeImageAttrMultiple(attr, image, [...methods], [...signs], { titles: ["image", "positive", "masked"], scale: 10 });
    const { info, at } = await pixels(png);
    expect(info.height).toBe(22 + 40);
    expect(info.width).toBeGreaterThanOrEqual(3 * 40 + 2 * 8);
    // Each picture appears whole, under the title strip, as it is drawn alone, left to right.
    const found: number[] = [];
    for (const [m, s] of methods.map((m, i) => [m, signs[i]] as const)) {
      const alone = await pixels(await visualizeImageAttr(attr, image, { method: m, sign: s, scale: 10 }));
      const fits = (ox: number) => {
        for (let y = 0; y < 40; y++) for (let x = 0; x < 40; x++) if (at(ox + x, 22 + y).join() !== alone.at(x, y).join()) return false;
        return true;
      };
      const ox = Array.from({ length: info.width - 39 }, (_, x) => x).find(fits);
      expect(ox).toBeDefined();
      found.push(ox!);
    }
    expect(found[0]).toBeLessThan(found[1]);
    expect(found[1]).toBeLessThan(found[2]);
    await expect(visualizeImageAttrMultiple(attr, image, ["heat_map"], ["all", "positive"])).rejects.toThrow(/^signs: expected 1 signs/);
    await expect(visualizeImageAttrMultiple(attr, image, ["heat_map"], ["all"], { titles: ["a", "b"] })).rejects.toThrow(/^titles:/);
  });
});

describe("text", () => {
  test("an HTML page with the record's fields and tokens coloured by sign", () => {
    const html = visualizeText([
      new VisualizationDataRecord([0.8, -0.5, 0, 2], 0.91, "pos", "pos", "pos", 1.3, ["good", "<bad>", "&", "film"], 0.002),
      { wordAttributions: [-1], predProb: 0.4, predClass: 0, trueClass: 1, attrClass: 1, attrScore: -1, rawInputIds: ["<script>"] },
    ]);
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).not.toMatch(/<script|src=|href=/); // self-contained, tokens escaped
    expect(html).toContain("pos (0.91)");
    expect(html).toContain("1.30");
    expect(html).toContain("0.0020"); // convergence delta
    expect(html).toContain(`background-color:${attributionColor(0.8)}`);
    expect(attributionColor(0.8)).toBe("hsl(120, 75%, 60%)"); // green, 100 - 50·0.8
    expect(attributionColor(-0.5)).toBe("hsl(0, 75%, 80%)"); // red, 100 - 40·0.5
    expect(attributionColor(2)).toBe(attributionColor(1)); // clipped
    expect(html).toContain(">#bad<"); // special tokens as #name
    expect(html).toContain("&amp;");
    expect(() => visualizeText([{ wordAttributions: [1], predProb: 1, predClass: 0, trueClass: 0, attrClass: 0, attrScore: 0, rawInputIds: ["a", "b"] }])).toThrow(/^records\[0\]\.wordAttributions: 1 values for 2 tokens/);
  });
});
