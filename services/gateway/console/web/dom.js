// DOM helpers. Every piece of data becomes a text node (textContent): nothing the server sends, an
// operator typed or a student wrote is ever parsed as HTML (no HTML-string APIs in this console).

const BOOLEAN_ATTRS = new Set(["hidden", "disabled", "checked", "selected", "required", "multiple", "autofocus"]);

/**
 * h("tag.class1.class2", {attr: value, on: {click: fn}}, child, ...): an element.
 * Children: strings and numbers become text nodes, null/undefined/false are skipped, arrays are flattened.
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value") {
      el.value = value;
    } else if (BOOLEAN_ATTRS.has(name)) {
      el[name] = Boolean(value);
    } else if (value !== null && value !== undefined && value !== false) {
      if (/^on/i.test(name)) throw new Error(`event attributes are not allowed: ${name}`);
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}

export function fmtTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString("zh-CN", { hour12: false });
}

export function fmtFen(fen) {
  return fen === null || fen === undefined ? "—" : `¥${(fen / 100).toFixed(2)}`;
}

export function table(headers, rows, { empty = "无记录" } = {}) {
  if (!rows.length) return h("p.empty", empty);
  return h(
    "table",
    h("thead", h("tr", headers.map((name) => h("th", name)))),
    h("tbody", rows.map((cells) => h("tr", cells.map((cell) => h("td", cell))))),
  );
}

/** A JSON value shown as indented text (in a <pre>, as text). */
export function jsonBlock(value) {
  return h("pre.json", JSON.stringify(value, null, 2));
}

export function field(label, input) {
  return h("label.field", h("span", label), input);
}
