// Sortable tables for the Models view: columns with a key, a label and a formatter; a header click
// sorts (numbers numerically, missing values last) and says so in aria-sort.

import { fmtCount, h } from "./dom.js";

// Metrics that count (assets, boxes): shown whole; every other metric is a fraction (0 reads 0.000).
const COUNTS = new Set(["support", "tp", "fp", "fn", "count", "assets", "matched"]);

/** A metric for reading: counts with separators, fractions to 3 places, missing as a dash. */
export function fmtMetric(value, key = null) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  const count = COUNTS.has(key) || (key === null && Number.isInteger(value));
  return count ? fmtCount(value) : value.toFixed(3);
}

/** A difference: signed, green when better (`higherIsBetter`), red when worse. */
export function deltaCell(value, higherIsBetter = true, key = null) {
  if (value === null || value === undefined) return h("td", { class: "num muted" }, "—");
  const text = `${value > 0 ? "+" : ""}${fmtMetric(value, key)}`;
  const better = value === 0 ? "" : (value > 0) === higherIsBetter ? "better" : "worse";
  return h("td", { class: `num delta ${better}` }, text);
}

function compare(a, b) {
  const missing = (v) => v === null || v === undefined;
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

/**
 * A table of `rows` (objects) under `columns` = [{key, label, num?, cell?(row) -> Node|string,
 * value?(row)}]; `sort` = {key, dir} to start with. Returns the <table>.
 */
export function sortableTable({ columns, rows, sort = null, caption = null, className = "" }) {
  const state = { ...(sort || {}) };
  const tbody = h("tbody");
  const heads = columns.map((col) => {
    const th = h("th", { scope: "col", class: col.num ? "num" : "" });
    if (col.sortable === false) th.append(col.label);
    else th.append(h("button", { type: "button", class: "sort", onclick: () => resort(col.key) }, col.label));
    return th;
  });
  const valueOf = (row, col) => (col.value ? col.value(row) : row[col.key]);
  const paint = () => {
    const col = columns.find((c) => c.key === state.key);
    const ordered = col ? [...rows].sort((a, b) => compare(valueOf(a, col), valueOf(b, col)) * (state.dir === "desc" ? -1 : 1)) : rows;
    // Missing values stay last in either direction.
    if (col && state.dir === "desc") ordered.sort((a, b) => (valueOf(a, col) == null) - (valueOf(b, col) == null));
    tbody.replaceChildren(...ordered.map((row) =>
      h("tr", {}, columns.map((c, i) => {
        const content = c.cell ? c.cell(row) : fmtMetric(valueOf(row, c), c.metric ?? c.key);
        if (content instanceof HTMLTableCellElement) return content;
        return h(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : { class: c.num ? "num" : "" }, content);
      }))));
    heads.forEach((th, i) => {
      const on = columns[i].key === state.key;
      if (on) th.setAttribute("aria-sort", state.dir === "desc" ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  };
  const resort = (key) => {
    state.dir = state.key === key && state.dir === "desc" ? "asc" : state.key === key ? "desc" : columns.find((c) => c.key === key).num ? "desc" : "asc";
    state.key = key;
    paint();
  };
  paint();
  return h("table", { class: `data-table ${className}` }, caption ? h("caption", {}, caption) : null, h("thead", {}, h("tr", {}, heads)), tbody);
}
