#!/usr/bin/env node
// Screenshots of Insights for the README (docs/insights_*.png): the digits CNN
// with two methods side by side, the text model's tokens, and a two-input
// model's bars. Needs dist/ (npx tsc -p tsconfig.json), playwright-core and
// Debian's Chromium (apt-get install chromium).
"use strict";
const path = require("path");
const { chromium } = require("playwright-core");
const { startInsights } = require("../dist/insights/server");

const root = path.join(__dirname, "..");
const docs = path.join(root, "docs");
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

async function shoot(browser, options, name, act, height = 720) {
  const server = await startInsights({ ...options, port: 0 });
  const page = await browser.newPage({ viewport: { width: 1280, height } });
  try {
    await page.goto(server.url + "/");
    await page.locator("[data-testid=example]").first().waitFor();
    await act(page);
    await page.waitForFunction(() => document.querySelector("[data-testid=status]").textContent === "done");
    // Every picture decoded before the shot.
    await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    await page.screenshot({ path: path.join(docs, name) });
    console.log(`wrote docs/${name}`);
  } finally {
    await page.close();
    await server.app.close();
  }
}

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
  try {
    await shoot(browser, { model: path.join(root, "models", "digits_cnn.pt"), inputs: path.join(root, "models", "digits_samples.json") }, "insights_digits.png", async (page) => {
      await page.locator("[data-testid=example][data-index='2']").click();
      await page.selectOption("select[data-testid=method]", "IntegratedGradients");
      await page.fill("[data-testid=steps]", "32");
      await page.selectOption("[data-testid=method-compare]", "LayerGradCam");
      await page.selectOption("[data-testid=layer-compare]", "conv2");
      await page.click("button[data-testid=explain]");
    });
    await shoot(browser, { model: path.join(root, "test", "fixtures", "golden", "text.pt"), inputs: path.join(root, "test", "fixtures", "insights", "text.json") }, "insights_text.png", async (page) => {
      await page.locator("[data-testid=example][data-index='0']").click();
      await page.selectOption("[data-testid=target]", "label");
      await page.selectOption("[data-testid=method-compare]", "LayerFeatureAblation");
      await page.selectOption("[data-testid=layer-compare]", "embedding");
      await page.click("button[data-testid=explain]");
    }, 560);
    await shoot(browser, { model: path.join(root, "test", "fixtures", "golden", "multi.pt"), inputs: path.join(root, "test", "fixtures", "insights", "multi.json") }, "insights_multi.png", async (page) => {
      await page.locator("[data-testid=example][data-index='1']").click();
      await page.selectOption("select[data-testid=method]", "ShapleyValues");
      await page.click("button[data-testid=explain]");
    }, 520);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
