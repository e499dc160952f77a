// The gateway's console: plain JavaScript, no build step, no outside requests. Every call goes
// to this origin; with client keys on, the key from the form rides as a Bearer token.
"use strict";

const KEY = "gateway.console.key";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
let stats = null;
let previous = null; // the stats before the last poll: rates are their difference
let timer = null;

// ---- calls ----------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function call(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers["authorization"] = "Bearer " + key;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const reply = await fetch(path, { method: options.method || "GET", headers, body: options.body });
  if (reply.status === 401) throw new Unauthorized("the key was refused");
  let body = null;
  try { body = await reply.json(); } catch (_) { body = null; }
  if (!reply.ok) {
    const message = body && body.error ? body.error.message : reply.status + " " + reply.statusText;
    throw new Error(message);
  }
  return { body, headers: reply.headers };
}

// ---- small helpers --------------------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
const pct = (x) => (x === null || Number.isNaN(x) ? "-" : (100 * x).toFixed(1) + " %");
function dollars(x) {
  if (!x) return "$0";
  return x < 0.01 ? "$" + x.toPrecision(2) : "$" + x.toFixed(2);
}
function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
const ms = (x) => (x === null || x === undefined ? "-" : x < 1 ? x.toFixed(2) : x.toFixed(1));
function setText(id, text) { $(id).textContent = text; }

// ---- auth -----------------------------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  $("nav").hidden = true;
  $("logout").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  $("login").hidden = false;
  setText("login-error", message || "");
  $("login-key").focus();
}

async function start() {
  try {
    stats = (await call("/ui/api/stats")).body;
  } catch (err) {
    if (err instanceof Unauthorized) {
      const hadKey = sessionStorage.getItem(KEY) !== null;
      sessionStorage.removeItem(KEY);
      showLogin(hadKey ? "That key was refused." : "");
      return;
    }
    throw err;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = sessionStorage.getItem(KEY) === null;
  fillPlaygroundChoices();
  route();
}

// ---- views ----------------------------------------------------------------------------------

const VIEWS = ["overview", "playground", "collections", "requests"];

function route() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
  for (const view of VIEWS) $("view-" + view).hidden = view !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stopPolling();
  const refresh = { overview: refreshOverview, requests: refreshRequests }[name];
  if (name === "collections") loadCollections().catch(fail("col-error"));
  if (refresh) {
    // A hidden tab asks nothing: the console costs the server only while someone looks.
    const tick = () => (document.hidden ? null : refresh().catch(onPollError));
    tick();
    timer = setInterval(tick, POLL_MS);
  }
}

function stopPolling() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

function onPollError(err) {
  if (err instanceof Unauthorized) showLogin("The key was refused.");
  else setText("ov-updated", "Could not refresh: " + err.message);
}

function fail(id) {
  return (err) => {
    if (err instanceof Unauthorized) showLogin("The key was refused.");
    else setText(id, err.message);
  };
}

// ---- overview -------------------------------------------------------------------------------

async function refreshOverview() {
  const now = (await call("/ui/api/stats")).body;
  previous = stats && stats.now < now.now ? stats : previous;
  stats = now;
  const lookups = now.lookups;
  const hits = lookups.hit || 0; // exact, canonical and near reuses together
  const misses = lookups.miss || 0;
  const looked = hits + misses;
  const reuses = now.reuses || {};
  const near = (reuses.near || 0) + (reuses.alias || 0);
  const canonical = reuses.canonical || 0;
  let rps = null;
  if (previous && previous.pid === now.pid && now.now > previous.now) rps = (now.requests - previous.requests) / (now.now - previous.now);
  setText("ov-rps", rps === null ? "-" : rps.toFixed(rps < 10 ? 2 : 0));
  setText("ov-requests", now.requests + " requests since start, " + now.errors + " errors");
  setText("ov-hit-ratio", looked ? pct(hits / looked) : "-");
  setText("ov-hit-detail", Math.max(0, hits - near - canonical) + " exact" +
    (canonical ? ", " + canonical + " canonical" : "") + (near ? ", " + near + " near" : "") +
    ", " + misses + " misses");
  setText("ov-saved", dollars(sum(now.saved_dollars)));
  const by = Object.entries(now.saved_dollars).filter(([, v]) => v > 0);
  const tokens = sum(now.saved_tokens);
  setText("ov-saved-detail", by.length
    ? by.map(([m, v]) => m + " " + dollars(v)).join(", ") + "; " + tokens.toLocaleString("en") + " tokens not bought"
    : "nothing served from the cache yet");
  const up = now.upstream;
  setText("ov-upstream", up.calls + (up.calls === 1 ? " call" : " calls"));
  setText("ov-upstream-detail", up.items + " items, " + up.errors + " errors, " + up.fast_failures + " refused fast");
  setText("ov-latency", ms(now.hit_latency.p50_ms) + " / " + ms(now.hit_latency.p99_ms) + " ms");
  const cache = now.cache;
  setText("ov-cache", cache.entries + " vectors");
  const bound = cache.size_limit_bytes;
  setText("ov-cache-detail", bytes(cache.disk_bytes) + (bound ? " of " + bytes(bound) : " (unbounded)") +
    ", " + cache.evictions + " evicted" + (cache.degraded ? ", writes failing" : ""));
  $("ov-cache-bar").style.width = bound ? Math.min(100, (100 * cache.disk_bytes) / bound) + "%" : "0";
  setText("ov-breaker", up.breaker);
  setText("ov-mode", "upstream: " + up.mode);
  const shared = now.shared;
  $("ov-shared-card").hidden = !shared;
  if (shared) {
    setText("ov-shared", shared.state);
    setText("ov-shared-detail", shared.hits + " hits, " + shared.misses + " misses, " + shared.errors +
      " errors" + (shared.skipped ? ", " + shared.skipped + " skipped while cooling" : "") +
      (shared.last_error ? "; last error: " + shared.last_error : ""));
  }
  const extra = Object.entries(now.extra).filter(([, v]) => v > 0); // off features count 0
  $("ov-extra-card").hidden = extra.length === 0;
  $("ov-extra").replaceChildren(...extra.flatMap(([k, v]) => [el("dt", k.replace(/^gateway_/, "")), el("dd", v)]));
  drawCharts(now.series);
  setText("ov-updated", "Updated " + new Date(now.now * 1000).toLocaleTimeString() +
    " by process " + now.pid + (previous && previous.pid !== now.pid
      ? " (another worker than the last refresh: each worker keeps its own figures)" : ""));
}

function drawCharts(series) {
  const rate = (p, v) => (p.seconds > 0 ? v / p.seconds : 0);
  chart("chart-rps", series, (p) => rate(p, p.requests));
  chart("chart-hits", series, (p) => {
    const all = sum(p.lookups);
    return all ? (all - (p.lookups.miss || 0)) / all : null;
  }, 1);
  chart("chart-saved", series, (p) => sum(p.saved_dollars));
  chart("chart-upstream", series, (p) => p.upstream_items);
}

function chart(id, series, value, fixedMax) {
  const svg = $(id);
  const ns = "http://www.w3.org/2000/svg";
  const nodes = [];
  const base = document.createElementNS(ns, "line");
  for (const [k, v] of [["x1", 0], ["y1", 99], ["x2", 300], ["y2", 99]]) base.setAttribute(k, v);
  nodes.push(base);
  const points = series.map((p) => [p.t, value(p)]).filter(([, v]) => v !== null);
  const end = stats ? stats.now : Date.now() / 1000;
  // The x axis spans what the ring holds (an hour at most, a minute at least), ending now.
  const first = series.length ? series[0].t - series[0].seconds : end - 3600;
  const span = Math.max(60, end - Math.max(end - 3600, first));
  const max = fixedMax || Math.max(1e-9, ...points.map(([, v]) => v));
  if (points.length) {
    const line = document.createElementNS(ns, "polyline");
    const xy = points.map(([t, v]) => [300 - ((end - t) / span) * 300, 98 - (v / max) * 82]);
    if (xy.length === 1) xy.unshift([xy[0][0] - 3, xy[0][1]]);
    line.setAttribute("points", xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" "));
    nodes.push(line);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  const minutes = Math.round(span / 60);
  label.textContent = points.length
    ? "max " + (max < 1 ? max.toPrecision(2) : max.toFixed(1)) + " · last " + minutes + " min"
    : "no data yet: a point every " + (stats ? stats.step_s : 10) + " s";
  nodes.push(label);
  svg.replaceChildren(...nodes);
}

// ---- playground -----------------------------------------------------------------------------

const files = { a: null, b: null };

function fillPlaygroundChoices() {
  const models = $("pg-model");
  models.replaceChildren(...stats.models.map((m) => { const o = el("option", m.id); o.value = m.id; return o; }));
  $("pg-dtype").replaceChildren(...stats.dtypes.map((d) => { const o = el("option", d); o.value = d; return o; }));
  const fillDims = () => {
    const model = stats.models.find((m) => m.id === models.value) || stats.models[0];
    const sizes = [128, 256, 512, 768, 1536, 3072, model.dims].filter((d, i, all) =>
      d >= model.min_dims && d <= model.dims && all.indexOf(d) === i).sort((x, y) => x - y);
    $("pg-dims").replaceChildren(...sizes.map((d) => { const o = el("option", d); o.value = d; return o; }));
    $("pg-dims").value = String(model.dims);
  };
  models.onchange = fillDims;
  fillDims();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// One WIRE.md element for a slot: its text, or its file as the part its media type calls for.
async function element(slot) {
  const file = files[slot];
  if (!file) {
    const text = $("pg-text-" + slot).value;
    return text.trim() ? { value: text, modality: "text" } : null;
  }
  const uri = await readFile(file);
  const type = file.type || "application/octet-stream";
  if (type.startsWith("image/")) return { value: [{ type: "image_url", image_url: { url: uri } }], modality: "image" };
  if (type.startsWith("video/")) return { value: [{ type: "video_url", video_url: { url: uri } }], modality: "video" };
  if (type.startsWith("audio/")) {
    const format = type.includes("wav") ? "wav" : "mp3";
    return { value: [{ type: "input_audio", input_audio: { data: uri.split(",")[1], format } }], modality: "audio" };
  }
  return { value: [{ type: "file", file: { file_data: uri, filename: file.name } }], modality: "pdf" };
}

function cacheState(headers) {
  const near = headers.get("x-cache-near");
  if (near && !near.startsWith("0/")) return "NEAR";
  return headers.get("x-cache") || "-";
}

async function embed(slots) {
  setText("pg-error", "");
  const elements = [];
  for (const slot of slots) {
    const item = await element(slot);
    if (!item) throw new Error("Input " + slot.toUpperCase() + " is empty: type a text or drop a file.");
    elements.push(item);
  }
  const dims = Number($("pg-dims").value);
  const dtype = $("pg-dtype").value;
  const reply = await call("/v1/embeddings", {
    method: "POST",
    json: {
      model: $("pg-model").value,
      input: elements.map((e) => e.value),
      dimensions: dims,
      output_dtype: dtype,
      encoding_format: "float",
    },
  });
  const body = reply.body;
  const state = cacheState(reply.headers);
  const badge = $("pg-cache");
  badge.textContent = state;
  badge.className = "badge " + state;
  const tokens = body.usage.prompt_tokens;
  const price = elements.reduce((a, e) => a + (stats.pricing[e.modality] || 0), 0) / elements.length;
  const cost = (tokens * price) / 1e6;
  const vector = body.data[0].embedding;
  setText("pg-summary", tokens + " tokens, " + dollars(cost) + " at list price" +
    (state === "HIT" ? " (saved)" : "") + "; " + vector.length + " values of " + dtype +
    " (" + dims + " dims); cache " + (reply.headers.get("x-cache-hits") || "-"));
  setText("pg-values", "[" + vector.slice(0, 12).map((v) => (Number.isInteger(v) ? v : v.toFixed(5))).join(", ") + ", ...]");
  setText("pg-cosine", body.data.length > 1 ? compare(body.data[0].embedding, body.data[1].embedding, dtype) : "");
  $("pg-result").hidden = false;
}

// Codes compare as WIRE.md says: int8 by cosine, uint8 by cosine once the +128 is taken off,
// packed bits (binary is ubinary - 128) by the share of bits that agree.
function compare(a, b, dtype) {
  if (dtype === "binary" || dtype === "ubinary") {
    const shift = dtype === "binary" ? 128 : 0;
    let same = 0;
    for (let i = 0; i < a.length; i++) {
      let x = ((a[i] + shift) ^ (b[i] + shift)) & 255;
      let diff = 0;
      while (x) { diff += x & 1; x >>= 1; }
      same += 8 - diff;
    }
    return "bits alike(A, B) = " + (same / (8 * a.length)).toFixed(4) + " (Hamming, " + 8 * a.length + " bits)";
  }
  if (dtype === "uint8") return "cosine(A, B) = " + cosine(a.map((v) => v - 128), b.map((v) => v - 128)).toFixed(4);
  return "cosine(A, B) = " + cosine(a, b).toFixed(4);
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

function bindDrop(input, onFile) {
  const zone = input.closest(".drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => onFile(input.files[0] || null));
}

function setSlotFile(slot, file) {
  files[slot] = file;
  setText("pg-file-name-" + slot, file ? file.name + " (" + (file.type || "unknown type") + ", " +
    bytes(file.size) + "): embedded instead of the text" : "");
  const preview = $("pg-preview-" + slot);
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.hidden = !(file && file.type.startsWith("image/"));
  if (!preview.hidden) preview.src = URL.createObjectURL(file);
  else preview.removeAttribute("src");
}

// ---- collections ----------------------------------------------------------------------------

let collectionFile = null;

async function loadCollections() {
  setText("col-error", "");
  const list = (await call("/v1/collections")).body.data;
  $("col-empty").hidden = list.length > 0;
  $("col-table").querySelector("tbody").replaceChildren(...list.map((c) => {
    const row = el("tr");
    const status = c.status + (c.status === "rebuilding" ? " " + c.progress.done + "/" + c.progress.total : "");
    for (const v of [c.name, c.count, c.dimensions, c.dtype, c.model, status]) row.append(el("td", v));
    return row;
  }));
  const select = $("col-name");
  const chosen = select.value;
  select.replaceChildren(...list.map((c) => { const o = el("option", c.name); o.value = c.name; return o; }));
  if (list.some((c) => c.name === chosen)) select.value = chosen;
}

async function searchCollection(event) {
  event.preventDefault();
  setText("col-error", "");
  const name = $("col-name").value;
  if (!name) throw new Error("There is no collection to search.");
  let input = $("col-text").value;
  if (collectionFile) input = [{ type: "image_url", image_url: { url: await readFile(collectionFile) } }];
  else if (!input.trim()) throw new Error("Type a text or drop an image to search with.");
  await showSearch(name, { input }, "");
}

// One search (by input, or by an item's id: "more like this", the item itself left out).
async function showSearch(name, query, note) {
  setText("col-error", "");
  const k = Number($("col-k").value) || 10;
  const reply = await call("/v1/collections/" + encodeURIComponent(name) + "/search", { method: "POST", json: Object.assign({ k }, query) });
  const results = reply.body.data;
  setText("col-query", note);
  $("col-results").replaceChildren(...results.map((hit) => {
    const item = el("li");
    const like = el("button", "More like this", "like");
    like.type = "button";
    like.setAttribute("aria-label", "More like " + hit.id);
    like.addEventListener("click", () => showSearch(name, { id: hit.id }, "Items most like " + hit.id + " (itself left out)").catch(fail("col-error")));
    item.append(el("span", hit.score.toFixed(4), "score"), el("span", hit.id, "id"), like);
    const meta = hit.metadata || {};
    const thumb = meta.thumbnail;
    if (typeof thumb === "string" && /^data:image\/(png|jpeg|gif|webp);base64,/.test(thumb)) {
      const img = el("img", null, "thumb");
      img.alt = "thumbnail of " + hit.id;
      img.src = thumb;
      item.append(img);
    }
    const shown = Object.assign({}, meta);
    delete shown.thumbnail;
    if (Object.keys(shown).length) item.append(el("pre", JSON.stringify(shown, null, 1).slice(0, 600)));
    return item;
  }));
  if (!results.length) $("col-results").append(el("li", "No results."));
}

// ---- requests -------------------------------------------------------------------------------

async function refreshRequests() {
  const lines = (await call("/ui/api/requests?limit=300")).body.data;
  $("rq-table").querySelector("tbody").replaceChildren(...lines.reverse().map((line) => {
    const row = el("tr");
    const cells = [new Date(line.time * 1000).toLocaleTimeString(), line.method, line.route, line.status,
      ms(line.total_ms), line.model || "", line.inputs ?? "", line.hits ?? "", line.misses ?? "", line.request_id || ""];
    for (const v of cells) row.append(el("td", v));
    return row;
  }));
}

// ---- wiring ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("login-key").value.trim());
    $("login-key").value = "";
    start().catch(fail("login-error"));
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden && timer !== null) route(); });
  for (const slot of ["a", "b"]) bindDrop($("pg-file-" + slot), (file) => setSlotFile(slot, file));
  bindDrop($("col-file"), (file) => {
    collectionFile = file;
    setText("col-file-name", file ? file.name + ": searched with instead of the text" : "");
  });
  $("pg-embed").addEventListener("click", () => embed(["a"]).catch(fail("pg-error")));
  $("pg-compare").addEventListener("click", () => embed(["a", "b"]).catch(fail("pg-error")));
  $("pg-clear").addEventListener("click", () => {
    for (const slot of ["a", "b"]) { $("pg-text-" + slot).value = ""; $("pg-file-" + slot).value = ""; setSlotFile(slot, null); }
    $("pg-result").hidden = true;
  });
  $("col-search").addEventListener("submit", (e) => searchCollection(e).catch(fail("col-error")));
  start().catch((err) => showLogin("The console could not start: " + err.message));
});
