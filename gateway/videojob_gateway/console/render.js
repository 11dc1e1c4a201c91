// DOM helpers. Every string from the API (names, labels, messages, events: other users write
// them) goes in as text, never as markup: textContent and attributes only, never parsed as HTML.

/** An element: el("a", {href: "#/", class: "x"}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
}

export function setText(node, text) {
  node.textContent = text === undefined || text === null ? "" : String(text);
}

/** "1 min 5 s" between two RFC 3339 times (to now when `end` is absent). */
export function duration(start, end) {
  if (!start) return "";
  const s = Math.max(0, Math.round(((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000));
  if (!Number.isFinite(s)) return "";
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function when(t) {
  if (!t) return "";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

/** A progress bar (native <progress>, whose role is progressbar) with its value spelled out
 *  for assistive technology. */
export function setProgress(bar, value, label) {
  const v = Math.max(0, Math.min(100, Number(value) || 0));
  bar.value = v;
  bar.setAttribute("aria-valuenow", String(v));
  bar.setAttribute("aria-valuetext", `${v} %`);
  if (label) bar.setAttribute("aria-label", label);
}
