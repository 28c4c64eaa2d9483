// torchexplain Insights, the language-model page: no framework, no external files.
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
};
// Blue raised the target's score, red lowered it: the pictures' palette (plotTokenAttr), so that
// the page and its pictures agree.
const PALETTE = ["#93003a", "#d0365b", "#f57789", "#ffbdc3", "#ffffff", "#a4d6e1", "#73a3ca", "#4772b3", "#00429d"].map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
function color(v) {
  const x = Math.max(-1, Math.min(1, Number.isFinite(v) ? v : 0));
  const pos = ((x + 1) / 2) * (PALETTE.length - 1);
  const i = Math.min(PALETTE.length - 2, Math.floor(pos));
  const rgb = PALETTE[i].map((c, k) => Math.round(c + (PALETTE[i + 1][k] - c) * (pos - i)));
  return `rgb(${rgb.join(",")})`;
}
// White text on the darkest colours.
const ink = (v) => (Math.abs(v) > 0.6 ? "#fff" : "#000");
const shown = (t) => String(t).replace(/^Ġ/, "␣").replace(/^▁/, "␣");
let info = null;
let inFlight = null;

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function syncControls() {
  const m = info.methods.find((x) => x.name === $("method").value);
  const template = $("kind").value === "template";
  $("layer-wrap").hidden = !m.layer;
  $("attr-target-wrap").hidden = m.layer;
  $("steps-wrap").hidden = m.name !== "LayerIntegratedGradients";
  $("samples-wrap").hidden = !["ShapleyValueSampling", "Lime", "KernelShap", "LayerGradientShap"].includes(m.name);
  $("template-row").hidden = $("values-row").hidden = !template;
  $("text-row").hidden = template;
  // Gradients need token ids: the text kind only.
  if (m.layer && template) {
    $("kind").value = "text";
    syncControls();
  }
}

function lines(text) {
  return text.split("\n").map((s) => s.trim()).filter((s, i, all) => s || i < all.length - 1);
}

function request() {
  const body = { method: $("method").value, attrTarget: $("attr-target").value };
  const m = info.methods.find((x) => x.name === body.method);
  if (m.layer) body.layer = $("layer").value;
  if ($("kind").value === "template") {
    body.template = $("template").value;
    body.values = lines($("values").value);
    const b = $("baselines").value.trim() ? lines($("baselines").value) : null;
    if (b) body.baselines = b;
  } else body.text = $("text").value;
  if ($("target").value) body.target = $("target").value;
  else body.maxNewTokens = Number($("max-new-tokens").value);
  if (!$("samples-wrap").hidden) body.nSamples = Number($("samples").value);
  if (!$("steps-wrap").hidden) body.nSteps = Number($("steps").value);
  return body;
}

function segments(body, r) {
  const max = Math.max(1e-12, ...r.seqAttr.map(Math.abs));
  const box = el("div", { className: "segments" });
  const mark = (text, i) => el("span", { className: "segment", title: `${r.inputTokens[i]}: ${r.seqAttr[i].toFixed(4)}`, style: `background:${color(r.seqAttr[i] / max)};color:${ink(r.seqAttr[i] / max)}` }, text);
  if (body.template !== undefined) {
    // The template's own text between the values, as written.
    const parts = body.template.split(/\{[^{}]*\}/);
    parts.forEach((p, i) => {
      if (p) box.append(el("span", { className: "segment fixed" }, p));
      if (i < r.inputTokens.length) box.append(mark(body.values[i], i));
    });
  } else r.inputTokens.forEach((t, i) => box.append(mark(shown(t), i), " "));
  return box;
}

function tokenMap(r) {
  const max = Math.max(1e-12, ...r.tokenAttr.flat().map(Math.abs));
  const table = el("table", { className: "map" });
  table.dataset.testid = "token-map";
  table.append(el("tr", {}, el("th"), ...r.inputTokens.map((t) => el("th", {}, shown(t)))));
  r.tokenAttr.forEach((row, k) =>
    table.append(el("tr", {}, el("th", {}, shown(r.outputTokens[k])), ...row.map((v) => el("td", { style: `background:${color(v / max)};color:${ink(v / max)}` }, v.toFixed(3))))));
  return table;
}

function render(body, r) {
  const card = el("div", { className: "result" });
  card.dataset.testid = "result";
  card.append(
    el("h3", {}, `${r.method}${r.layer ? ` on ${r.layer}` : ""}`),
    el("div", { className: "facts muted" }, `explains the target's ${r.attrTarget === "prob" ? "probability" : "log-probability"} · ${r.timeMs} ms`),
    el("h4", {}, "Prompt (blue raised the target's score, red lowered it)"),
    segments(body, r),
    el("h4", {}, body.target === undefined ? "Target (generated)" : "Target"),
    el("div", { className: "target-tokens" }, ...r.outputTokens.map((t) => el("code", {}, t))),
  );
  card.lastChild.dataset.testid = "target-tokens";
  if (r.tokenAttr) card.append(el("h4", {}, "Per target token"), tokenMap(r));
  else card.append(el("p", { className: "muted" }, `${r.method} explains the whole target only (its surrogate model fits one score).`));
  const pics = el("div", { className: "pictures" });
  if (r.pictures.tokens) pics.append(el("figure", {}, el("img", { src: `data:image/png;base64,${r.pictures.tokens}`, alt: "target tokens × prompt features" }), el("figcaption", {}, "plotTokenAttr()")));
  pics.append(el("figure", {}, el("img", { src: `data:image/png;base64,${r.pictures.seq}`, alt: "attribution per prompt feature" }), el("figcaption", {}, "plotSeqAttr()")));
  card.append(el("h4", {}, "Pictures"), pics);
  $("results").replaceChildren(card);
}

async function explain(ev) {
  ev.preventDefault();
  showError("");
  const body = request();
  const controller = new AbortController();
  inFlight = controller;
  $("explain").disabled = true;
  $("cancel").disabled = false;
  $("status").textContent = "explaining…";
  try {
    const res = await fetch("/api/explain", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: controller.signal });
    const r = await res.json();
    if (!res.ok) throw new Error(r.error || `HTTP ${res.status}`);
    render(body, r);
    $("status").textContent = `done in ${r.timeMs} ms`;
  } catch (e) {
    if (controller.signal.aborted) $("status").textContent = "cancelled";
    else {
      showError(e.message);
      $("status").textContent = "";
    }
  } finally {
    inFlight = null;
    $("explain").disabled = false;
    $("cancel").disabled = true;
  }
}

function useExample(p) {
  if (p.template !== undefined) {
    $("kind").value = "template";
    $("template").value = p.template;
    const values = Array.isArray(p.values) ? p.values : Object.values(p.values || {});
    $("values").value = values.join("\n");
    $("baselines").value = Array.isArray(p.baselines) ? p.baselines.join("\n") : "";
  } else {
    $("kind").value = "text";
    $("text").value = p.text;
  }
  $("target").value = typeof p.target === "string" ? p.target : "";
  syncControls();
}

async function start() {
  info = await (await fetch("/api/info")).json();
  $("model").textContent = `${info.model} · ${info.tokenizer} · ${info.signature}`;
  for (const m of info.methods) $("method").append(el("option", { value: m.name }, m.name));
  for (const l of info.layers) $("layer").append(el("option", { value: l }, l));
  $("count").textContent = info.examples.length ? `${info.examples.length} from the prompts file` : "none given (--prompts FILE.jsonl); write one on the right";
  info.examples.forEach((p, i) => {
    const li = el("li", { className: "example textual" }, el("div", { className: "name" }, p.id || `prompt ${i + 1}`),
      el("div", { className: "prompt" }, p.template !== undefined ? p.template.replace(/\{[^{}]*\}/g, () => "▢") : p.text));
    li.dataset.testid = "example";
    li.addEventListener("click", () => {
      document.querySelectorAll(".example.selected").forEach((x) => x.classList.remove("selected"));
      li.classList.add("selected");
      useExample(p);
    });
    $("examples").append(li);
  });
  $("method").addEventListener("change", syncControls);
  $("kind").addEventListener("change", () => {
    const m = info.methods.find((x) => x.name === $("method").value);
    if (m.layer && $("kind").value === "template") $("method").value = info.methods[0].name;
    syncControls();
  });
  $("controls").addEventListener("submit", explain);
  $("cancel").addEventListener("click", () => inFlight && inFlight.abort());
  syncControls();
}
start().catch((e) => showError(`could not load the page's data: ${e.message}`));
