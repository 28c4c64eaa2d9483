#!/usr/bin/env node
// Renders the README's pictures into docs/: the bundled digits CNN's
// IntegratedGradients attributions for a few held-out digits, drawn by
// visualizeImageAttrMultiple (every method and sign), and a text page.
// Run after building the TypeScript: node scripts/make_docs_images.js
"use strict";
const fs = require("fs");
const path = require("path");
const tx = require("../dist");

const root = path.join(__dirname, "..");
const out = path.join(root, "docs");

async function main() {
  fs.mkdirSync(out, { recursive: true });
  const samples = require(path.join(root, "models", "digits_samples.json"));
  const model = await tx.loadModel(path.join(root, "models", "digits_cnn.pt"));
  const images = tx.tensor(Float32Array.from(samples.images), samples.shape);
  const logits = (await model.forward(images)).toArray();
  const predicted = logits.map((row) => row.indexOf(Math.max(...row)));
  const attributions = await new tx.IntegratedGradients(model).attribute(images, { target: predicted, nSteps: 64 });
  const [n, c, h, w] = samples.shape;
  const per = c * h * w;
  const a = attributions.data(), x = images.data();
  const one = (data, i) => ({ data: data.subarray(i * per, (i + 1) * per), shape: [c, h, w] });
  for (const i of [0, 1, 2]) {
    const png = await tx.visualizeImageAttrMultiple(
      one(a, i), one(x, i),
      ["original_image", "heat_map", "heat_map", "blended_heat_map", "masked_image"],
      ["all", "all", "positive", "absolute_value", "positive"],
      { titles: [`digit ${samples.labels[i]}`, "all", "positive", "blended", "masked"], scale: 12, showColorbar: true },
    );
    fs.writeFileSync(path.join(out, `digits_ig_${i}.png`), png);
    console.log(`docs/digits_ig_${i}.png (predicted ${predicted[i]}, label ${samples.labels[i]})`);
  }
  const signs = await tx.visualizeImageAttrMultiple(
    one(a, 3), one(x, 3),
    ["original_image", "heat_map", "heat_map", "alpha_scaling"],
    ["all", "negative", "absolute_value", "absolute_value"],
    { titles: [`digit ${samples.labels[3]}`, "negative", "absolute", "alpha scaling"], scale: 12, showColorbar: true },
  );
  fs.writeFileSync(path.join(out, "digits_ig_signs.png"), signs);
  console.log(`docs/digits_ig_signs.png (predicted ${predicted[3]}, label ${samples.labels[3]})`);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
