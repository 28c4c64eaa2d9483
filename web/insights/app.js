// torchexplain Insights: the page's script (plain browser JavaScript, no
// framework, nothing loaded from elsewhere). It talks to the server's /api.
"use strict";
(function () {
  const $ = (id) => /** @type {any} */ (document.getElementById(id));
  /** @type {any} */ let info = null;
  /** @type {number | null} */ let selected = null;
  /** @type {any[]} */ let shown = [];
  /** @type {{ id: string, source?: EventSource, done: boolean }[]} */ let running = [];

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  async function api(url, options) {
    const res = await fetch(url, options);
    const body = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
    return body;
  }

  function showError(message) {
    const box = $("error");
    if (!message) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.hidden = false;
    box.textContent = message;
  }

  const fmt = (v, d = 3) => (typeof v === "number" ? (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d)) : String(v));

  // ---- set-up ---------------------------------------------------------------------------------
  async function init() {
    info = await api("/api/info");
    const shapes = info.inputs.map((x) => `${x.name}${x.name === x.kind ? "" : ` (${x.kind})`} [${x.shape}]`).join(" · ");
    $("model").textContent = `${info.model} — ${info.count} examples — ${shapes}`;
    $("model").title = info.signature;
    for (const [c, name] of info.classes.entries()) $("filter-class").append(el("option", { value: c, text: name === String(c) ? `class ${c}` : `${c}: ${name}` }));
    $("filter-correct").disabled = !info.hasLabels;
    for (const m of info.methods) {
      $("method").append(el("option", { value: m.name, text: m.name }));
      $("method-compare").append(el("option", { value: m.name, text: m.name }));
    }
    for (const id of ["layer", "layer-compare"]) for (const l of info.layers) $(id).append(el("option", { value: l, text: l }));
    $("method").value = info.defaultMethod;
    if (info.defaultLayer) $("layer").value = info.defaultLayer;
    $("layer-compare").value = info.defaultLayer || info.layers[info.layers.length - 1] || "";
    for (const v of info.visualizations) $("visualization").append(el("option", { value: v, text: v.replace(/_/g, " ") }));
    $("visualization").value = "blended_heat_map";
    for (const s of info.signs) $("sign").append(el("option", { value: s, text: s.replace(/_/g, " ") }));
    $("sign").value = "absolute_value";
    // Picture settings matter only where something is drawn over an image.
    const images = info.inputs.some((x) => x.kind === "image");
    $("visualization-wrap").hidden = !images;
    $("sign-wrap").hidden = !images;
    const metricNames = Object.keys(info.metrics).filter((k) => info.metrics[k]);
    $("metrics-wrap").hidden = metricNames.length === 0;
    $("metrics-names").textContent = metricNames.join(", ");
    $("steps").max = info.limits.maxSteps;
    $("samples").max = info.limits.maxSteps;
    fillTargets();
    updateFields();
    for (const id of ["method", "method-compare", "baselines"]) $(id).addEventListener("change", updateFields);
    for (const id of ["filter-class", "filter-correct"]) $(id).addEventListener("change", () => loadExamples(false));
    $("controls").addEventListener("submit", (e) => {
      e.preventDefault();
      explain();
    });
    $("cancel").addEventListener("click", cancel);
    if (info.influence) {
      $("influence-method").textContent = `(${info.influence.method}, ${info.influence.checkpoints} checkpoint${info.influence.checkpoints === 1 ? "" : "s"})`;
      $("influence-k").value = info.influence.k;
      $("influence-run").addEventListener("click", findInfluence);
    }
    await loadExamples();
  }

  function fillTargets() {
    const t = $("target");
    const keep = t.value;
    t.textContent = "";
    t.append(el("option", { value: "predicted", text: "predicted class" }));
    if (info.hasLabels) t.append(el("option", { value: "label", text: "true label" }));
    for (const [c, name] of info.classes.entries()) t.append(el("option", { value: c, text: name === String(c) ? `class ${c}` : `${c}: ${name}` }));
    if (keep) t.value = keep;
  }

  const methodInfo = (name) => info.methods.find((m) => m.name === name);
  function updateFields() {
    const a = methodInfo($("method").value);
    const b = $("method-compare").value ? methodInfo($("method-compare").value) : null;
    const any = (k) => !!(a && a[k]) || !!(b && b[k]);
    $("layer-wrap").hidden = !(a && a.layer);
    $("layer-compare-wrap").hidden = !(b && b.layer);
    $("steps-wrap").hidden = !any("steps");
    $("samples-wrap").hidden = !any("samples");
    $("baselines-wrap").hidden = !any("baselines");
    $("baseline-value-wrap").hidden = $("baselines-wrap").hidden || $("baselines").value !== "number";
    $("target").disabled = !any("target");
  }

  // ---- examples ----------------------------------------------------------------------------------
  let total = 0;
  // more: the next page of the same filters, appended.
  async function loadExamples(more) {
    const q = new URLSearchParams();
    if ($("filter-class").value !== "") q.set("class", $("filter-class").value);
    if ($("filter-correct").value !== "") q.set("correct", $("filter-correct").value);
    if (more === true) q.set("offset", String(shown.length));
    try {
      const r = await api(`/api/examples?${q}`);
      shown = more === true ? shown.concat(r.examples) : r.examples;
      total = r.total;
      $("count").textContent = `${r.total} of ${info.count} match${shown.length < r.total ? `; the first ${shown.length} listed` : ""}`;
      renderExamples();
    } catch (e) {
      showError(e.message);
    }
  }

  function exampleBody(x) {
    return el("div", { class: "inputs" }, ...x.inputs.map((inp) =>
      inp.kind === "image" ? el("img", { src: inp.preview, alt: `${inp.name} of example ${x.index}`, class: "thumb" }) : el("div", { class: `snippet ${inp.kind}`, text: inp.text, title: inp.text }),
    ));
  }

  function labels(x) {
    const parts = [];
    if (x.label !== null) parts.push(el("span", { class: "label", text: `true ${x.labelName}` }));
    if (x.predicted !== null) parts.push(el("span", { class: "pred", text: `predicted ${x.predictedName} (${(x.probability * 100).toFixed(0)}%)` }));
    return el("div", { class: "labels" }, ...parts);
  }

  function renderExamples() {
    const list = $("examples");
    list.textContent = "";
    if (shown.length === 0) list.append(el("li", { class: "muted empty", text: "No example matches the filters." }));
    for (const x of shown) {
      const item = el("li", {
        "data-testid": "example",
        "data-index": x.index,
        "data-correct": x.correct === null ? "unknown" : String(x.correct),
        class: `example ${x.inputs.some((i) => i.kind === "image") ? "" : "textual"} ${x.correct === true ? "correct" : x.correct === false ? "incorrect" : ""} ${x.index === selected ? "selected" : ""}`,
        tabindex: 0,
        onclick: () => select(x),
        onkeydown: (e) => (e.key === "Enter" || e.key === " ") && select(x),
      }, exampleBody(x), el("div", { class: "name", text: x.name }), labels(x));
      list.append(item);
    }
    if (shown.length < total) list.append(el("li", {}, el("button", { type: "button", class: "more", "data-testid": "more", text: `Show more (${total - shown.length} left)`, onclick: () => loadExamples(true) })));
  }

  function select(x) {
    selected = x.index;
    for (const li of document.querySelectorAll("[data-testid=example]")) li.classList.toggle("selected", Number(li.getAttribute("data-index")) === selected);
    const box = $("selected");
    box.textContent = "";
    box.classList.remove("muted");
    box.append(el("strong", { text: `Example ${x.name}` }), labels(x));
    if (info.influence) {
      $("influence").hidden = false;
      $("influence-results").textContent = "";
      $("influence-status").textContent = "";
    }
  }

  // ---- influence: the training examples behind the chosen example's prediction ----------------
  async function findInfluence() {
    if (selected === null) return;
    const example = selected;
    $("influence-run").disabled = true;
    $("influence-status").textContent = "scoring the training set…";
    const out = $("influence-results");
    out.textContent = "";
    try {
      const r = await api(`/api/examples/${example}/influence?k=${encodeURIComponent($("influence-k").value)}`);
      if (selected !== example) return;
      const cls = (c) => (c === null ? "" : info.classes[c] ?? String(c));
      const row = (title, list, kind) =>
        el("div", { class: "influence-row", "data-testid": `influence-${kind}` }, el("h4", { text: title }),
          el("div", { class: "pictures" }, ...list.map((p) =>
            el("figure", { "data-testid": "influence-example", "data-index": p.index },
              el("img", { src: p.preview, alt: `training example ${p.index}`, class: "picture small" }),
              el("figcaption", { text: `#${p.index}${p.label === null ? "" : ` · ${cls(p.label)}`} · ${p.score >= 0 ? "+" : ""}${fmt(p.score)}` })))));
      const which = r.labelKind === "label" ? `its true label ${cls(r.label)}` : `its predicted class ${cls(r.label)}`;
      out.append(
        row(`Proponents: the training examples that most supported ${which}`, r.proponents, "proponents"),
        row("Opponents: the training examples that most worked against it", r.opponents, "opponents"),
      );
      $("influence-status").textContent = "";
    } catch (e) {
      $("influence-status").textContent = "";
      showError(e.message);
    } finally {
      $("influence-run").disabled = false;
    }
  }

  // ---- explaining ---------------------------------------------------------------------------------
  function request(method, layer) {
    const m = methodInfo(method);
    const body = { example: selected, method, target: $("target").value, options: $("options").value.trim(), sign: $("sign").value, visualization: $("visualization").value, metrics: $("metrics").checked };
    if (m && m.layer) body.layer = layer;
    if (m && m.steps) body.nSteps = $("steps").value;
    if (m && m.samples) body.nSamples = $("samples").value;
    if (m && m.baselines) body.baselines = $("baselines").value === "number" ? Number($("baseline-value").value) : $("baselines").value;
    return body;
  }

  function setBusy(busy) {
    $("explain").disabled = busy;
    $("cancel").disabled = !busy;
    $("progress").hidden = !busy;
    if (busy) $("progress").removeAttribute("value");
  }

  async function explain() {
    showError("");
    if (selected === null) {
      showError("Pick an example first (click one on the left).");
      return;
    }
    const wanted = [[$("method").value, $("layer").value]];
    if ($("method-compare").value) wanted.push([$("method-compare").value, $("layer-compare").value]);
    const results = $("results");
    results.textContent = "";
    const columns = wanted.map(([m]) => el("div", { class: "result pending", "data-testid": "result" }, el("h3", { text: m }), el("div", { class: "muted", text: "waiting…" })));
    results.append(...columns);
    results.classList.toggle("two", columns.length > 1);
    setBusy(true);
    $("status").textContent = "starting…";
    running = [];
    const progress = new Map();
    const phases = new Map();
    const finished = wanted.map(async ([method, layer], c) => {
      let job;
      try {
        job = await api("/api/explain", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request(method, layer)) });
      } catch (e) {
        showError(e.message);
        columns[c].replaceWith((columns[c] = errorColumn(method, e.message)));
        return "error";
      }
      const entry = { id: job.id, done: false };
      running.push(entry);
      const end = await new Promise((resolve) => {
        const source = new EventSource(`/api/jobs/${job.id}/events`);
        entry.source = source;
        source.addEventListener("progress", (ev) => {
          const { progress: p, phase } = JSON.parse(ev.data);
          progress.set(c, p);
          phases.set(c, phase);
          let done = 0, total = 0;
          for (const v of progress.values()) (done += v.done), (total += v.total);
          if (total > 0) {
            $("progress").max = total;
            $("progress").value = done;
            const now = [...new Set(phases.values())].filter((x) => x !== "attribution");
            $("status").textContent = `${now.length ? `${now.join(", ")}: ` : ""}${Math.round((100 * done) / total)}% (${done} of ${total})`;
          } else $("status").textContent = "running…";
        });
        source.addEventListener("end", (ev) => {
          source.close();
          resolve(JSON.parse(ev.data));
        });
        source.onerror = () => {
          // The stream broke (server restarted?): ask once for the job's state.
          source.close();
          api(`/api/jobs/${job.id}`).then(resolve, (e) => resolve({ status: "error", method, error: { message: e.message } }));
        };
      });
      entry.done = true;
      let column;
      if (end.status === "done") column = resultColumn(end);
      else if (end.status === "cancelled") column = el("div", { class: "result cancelled", "data-testid": "result" }, el("h3", { text: method }), el("div", { class: "muted", text: "cancelled" }));
      else {
        showError(`${method}: ${end.error ? end.error.message : "failed"}`);
        column = errorColumn(method, end.error ? end.error.message : "failed");
      }
      columns[c].replaceWith((columns[c] = column));
      return end.status;
    });
    const states = await Promise.all(finished);
    setBusy(false);
    $("status").textContent = states.includes("cancelled") ? "cancelled" : states.includes("error") ? "failed" : "done";
  }

  async function cancel() {
    $("status").textContent = "cancelling…";
    await Promise.all(running.filter((r) => !r.done).map((r) => api(`/api/jobs/${r.id}/cancel`, { method: "POST" }).catch((e) => showError(e.message))));
  }

  function errorColumn(method, message) {
    return el("div", { class: "result failed", "data-testid": "result" }, el("h3", { text: method }), el("pre", { class: "error", "data-testid": "result-error", text: message }));
  }

  function resultColumn(job) {
    const r = job.result;
    const facts = [`target ${r.target === null ? "—" : info.classes[r.target] ?? r.target}`, `${r.timeMs} ms`];
    if (r.delta !== undefined) facts.push(`delta ${fmt(r.delta)}`);
    // A metric that could not be computed says why in its tooltip.
    const metrics = Object.entries(r.metrics || {}).map(([k, v]) => el("span", { class: "metric", "data-testid": `metric-${k}`, text: `${k} ${typeof v === "number" ? fmt(v) : "n/a"}`, title: typeof v === "string" ? v : `${k} = ${v}` }));
    const outputs = r.outputs.map((o) => output(job, o));
    return el("div", { class: "result", "data-testid": "result", "data-method": job.method },
      el("h3", { text: job.method }),
      el("div", { class: "facts muted", text: facts.join(" · ") }, ...metrics),
      el("div", { class: "outputs" }, ...outputs));
  }

  function output(job, o) {
    const parts = [el("h4", { text: o.title })];
    if (o.kind === "image") {
      const inp = o.input >= 0 ? info.inputs[o.input] : null;
      const row = el("div", { class: "pictures" });
      if (inp && inp.kind === "image") row.append(el("figure", {}, el("img", { src: `/api/examples/${job.example}/inputs/${o.input}.png`, alt: "the input", class: "picture" }), el("figcaption", { text: "input" })));
      row.append(el("figure", {}, el("img", { src: o.picture, alt: `${job.method} attribution`, class: "picture", "data-testid": "attribution" }), el("figcaption", { text: "attribution" })));
      parts.push(row);
    } else if (o.kind === "text") {
      parts.push(el("div", { class: "tokens", "data-testid": "tokens" }, ...o.tokens.map((t) => el("span", { class: "token", style: `background:${tokenColor(t.value)}`, title: fmt(t.value), text: t.text }))));
    } else {
      const max = Math.max(1e-12, ...o.bars.map((b) => Math.abs(b.value)));
      parts.push(el("div", { class: "bars", "data-testid": "bars" }, ...o.bars.map((b) =>
        el("div", { class: "bar-row", title: `${b.name}: ${b.value}` },
          el("span", { class: "bar-name", text: b.name }),
          el("span", { class: "bar-track" }, el("span", { class: `bar ${b.value < 0 ? "neg" : "pos"}`, style: `width:${(50 * Math.abs(b.value)) / max}%;${b.value < 0 ? `right:50%` : `left:50%`}` })),
          el("span", { class: "bar-value", text: fmt(b.value) })))));
    }
    const links = [el("a", { href: o.npy, download: "", "data-testid": "download-npy", text: "attributions .npy" })];
    if (o.picture) links.unshift(el("a", { href: o.picture, download: "", "data-testid": "download-picture", text: "picture .png" }));
    parts.push(el("div", { class: "downloads muted" }, `shape [${o.shape}] · sum ${fmt(o.sum)} · `, ...links.flatMap((l, i) => (i ? [" · ", l] : [l]))));
    return el("div", { class: "output", "data-testid": "output" }, ...parts);
  }

  // Green for positive, red for negative, as the reference's text visualisation.
  function tokenColor(v) {
    const a = Math.min(1, Math.abs(v));
    return v >= 0 ? `hsl(120, 75%, ${100 - 50 * a}%)` : `hsl(0, 75%, ${100 - 50 * a}%)`;
  }

  init().catch((e) => showError(`could not start: ${e.message}`));
})();
