// Small DOM helpers for the auditor page. Values from the audit log always become text nodes or
// attribute values; only card detail HTML (rendered by the server with raw HTML escaped) is parsed,
// and even that goes through an allow-list first.

/** Create an element: h("td", { class: "mono" }, "text", childNode, [more, children]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child)); // strings become text nodes
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  appendChildren(el, children);
  return el;
}

/** A muted placeholder for a value the log does not hold. */
export function none(text = "not recorded") {
  return h("span", { class: "muted" }, text);
}

/** An http(s) URL, or null (never javascript:, data: ...). */
export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

const KEEP = new Set([
  "P", "UL", "OL", "LI", "STRONG", "EM", "B", "I", "CODE", "PRE", "BLOCKQUOTE", "BR", "HR", "DEL", "S",
  "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "A", "H1", "H2", "H3", "H4", "H5", "H6",
]);
const DROP = new Set(["SCRIPT", "STYLE", "IFRAME", "OBJECT", "EMBED", "TEMPLATE", "NOSCRIPT", "SVG", "MATH"]);

function clean(parent) {
  for (const node of [...parent.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE || DROP.has(node.tagName)) {
      node.remove();
      continue;
    }
    clean(node);
    if (!KEEP.has(node.tagName)) {
      node.replaceWith(...node.childNodes); // keep the text of anything unexpected, not the element
      continue;
    }
    const href = node.tagName === "A" ? safeUrl(node.getAttribute("href")) : null;
    for (const attribute of [...node.attributes]) node.removeAttribute(attribute.name);
    if (href) {
      node.setAttribute("href", href);
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
}

/**
 * Card detail HTML from the server (Markdown rendered with raw HTML escaped), parsed inertly in a
 * template and reduced to an allow-list of formatting elements with no attributes but safe links.
 */
export function detailFragment(html) {
  const template = document.createElement("template");
  template.innerHTML = typeof html === "string" ? html : "";
  clean(template.content);
  return template.content;
}

/** A timestamp from the log as "YYYY-MM-DD HH:MM:SS UTC"; times without an offset are UTC. */
export function formatTime(value) {
  if (typeof value !== "string" || !value) return "";
  let text = value.trim().replace(" ", "T").replace(/(\.\d{3})\d+/, "$1");
  if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) text += "Z";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return value;
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A clinical date: the day alone when the time is midnight UTC, else the full time. */
export function formatDate(value) {
  if (typeof value !== "string" || !value) return "";
  if (/^\d{4}-\d\d-\d\d$/.test(value)) return value;
  const full = formatTime(value);
  return full.endsWith(" 00:00:00 UTC") ? full.slice(0, 10) : full;
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}
