/* The admin dashboard: versions and promotion, accuracy history and the daily share of answers
   not recognised (inline SVG), new images,
   jobs with live progress, and the fine-tune form. */
"use strict";

(function () {
  const {api, el, svg, fill, percent, when, show, hide} = window.Champi;
  const app = document.getElementById("admin-app");
  if (!app) return;

  const JOBS_EVERY_MS = 3000;
  const OVERVIEW_EVERY_MS = 30000;
  const targetAccuracy = Number(app.dataset.targetAccuracy);
  const targetNewImages = Number(app.dataset.targetNewImages);
  const alias = app.dataset.alias;
  const $ = (id) => document.getElementById(id);
  const errorBox = $("admin-error");
  let versions = [];
  let jobStates = {};

  function fail(error) {
    show(errorBox, error && error.message ? error.message : String(error));
  }

  // The metrics worth a glance, in this order, with readable names; the rest are in MLflow.
  const KEY_METRICS = [["eval_top1", "eval top-1", "pct"], ["eval_top3", "eval top-3", "pct"],
                       ["val_top1", "validation top-1", "pct"], ["val_top3", "validation top-3", "pct"],
                       ["n_species", "species", "int"], ["n_train", "training images", "int"]];

  function metricText(metrics) {
    const m = metrics || {};
    const parts = KEY_METRICS.filter(([key]) => typeof m[key] === "number")
      .map(([key, name, kind]) => name + " " + (kind === "pct" ? percent(m[key]) : String(Math.round(m[key]))));
    if (!parts.length) {
      return Object.keys(m).sort().slice(0, 3).map((k) => k + " " + Number(m[k]).toPrecision(3)).join(" · ");
    }
    return parts.slice(0, 4).join(" · ");
  }

  // --- versions and the production card ---------------------------------------------------
  async function loadVersions() {
    try {
      versions = await api("GET", "/models");
    } catch (error) {
      fail(error);
      return;
    }
    renderVersions();
    renderProduction();
    loadNewImages();
  }

  function production() {
    return versions.find((v) => v.aliases.map((a) => a.toLowerCase()).includes(alias)) || null;
  }

  function renderProduction() {
    const box = $("production");
    const prod = production();
    const serving = versions.find((v) => v.serving) || null;
    if (!prod) {
      box.replaceChildren(el("p", {class: "muted", text: "No version is in production yet. Promote one below."}));
      return;
    }
    const onEval = typeof prod.metrics.eval_top1 === "number";
    const top1 = onEval ? prod.metrics.eval_top1 : prod.metrics.val_top1;
    const servingLine = serving && serving.version === prod.version
      ? el("span", {class: "tag ok", "data-testid": "serving-version", text: "serving v" + serving.version})
      : el("span", {class: "tag warn", "data-testid": "serving-version",
                    text: serving ? "still serving v" + serving.version + ", loading…" : "not loaded yet"});
    fill(box,
      el("p", {class: "big"}, el("span", {"data-testid": "production-version", text: "v" + prod.version}), " ", servingLine),
      typeof top1 === "number"
        ? el("p", {}, "Top-1 accuracy ", el("strong", {text: percent(top1)}),
             el("span", {class: "muted small", text: onEval ? " on the evaluation set" : " on the validation split"}))
        : null,
      el("p", {class: "muted small", text: prod.promoted_at ? "Promoted " + when(prod.promoted_at) : "Created " + when(prod.created_at)}),
      el("p", {class: "muted small", text: metricText(prod.metrics)}));
  }

  function renderVersions() {
    const body = $("versions");
    if (!versions.length) {
      body.replaceChildren(el("tr", {}, el("td", {colspan: 5, class: "muted", text: "No registered version yet."})));
      return;
    }
    const sorted = versions.slice().sort((a, b) => Number(b.version) - Number(a.version));
    body.replaceChildren(...sorted.map((v) => {
      const inProduction = v.aliases.map((a) => a.toLowerCase()).includes(alias);
      const status = el("td", {});
      if (inProduction) status.append(el("span", {class: "tag ok", text: alias}));
      if (v.serving) status.append(el("span", {class: "tag", text: "serving"}));
      for (const a of v.aliases) if (a.toLowerCase() !== alias) status.append(el("span", {class: "tag", text: a}));
      const action = inProduction
        ? el("span", {class: "muted small", text: "current"})
        : el("button", {type: "button", class: "small-button", "data-testid": "promote-" + v.version,
                        onclick: (event) => promote(v.version, event.currentTarget)}, "Promote");
      status.dataset.label = "Status";
      return el("tr", {"data-version": v.version},
        el("th", {scope: "row", text: "v" + v.version}),
        status,
        el("td", {class: "small", "data-label": "Metrics", text: metricText(v.metrics) || "—"}),
        el("td", {class: "small", "data-label": "Created", text: when(v.created_at)}),
        el("td", {class: "action"}, action));
    }));
  }

  async function promote(version, button) {
    if (!window.confirm("Promote version " + version + " to " + alias + "? Serving switches to it within seconds.")) return;
    hide(errorBox);
    button.disabled = true;
    try {
      await api("POST", "/models/" + encodeURIComponent(version) + "/promote");
    } catch (error) {
      fail(error);
    }
    await loadVersions();
  }

  // --- new images since promotion ---------------------------------------------------------
  async function loadNewImages() {
    const box = $("new-images");
    if (!production()) {
      box.replaceChildren(el("p", {class: "muted", text: "Counted once a version is in production."}));
      return;
    }
    let data;
    try {
      data = await api("GET", "/nb_new_img?stage=" + encodeURIComponent(alias));
    } catch (error) {
      box.replaceChildren(el("p", {class: "muted", text: error.message}));
      return;
    }
    const n = data.nb_new_img;
    const ratio = Math.min(1, n / targetNewImages);
    const meter = el("span", {class: n >= targetNewImages ? "bar-fill over" : "bar-fill"});
    meter.style.width = Math.max(0.5, ratio * 100).toFixed(1) + "%";
    fill(box,
      el("p", {class: "big"}, el("span", {"data-testid": "new-images-count", text: String(n)}),
        el("span", {class: "muted", text: " / " + targetNewImages})),
      el("span", {class: "bar-track", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": targetNewImages,
                  "aria-valuenow": n}, meter),
      el("p", {class: "muted small", text: "since v" + data.version + " was promoted " + when(data.promoted_at)}),
      n >= targetNewImages ? el("p", {class: "alert alert-warn", text: "Threshold reached: time to fine-tune or retrain."}) : null);
  }

  // --- accuracy history chart --------------------------------------------------------------
  async function loadHistory() {
    try {
      const events = await api("GET", "/monitor/history?limit=100");
      drawHistory(events.slice().reverse());
    } catch (error) {
      fail(error);
    }
  }

  let lastPoints = [];

  function drawHistory(points) {
    lastPoints = points;
    const box = $("history-chart");
    const summary = $("history-summary");
    const withAccuracy = points.filter((p) => typeof p.accuracy === "number");
    if (!withAccuracy.length) {
      box.replaceChildren(el("p", {class: "muted", text: points.length
        ? "The checks so far could not measure accuracy (no model or no evaluation set)."
        : "No periodic check has run yet. “Check now” runs one."}));
      summary.textContent = "";
      return;
    }
    // Drawn at the box's own width, so that text keeps its size; redrawn when that changes.
    const W = Math.max(280, Math.round(box.clientWidth || 640)), H = W < 500 ? 200 : 240;
    const L = 44, R = 12, T = 14, B = 30;
    const times = withAccuracy.map((p, i) => {
      const t = Date.parse(p.checked_at);
      return Number.isNaN(t) ? i : t;
    });
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t, i) => t1 > t0 ? L + (W - L - R) * (t - t0) / (t1 - t0)
                                : L + (W - L - R) * (withAccuracy.length > 1 ? i / (withAccuracy.length - 1) : 0.5);
    const y = (a) => T + (H - T - B) * (1 - a);
    const chart = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img",
                              "aria-label": "Accuracy of the last " + withAccuracy.length + " checks"});
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      chart.append(svg("line", {x1: L, x2: W - R, y1: y(tick), y2: y(tick), class: "grid"}));
      chart.append(svg("text", {x: L - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end", text: percent(tick, 0)}));
    }
    chart.append(svg("line", {x1: L, x2: W - R, y1: y(targetAccuracy), y2: y(targetAccuracy), class: "target"}));
    chart.append(svg("text", {x: W - R, y: y(targetAccuracy) - 6, class: "axis target-label", "text-anchor": "end",
                              text: "target " + percent(targetAccuracy, 0)}));
    const coords = withAccuracy.map((p, i) => [x(times[i], i), y(p.accuracy)]);
    chart.append(svg("polyline", {points: coords.map((c) => c[0].toFixed(1) + "," + c[1].toFixed(1)).join(" "), class: "line"}));
    withAccuracy.forEach((p, i) => {
      chart.append(svg("circle", {cx: coords[i][0].toFixed(1), cy: coords[i][1].toFixed(1), r: 4,
                                  class: p.accuracy < targetAccuracy ? "point low" : "point"},
        svg("title", {text: when(p.checked_at) + ": " + percent(p.accuracy) + (p.model_version ? " (v" + p.model_version + ")" : "")})));
    });
    const first = withAccuracy[0], last = withAccuracy[withAccuracy.length - 1];
    chart.append(svg("text", {x: L, y: H - 8, class: "axis", "text-anchor": "start", text: shortDate(first.checked_at)}));
    if (withAccuracy.length > 1) {
      chart.append(svg("text", {x: W - R, y: H - 8, class: "axis", "text-anchor": "end", text: shortDate(last.checked_at)}));
    }
    box.replaceChildren(chart);
    summary.textContent = "Last check " + when(last.checked_at) + ": " + percent(last.accuracy) +
      (last.alerts && last.alerts.length ? " · " + last.alerts.join("; ") : " · no alert");
  }

  // --- species experts named that the model does not know yet -------------------------------
  async function loadWaitingSpecies() {
    const list = $("waiting-species");
    let data;
    try {
      data = await api("GET", "/species");
    } catch (error) {
      list.replaceChildren(el("li", {class: "muted", text: error.message}));
      return;
    }
    const learning = data.species.filter((s) => s.state === "ready" || s.state === "waiting");
    if (!learning.length) {
      list.replaceChildren(el("li", {class: "muted", text: "None: every species experts named is known to the model."}));
      return;
    }
    list.replaceChildren(...learning.map((s) => {
      const curated = s.confirmed + s.imported;
      const meter = el("span", {class: curated >= data.min_photos ? "bar-fill over" : "bar-fill"});
      meter.style.width = Math.max(0.5, Math.min(1, curated / data.min_photos) * 100).toFixed(1) + "%";
      return el("li", {class: "species-item", "data-species": s.species, "data-state": s.state},
        el("span", {class: "bar-label"},
          el("span", {class: "species", text: s.species}),
          el("span", {class: s.state === "ready" ? "tag ok" : "tag", text: s.state === "ready" ? "ready" : "waiting"}),
          el("span", {class: "pct", text: curated + " / " + data.min_photos})),
        el("span", {class: "bar-track", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": data.min_photos,
                    "aria-valuenow": curated, "aria-label": s.species + ": photos labelled by a person"}, meter));
    }));
  }

  // --- live-traffic signals ---------------------------------------------------------------
  const SIGNAL_NAMES = {
    expert_accuracy: "Expert accuracy",
    rejected_share: "Not recognised",
    score_drift: "Open-set score drift (KS)",
    confidence_drift: "Confidence drift (KS)",
  };
  let lastDrift = null;

  async function loadDrift() {
    try {
      drawDrift(await api("GET", "/drift?limit=50"));
    } catch (error) {
      fail(error);
    }
  }

  function signalValue(signal) {
    if (signal.value === null || signal.value === undefined) return "—";
    return signal.name === "expert_accuracy" || signal.name === "rejected_share"
      ? percent(signal.value) : signal.value.toFixed(2);
  }

  function signalThreshold(signal) {
    if (signal.name === "expert_accuracy") return "≥ " + percent(signal.threshold, 0);
    if (signal.name === "rejected_share") return "p ≥ " + signal.threshold;
    return "< " + signal.threshold.toFixed(2);
  }

  function drawDrift(data) {
    lastDrift = data;
    $("drift-signals").replaceChildren(...data.current.map((signal) => el("tr",
      {class: signal.alert ? "alert" : "", "data-signal": signal.name, "data-alert": String(signal.alert)},
      el("td", {text: SIGNAL_NAMES[signal.name] || signal.name}),
      el("td", {text: signalValue(signal)}),
      el("td", {text: signalThreshold(signal)}),
      el("td", {class: "small", text: signal.sentence}))));
    if (!data.current.length) {
      $("drift-signals").replaceChildren(el("tr", {}, el("td", {colspan: 4, class: "muted", text: "No model serves."})));
    }
    // The KS distances of past checks, oldest first: the two input signals over time.
    const box = $("drift-history");
    const checks = data.history.slice().reverse().filter((c) => c.signals && c.signals.length);
    const names = ["score_drift", "confidence_drift"];
    const points = (name) => checks.map((c, i) => {
      const s = c.signals.find((x) => x.name === name);
      return s && s.value !== null ? [i, s.value] : null;
    }).filter(Boolean);
    if (checks.length < 2 || !names.some((n) => points(n).length > 1)) {
      box.replaceChildren(el("p", {class: "muted small", text: "The chart appears after two checks with drift signals."}));
      return;
    }
    const W = Math.max(280, Math.round(box.clientWidth || 640)), H = 160, L = 44, R = 12, T = 14, B = 24;
    const threshold = (data.current.find((s) => s.name === "score_drift") || {threshold: 0.25}).threshold;
    const x = (i) => L + (W - L - R) * (checks.length > 1 ? i / (checks.length - 1) : 0.5);
    const y = (v) => T + (H - T - B) * (1 - Math.min(1, v));
    const chart = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img",
                              "aria-label": "KS distance of the last " + checks.length + " checks"});
    for (const tick of [0, 0.5, 1]) {
      chart.append(svg("line", {x1: L, x2: W - R, y1: y(tick), y2: y(tick), class: "grid"}));
      chart.append(svg("text", {x: L - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end", text: tick.toFixed(1)}));
    }
    chart.append(svg("line", {x1: L, x2: W - R, y1: y(threshold), y2: y(threshold), class: "target"}));
    names.forEach((name, index) => {
      const line = points(name);
      if (line.length > 1) {
        chart.append(svg("polyline", {class: "series series-" + index, "data-series": name,
          points: line.map(([i, v]) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ")}));
      }
      chart.append(svg("text", {x: L + 6 + index * 200, y: H - 6, class: "axis legend series-label-" + index,
                                text: SIGNAL_NAMES[name]}));
    });
    box.replaceChildren(chart);
  }

  // --- share of answers not recognised, per day ---------------------------------------------
  const REJECTION_DAYS = 30;
  let lastRejections = null;

  async function loadRejections() {
    try {
      drawRejections(await api("GET", "/monitor/open-set?days=" + REJECTION_DAYS));
    } catch (error) {
      fail(error);
    }
  }

  function drawRejections(data) {
    lastRejections = data;
    const box = $("rejections-chart");
    const summary = $("rejections-summary");
    const days = data.days;
    const scored = days.filter((d) => d.rejected.n > 0);
    if (!scored.length) {
      box.replaceChildren(el("p", {class: "muted", text: "No answer with an open-set verdict in the last " + days.length + " days."}));
      summary.textContent = "";
      return;
    }
    const expected = data.expected_rejected;
    // Up to the highest interval's top, rounded up to a tenth, so that the axis reads plainly.
    const highest = Math.max(0.1, 2 * (expected || 0), ...scored.map((d) => d.rejected.high));
    const top = Math.min(1, Math.ceil(highest * 10 - 1e-9) / 10);
    const W = Math.max(280, Math.round(box.clientWidth || 640)), H = W < 500 ? 160 : 190;
    const L = 44, R = 12, T = 14, B = 30;
    const step = (W - L - R) / days.length;
    const y = (a) => T + (H - T - B) * (1 - a / top);
    const chart = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img",
                              "aria-label": "Share of answers not recognised, last " + days.length + " days"});
    for (const tick of [0, top / 2, top]) {
      chart.append(svg("line", {x1: L, x2: W - R, y1: y(tick), y2: y(tick), class: "grid"}));
      chart.append(svg("text", {x: L - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end", text: percent(tick, 0)}));
    }
    days.forEach((d, i) => {
      if (!d.rejected.n) return;
      const r = d.rejected;
      chart.append(svg("rect", {x: (L + i * step + step * 0.15).toFixed(1), y: y(r.rate).toFixed(1),
                                width: Math.max(1, step * 0.7).toFixed(1), height: Math.max(0, y(0) - y(r.rate)).toFixed(1),
                                class: expected !== null && r.low > expected ? "bar high" : "bar"},
        svg("title", {text: d.day + ": " + r.k + " of " + r.n + " not recognised (" + percent(r.rate) +
                             ", 95% CI " + percent(r.low) + "–" + percent(r.high) + ")"})));
    });
    if (expected !== null) {
      chart.append(svg("line", {x1: L, x2: W - R, y1: y(expected), y2: y(expected), class: "target"}));
      chart.append(svg("text", {x: L + 6, y: y(expected) - 6, class: "axis target-label", "text-anchor": "start",
                                text: "expected " + percent(expected, 0)}));
    }
    chart.append(svg("text", {x: L, y: H - 8, class: "axis", "text-anchor": "start", text: shortDate(days[0].day)}));
    chart.append(svg("text", {x: W - R, y: H - 8, class: "axis", "text-anchor": "end", text: shortDate(days[days.length - 1].day)}));
    box.replaceChildren(chart);
    const k = scored.reduce((sum, d) => sum + d.rejected.k, 0), n = scored.reduce((sum, d) => sum + d.rejected.n, 0);
    summary.textContent = k + " of " + n + " answers not recognised in " + days.length + " days (" + percent(k / n) + ")" +
      (expected !== null ? "; the serving version was set to reject " + percent(expected, 0) + " of its own held-out photos." : ".");
  }

  function shortDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleDateString(undefined, {day: "numeric", month: "short"});
  }

  async function monitorNow(event) {
    const button = event.currentTarget;
    button.disabled = true;
    hide(errorBox);
    try {
      await api("POST", "/monitor");
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
    }
    loadHistory();
    loadDrift();
    loadNewImages();
  }

  // --- jobs ----------------------------------------------------------------------------------
  function progressOf(job) {
    const p = job.progress || {};
    const pairs = [["epoch", "epochs"], ["step", "steps"], ["done", "total"], ["current", "total"]];
    for (const [a, b] of pairs) {
      if (typeof p[a] === "number" && typeof p[b] === "number" && p[b] > 0) return Math.min(1, p[a] / p[b]);
    }
    if (typeof p.fraction === "number") return Math.min(1, p.fraction);
    if (job.state === "succeeded") return 1;
    return null;
  }

  function progressText(job) {
    const p = job.progress || {};
    return Object.entries(p)
      .filter(([, v]) => ["string", "number", "boolean"].includes(typeof v))
      .slice(0, 6)
      .map(([k, v]) => k + " " + (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v))
      .join(" · ");
  }

  function renderJob(job) {
    const fraction = progressOf(job);
    const bar = el("span", {class: "bar-track", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
                            "aria-valuenow": fraction === null ? null : Math.round(fraction * 100)});
    const meter = el("span", {class: job.state === "failed" ? "bar-fill over" : (fraction === null && job.state === "running" ? "bar-fill indeterminate" : "bar-fill")});
    meter.style.width = ((fraction === null ? (job.state === "running" ? 0.3 : 0) : fraction) * 100).toFixed(1) + "%";
    bar.append(meter);
    const params = job.params || {};
    const detail = job.kind === "finetune"
      ? "epochs " + params.epochs + " · blocks " + params.variables + (params.promote_if_better ? " · promote if better" : "")
      : Object.entries(params).slice(0, 4).map(([k, v]) => k + " " + v).join(" · ");
    let outcome = null;
    if (job.error) outcome = el("p", {class: "small error-text", text: job.error});
    else if (job.result) {
      const r = job.result;
      outcome = el("p", {class: "small", text: r.version
        ? "→ v" + r.version + (r.promoted ? " (promoted)" : "") + (r.metrics ? " · " + metricText(r.metrics) : "")
        : Object.entries(r).slice(0, 4).map(([k, v]) => k + " " + (typeof v === "object" ? JSON.stringify(v) : v)).join(" · ")});
    }
    return el("li", {class: "job", "data-job": job.id, "data-state": job.state},
      el("div", {class: "job-head"},
        el("strong", {text: job.kind}),
        el("span", {class: "tag state-" + job.state, text: job.state}),
        el("span", {class: "muted small", text: when(job.created_at) + (job.username ? " · " + job.username : "")})),
      el("p", {class: "small muted", text: detail}),
      bar,
      el("p", {class: "small", text: progressText(job)}),
      outcome);
  }

  async function loadJobs() {
    let jobs;
    try {
      jobs = await api("GET", "/jobs?limit=20");
    } catch (error) {
      fail(error);
      return;
    }
    const list = $("jobs");
    if (!jobs.length) list.replaceChildren(el("li", {class: "muted", text: "No job yet."}));
    else list.replaceChildren(...jobs.map(renderJob));
    $("jobs-updated").textContent = "updated " + new Date().toLocaleTimeString();
    let finished = false;
    const states = {};
    for (const job of jobs) {
      states[job.id] = job.state;
      const before = jobStates[job.id];
      if (before && before !== job.state && (job.state === "succeeded" || job.state === "failed")) finished = true;
    }
    jobStates = states;
    if (finished) {
      loadVersions();
      loadHistory();
    }
  }

  async function submitJob(button, path, body) {
    const status = $("finetune-status");
    button.disabled = true;
    hide(errorBox);
    try {
      const job = await api("POST", path, {json: body});
      show(status, "Job " + job.id.slice(0, 8) + " (" + job.kind + ") queued.");
      loadJobs();
    } catch (error) {
      show(status, error.message);
    } finally {
      button.disabled = false;
    }
  }

  function startFinetune(event) {
    event.preventDefault();
    const form = event.currentTarget;
    if (!form.reportValidity()) return;
    submitJob(form.querySelector("button[type=submit]"), "/finetune", {
      variables: Number(form.elements.variables.value),
      epochs: Number(form.elements.epochs.value),
      promote_if_better: form.elements.promote_if_better.checked,
    });
  }

  function startRetrain(event) {
    const form = $("finetune-form");
    submitJob(event.currentTarget, "/retrain", {promote_if_better: form.elements.promote_if_better.checked});
  }

  function every(ms, fn) {
    window.setInterval(() => {
      if (!document.hidden) fn();
    }, ms);
  }

  let drawnWidth = 0;
  window.addEventListener("resize", () => {
    const width = $("history-chart").clientWidth;
    if (lastPoints.length && Math.abs(width - drawnWidth) > 8) {
      drawnWidth = width;
      drawHistory(lastPoints);
      if (lastRejections) drawRejections(lastRejections);
      if (lastDrift) drawDrift(lastDrift);
    }
  });

  $("finetune-form").addEventListener("submit", startFinetune);
  $("retrain").addEventListener("click", startRetrain);
  $("monitor-now").addEventListener("click", monitorNow);
  loadVersions();
  loadHistory();
  loadRejections();
  loadDrift();
  loadWaitingSpecies();
  loadJobs();
  every(JOBS_EVERY_MS, loadJobs);
  every(OVERVIEW_EVERY_MS, loadVersions);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) loadJobs();
  });
  app.dataset.ready = "true";
})();
