/* ChampiPy pages: calls to the JSON API with the session cookie and the CSRF token, and a few
   DOM helpers. No framework, no inline script: the Content-Security-Policy forbids them. */
"use strict";

(function () {
  function meta(name) {
    const tag = document.querySelector('meta[name="' + name + '"]');
    return tag ? tag.getAttribute("content") || "" : "";
  }

  const root = meta("app-root");

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
    }
  }

  function describe(detail) {
    if (typeof detail === "string") return detail;
    try { return JSON.stringify(detail); } catch (e) { return String(detail); }
  }

  /* api("POST", "/predictions", {json: {...}}) or {form: FormData}; resolves to the JSON body. */
  async function api(method, path, options) {
    const opts = options || {};
    const headers = {
      "Accept": "application/json",
      "X-CSRF-Token": meta("csrf-token"),
      "X-Requested-With": "champipy-web",
    };
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form !== undefined) {
      body = opts.form;
    }
    let response;
    try {
      response = await fetch(root + path, {
        method: method, headers: headers, body: body, credentials: "same-origin", cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, "network", "The server cannot be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (response.status === 401) {
      const next = window.location.pathname.replace(root, "") || "/";
      window.location.assign(root + "/login?next=" + encodeURIComponent(next));
      throw new ApiError(401, "unauthorized", "Your session has ended: sign in again.");
    }
    if (!response.ok) {
      const detail = data && data.detail !== undefined ? describe(data.detail) : "HTTP " + response.status;
      throw new ApiError(response.status, data && data.error ? data.error : "error", detail);
    }
    return data;
  }

  /* el("li", {class: "x", text: "..."}, child, ...): text is set as text, never as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  /* Replace a node's children, skipping null/undefined/false (replaceChildren would print them). */
  function fill(node, ...children) {
    node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  /* 0.8123 -> "81.2%"; a probability short of 1 never reads as 100%. */
  function percent(p, digits) {
    const d = digits === undefined ? 1 : digits;
    let value = p * 100;
    const step = Math.pow(10, -d);
    if (p < 1 && Number((value).toFixed(d)) >= 100) value = 100 - step;
    return value.toFixed(d) + "%";
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
  }

  function show(node, message) {
    if (message === undefined) {
      node.hidden = false;
      return;
    }
    node.textContent = message;
    node.hidden = !message;
  }

  function hide(node) {
    node.hidden = true;
  }

  function speciesLink(species) {
    return "https://mushroomobserver.org/names?pattern=" + encodeURIComponent(species.replace(/_/g, " "));
  }

  window.Champi = {api: api, ApiError: ApiError, el: el, svg: svg, fill: fill, percent: percent, when: when,
                   show: show, hide: hide, meta: meta, root: root, speciesLink: speciesLink};
})();
