/* The user page: predict from a URL or a photo, or identify an observation (a Mushroom
   Observer observation URL, or up to 5 photos of one find); show the species, send feedback,
   list recent. */
"use strict";

(function () {
  const {api, el, percent, when, show, hide, speciesLink} = window.Champi;
  const app = document.getElementById("user-app");
  if (!app) return;

  const BARS = 5;
  const RECENT = 10;
  const $ = (id) => document.getElementById(id);
  const urlForm = $("url-form"), urlInput = $("photo-url"), fileInput = $("photo-file"), dropZone = $("drop-zone");
  const busy = $("busy"), errorBox = $("error"), result = $("result"), photo = $("photo"), caption = $("photo-caption");
  const bars = $("bars"), uncertain = $("uncertain"), moLink = $("mo-link"), modelLine = $("model-line");
  const unrecognised = $("unrecognised"), unrecognisedHeadline = $("unrecognised-headline");
  const barsFold = $("bars-fold"), barsSummary = $("bars-summary");
  const confirmButton = $("confirm-button"), correctForm = $("correct-form"), correctSelect = $("correct-species");
  const feedbackStatus = $("feedback-status"), recent = $("recent"), recentEmpty = $("recent-empty");

  let current = null;   // the prediction record on screen
  let objectUrl = null; // the blob: URL of an uploaded photo's preview
  let working = false;

  function setBusy(on) {
    working = on;
    busy.hidden = !on;
    for (const button of document.querySelectorAll("#url-form button, #feedback button")) button.disabled = on;
    dropZone.classList.toggle("disabled", on);
  }

  function fail(error) {
    show(errorBox, error && error.message ? error.message : String(error));
  }

  function previewUrl(url) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = null;
    // The Content-Security-Policy lets the page show https: photos only.
    if (/^https:\/\//i.test(url)) {
      photo.src = url;
      photo.hidden = false;
      caption.textContent = url;
    } else {
      photo.removeAttribute("src");
      photo.hidden = true;
      caption.textContent = url ? url + " (preview shown for https: addresses only)" : "";
    }
  }

  function previewFile(file) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    photo.src = objectUrl;
    photo.hidden = false;
    caption.textContent = file.name;
  }

  async function identify(send) {
    if (working) return;
    hide(errorBox);
    setBusy(true);
    try {
      const outcome = await send();
      // The answer carries the top species; the record carries every species, for corrections.
      const record = await api("GET", "/predictions/" + encodeURIComponent(outcome.id));
      render(record);
      loadRecent();
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  }

  // --- observations -------------------------------------------------------------------------
  const MAX_PHOTOS = 5;
  const moHosts = (app.dataset.moHosts || "").split(",").filter(Boolean);
  const observationCard = $("observation-result");
  let currentObservation = null;

  function isObservationUrl(url) {
    // The server reads every Mushroom Observer URL; only an observation page has several photos.
    let parsed;
    try {
      parsed = new URL(url);
    } catch (error) {
      return false;
    }
    return moHosts.includes(parsed.host.toLowerCase()) && /^\/(obs\/|observations\/)?\d+\/?$/.test(parsed.pathname);
  }

  async function identifyObservation(send, previews) {
    if (working) return;
    hide(errorBox);
    setBusy(true);
    try {
      renderObservation(await send(), previews);
      loadRecent();
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  }

  function barList(results, count) {
    return results.slice(0, count).map((score, index) => {
      const fill = el("span", {class: "bar-fill"});
      fill.style.width = Math.max(0.5, score.probability * 100).toFixed(1) + "%";  // CSSOM: allowed by the CSP
      return el("li", {class: index === 0 ? "bar top" : "bar", "data-species": score.species},
        el("span", {class: "bar-label"},
          el("span", {class: "species", text: score.species}),
          el("span", {class: "pct", text: percent(score.probability)})),
        el("span", {class: "bar-track", role: "presentation"}, fill));
    });
  }

  function renderObservation(answer, previews) {
    currentObservation = answer;
    result.hidden = true;
    $("observation-verdict").textContent = answer.verdict;
    const consensus = $("observation-consensus");
    if (answer.mo && answer.mo.consensus) {
      const agrees = answer.agrees_with_consensus;
      consensus.replaceChildren(
        el("span", {text: "Mushroom Observer consensus: "}),
        el("em", {text: answer.mo.consensus}),
        el("span", {class: agrees ? "tag ok" : "tag fix", "data-testid": "consensus-tag",
                    text: agrees ? "ChampiPy agrees" : "ChampiPy disagrees"}));
      consensus.hidden = false;
    } else {
      consensus.hidden = true;
    }
    $("observation-bars").replaceChildren(...barList(answer.rejected ? [] : answer.results, BARS));
    $("observation-model").textContent = "Model " + answer.model.name + " v" + answer.model.version + " · " +
      answer.photos.length + " photo(s) combined · " + when(answer.created_at);
    const confirm = $("observation-confirm");
    confirm.hidden = !answer.answer;
    if (answer.answer) confirm.textContent = "Yes, all photos are " + answer.answer;
    hide($("observation-feedback"));
    $("observation-photos").replaceChildren(...answer.photos.map((item, i) => {
      const source = previews[i] || (/^https:\/\//i.test(item.source) ? item.source : null);
      const figure = source ? el("img", {src: source, alt: "Photo " + (i + 1), class: "thumb"})
                            : el("span", {class: "thumb none muted small", text: "no preview"});
      if (!item.prediction) {
        return el("li", {class: "observation-photo failed", "data-testid": "observation-photo"}, figure,
          el("p", {class: "alert alert-error small", text: (item.source || "photo") + ": " + item.error.detail}));
      }
      const p = item.prediction;
      return el("li", {class: "observation-photo", "data-testid": "observation-photo"}, figure,
        el("div", {class: "photo-scores"},
          el("p", {class: "muted small", text: p.verdict}),
          el("ol", {class: "bars small-bars"}, ...barList(p.results, 3))));
    }));
    observationCard.hidden = false;
  }

  function identifyObservationUrl(url) {
    previewUrl(url);
    identifyObservation(() => api("POST", "/observations", {json: {mo_observation: url, top_k: BARS}}), []);
  }

  function identifyFiles(files) {
    const images = Array.from(files).filter((f) => !f.type || f.type.startsWith("image/"));
    if (images.length <= 1) {
      identifyFile(images[0] || files[0]);
      return;
    }
    if (images.length > MAX_PHOTOS) {
      fail(new Error("An observation has at most " + MAX_PHOTOS + " photos; " + images.length + " were given."));
      return;
    }
    const form = new FormData();
    for (const file of images) form.append("file", file, file.name || "photo");
    form.append("top_k", String(BARS));
    const previews = images.map((file) => URL.createObjectURL(file));
    identifyObservation(() => api("POST", "/observations", {form: form}), previews);
  }

  async function confirmObservation() {
    if (!currentObservation || !currentObservation.answer || working) return;
    setBusy(true);
    try {
      const answer = await api("POST", "/observations/" + encodeURIComponent(currentObservation.id) + "/feedback",
                               {json: {species: currentObservation.answer}});
      show($("observation-feedback"), "Recorded for every photo: " + answer.feedback_species + ". Thank you!");
      loadRecent();
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  }

  function identifyUrl(url) {
    url = url.trim();
    if (!/^https?:\/\/\S+$/i.test(url)) {
      fail(new Error("Enter a photo address that starts with http:// or https://."));
      return;
    }
    if (isObservationUrl(url)) {
      identifyObservationUrl(url);
      return;
    }
    observationCard.hidden = true;
    previewUrl(url);
    identify(() => api("POST", "/predictions", {json: {url: url, top_k: 1}}));
  }

  function identifyFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      fail(new Error(file.name + " is not an image."));
      return;
    }
    observationCard.hidden = true;
    previewFile(file);
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    form.append("top_k", "1");
    identify(() => api("POST", "/predictions", {form: form}));
  }

  function render(record) {
    current = record;
    const results = record.results || [];
    const top = results[0];
    bars.replaceChildren(...barList(results, BARS));
    // Both decided by the server, like every answer's flag. A rejected photo keeps its ranking,
    // folded, with the server's sentence in place of the top species.
    const rejected = Boolean(record.rejected);
    unrecognised.hidden = !rejected;
    unrecognisedHeadline.textContent = rejected ? record.verdict : "";
    barsFold.open = !rejected;
    barsSummary.textContent = rejected ? "Closest species (not an answer)" : "Most likely species";
    uncertain.hidden = rejected || !record.uncertain;
    if (top) {
      moLink.href = speciesLink(top.species);
      moLink.textContent = top.species + " on Mushroom Observer";
      confirmButton.textContent = "Yes, it is " + top.species;
    }
    modelLine.textContent = "Model " + record.model.name + " v" + record.model.version +
      (record.cached ? " · answered from cache" : "") + " · " + when(record.created_at);
    correctSelect.value = "";
    suggest(results.map((s) => s.species));
    showFeedback(record.feedback_species);
    result.hidden = false;
  }

  // Names to suggest while typing: the answer's species and every species the store knows.
  let knownNames = [];
  async function loadNames() {
    try {
      knownNames = await api("GET", "/species/names");
    } catch (error) {
      knownNames = [];  // suggestions are a help, not a need: typing any name still works
    }
    suggest([]);
  }

  function suggest(names) {
    const all = Array.from(new Set([...names, ...knownNames])).sort();
    $("species-suggestions").replaceChildren(...all.map((name) => el("option", {value: name})));
  }

  function showFeedback(species) {
    if (species) show(feedbackStatus, "Recorded: " + species + ". Thank you!");
    else hide(feedbackStatus);
  }

  async function sendFeedback(species) {
    if (!current || working) return;
    hide(errorBox);
    setBusy(true);
    try {
      const record = await api("POST", "/predictions/" + encodeURIComponent(current.id) + "/feedback",
                               {json: {species: species}});
      current = record;
      showFeedback(record.feedback_species);
      loadRecent();
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  }

  async function reopen(id) {
    hide(errorBox);
    try {
      const record = await api("GET", "/predictions/" + encodeURIComponent(id));
      previewUrl(record.source_url || "");
      if (!record.source_url) caption.textContent = record.filename || "";
      render(record);
      result.scrollIntoView({behavior: "smooth", block: "start"});
    } catch (error) {
      fail(error);
    }
  }

  function shortSource(p) {
    if (p.filename && p.filename.length <= 40) return p.filename;
    if (p.source_url) {
      try {
        const url = new URL(p.source_url);
        const last = url.pathname.split("/").filter(Boolean).pop() || "";
        return url.hostname + (last ? "/…/" + (last.length > 28 ? last.slice(0, 25) + "…" : last) : "");
      } catch (e) { /* not a URL: shown as is, cut */ }
    }
    const name = p.filename || p.source_url || "photo";
    return name.length > 40 ? name.slice(0, 37) + "…" : name;
  }

  async function loadRecent() {
    try {
      const items = await api("GET", "/predictions/recent?limit=" + RECENT);
      recentEmpty.hidden = items.length > 0;
      recent.replaceChildren(...items.map((p) => {
        const top = p.results[0];
        return el("li", {class: "recent-item"},
          el("button", {type: "button", class: "recent-open", title: "Show this prediction again",
                        onclick: () => reopen(p.id)},
            el("span", {class: "species", text: p.rejected ? "Not a known species" : (top ? top.species : "?")}),
            el("span", {class: "pct", text: top && !p.rejected ? percent(top.probability, 0) : ""})),
          el("span", {class: "muted small meta", title: p.source_url || p.filename || "",
                      text: [shortSource(p), when(p.created_at)].join(" · ")}),
          p.feedback_species
            ? el("span", {class: p.feedback_species === (top && top.species) ? "tag ok" : "tag fix",
                          text: p.feedback_species === (top && top.species) ? "confirmed" : "corrected: " + p.feedback_species})
            : null);
      }));
    } catch (error) {
      fail(error);
    }
  }

  urlForm.addEventListener("submit", (event) => {
    event.preventDefault();
    identifyUrl(urlInput.value);
  });
  fileInput.addEventListener("change", () => {
    identifyFiles(fileInput.files);
    fileInput.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropZone.addEventListener(name, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) identifyFiles(files);
    else {
      const text = event.dataTransfer && event.dataTransfer.getData("text/uri-list");
      if (text) identifyUrl(text.split("\n")[0]);
    }
  });
  document.addEventListener("paste", (event) => {
    if (event.target === urlInput) return;
    const files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) {
      event.preventDefault();
      identifyFile(files[0]);
    }
  });
  confirmButton.addEventListener("click", () => {
    if (current && current.results.length) sendFeedback(current.results[0].species);
  });
  correctForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (correctSelect.value.trim()) sendFeedback(correctSelect.value);
  });
  for (const button of document.querySelectorAll("#feedback [data-answer]")) {
    button.addEventListener("click", () => sendFeedback(button.dataset.answer));
  }
  $("observation-confirm").addEventListener("click", confirmObservation);
  $("recent-refresh").addEventListener("click", loadRecent);
  photo.addEventListener("error", () => {
    photo.hidden = true;
  });

  loadRecent();
  loadNames();
  // The bookmarklet opens this page with ?url=<the Mushroom Observer page being looked at>.
  const given = new URLSearchParams(location.search).get("url");
  if (given) {
    urlInput.value = given;
    identifyUrl(given);
  }
  app.dataset.ready = "true";
})();
