"use strict";
// Renders the gateway's OpenAPI document with DOM calls only: nothing from outside, no eval, no
// HTML parsing of document text (every string lands as a text node), so a strict CSP allows it.
(() => {
  const METHODS = ["get", "head", "post", "put", "patch", "delete"];
  const MAX_DEPTH = 8;
  let spec = {};

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined || child === "") continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function resolve(schema) {
    if (schema && typeof schema.$ref === "string") {
      const name = schema.$ref.split("/").pop();
      const target = (spec.components && spec.components.schemas) || {};
      return [name, target[name] || {}];
    }
    return [null, schema || {}];
  }

  function label(schema) {
    const [name, s] = resolve(schema);
    if (name) return name;
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
    const branches = s.anyOf || s.oneOf;
    if (branches) return branches.map(label).join(" | ");
    if (s.type === "array") {
      const items = label(s.items);
      return items.includes(" | ") ? `array of (${items})` : `array of ${items}`;
    }
    if (Array.isArray(s.type)) return s.type.join(" | ");
    return s.type || "any";
  }

  function limits(s) {
    const out = [];
    for (const [key, text] of [
      ["minimum", "≥ "], ["maximum", "≤ "], ["minLength", "min length "],
      ["maxLength", "max length "], ["minItems", "min items "], ["maxItems", "max items "],
      ["pattern", "pattern "], ["default", "default "],
    ]) {
      if (s[key] !== undefined) out.push(text + (key === "default" ? JSON.stringify(s[key]) : s[key]));
    }
    return out.length ? el("span", "limits", ` (${out.join(", ")})`) : null;
  }

  function schemaNode(schema, depth, seen) {
    const [name, s] = resolve(schema);
    if (depth > MAX_DEPTH || (name && seen.has(name))) return el("span", "type", name || "…");
    const inner = name ? new Set([...seen, name]) : seen;
    const box = el("div", "schema");
    if (s.description) box.append(el("p", "desc", s.description));
    if (s.properties) {
      const required = new Set(s.required || []);
      const list = el("ul", "props");
      for (const [key, prop] of Object.entries(s.properties)) {
        const [, p] = resolve(prop);
        const head = el("span", null, el("code", "prop", key), required.has(key) ? el("span", "req", " required") : null,
          " ", el("span", "type", label(prop)), limits(p));
        const item = el("li", null, head);
        if (p.description && !p.properties && !p.anyOf && !p.oneOf) item.append(el("p", "desc", p.description));
        if (expandable(p)) item.append(fold("details", schemaNode(prop, depth + 1, inner)));
        list.append(item);
      }
      box.append(list);
      if (s.additionalProperties === false) box.append(el("p", "note", "No other fields are accepted."));
    }
    const branches = s.anyOf || s.oneOf;
    if (branches) {
      const list = el("ol", "branches");
      for (const branch of branches) list.append(el("li", null, el("span", "type", label(branch)), expandable(resolve(branch)[1]) ? schemaNode(branch, depth + 1, inner) : null));
      box.append(el("p", "note", s.oneOf ? "Exactly one of:" : "One of:"), list);
    }
    if (s.type === "array" && s.items && expandable(resolve(s.items)[1])) {
      box.append(el("p", "note", "Each item:"), schemaNode(s.items, depth + 1, inner));
    }
    return box;
  }

  function expandable(s) {
    return Boolean(s.properties || s.anyOf || s.oneOf || (s.type === "array" && s.items && expandable(resolve(s.items)[1])) || s.$ref);
  }

  function fold(title, body, open) {
    const node = el("details", null, el("summary", null, title), body);
    if (open) node.open = true;
    return node;
  }

  function operation(path, method, op) {
    const summary = el("summary", null, el("span", `method m-${method}`, method.toUpperCase()), " ",
      el("code", "path", path), " ", el("span", "summary", op.summary || ""));
    const body = el("div", "op-body");
    if (op.description) body.append(el("p", "desc", op.description));
    if (op.parameters && op.parameters.length) {
      const list = el("ul", "props");
      for (const p of op.parameters) {
        list.append(el("li", null, el("code", "prop", p.name), ` in ${p.in} `, el("span", "type", label(p.schema)), p.description ? ` ${p.description}` : ""));
      }
      body.append(el("h4", null, "Parameters"), list);
    }
    const request = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (request) body.append(el("h4", null, "Request body (application/json)"), schemaNode(request.schema, 0, new Set()));
    body.append(el("h4", null, "Responses"));
    for (const [status, response] of Object.entries(op.responses || {})) {
      const json = response.content && response.content["application/json"];
      const title = el("span", null, el("span", `status s${status[0]}`, status), " ", response.description || "");
      body.append(json ? fold(title, schemaNode(json.schema, 0, new Set())) : el("p", null, title));
    }
    const node = el("details", "op", summary, body);
    node.id = op.operationId || `${method}-${path}`;
    return node;
  }

  function render() {
    const info = spec.info || {};
    document.title = `${info.title || "API"} ${info.version || ""}`;
    document.getElementById("title").textContent = `${info.title || "API"} ${info.version || ""}`;
    document.getElementById("about").textContent = info.description || "";
    const byTag = new Map((spec.tags || []).map((tag) => [tag.name, []]));
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(path, method, op));
      }
    }
    const main = document.getElementById("api");
    const toc = document.getElementById("toc");
    main.replaceChildren();
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const anchor = `tag-${tag.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
      const link = el("a", null, tag);
      link.href = `#${anchor}`;
      toc.append(link);
      const section = el("section", null, el("h2", null, tag), ...ops);
      section.id = anchor;
      main.append(section);
    }
  }

  function start() {
    fetch("/schema/openapi.json", { headers: { accept: "application/json" } })
      .then((reply) => {
        if (!reply.ok) throw new Error(`GET /schema/openapi.json answered ${reply.status}`);
        return reply.json();
      })
      .then((document_) => { spec = document_; render(); })
      .catch((error) => {
        document.getElementById("api").replaceChildren(el("p", "error", String(error)));
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
