// "Sort by" in the results toolbar: browsing ordered by any numeric or datetime field with an index
// (GET /assets order_by/order, cursor pages), signals.* among them; each card shows the sorted value.

import { getJSON } from "./api.js";
import { $, clear, fmtDate, h } from "./dom.js";

const ORDERABLE = new Set(["integer", "float", "datetime"]);
// The signals' own names on the page (GET /signals gives the fields that exist).
export const SIGNAL_LABELS = {
  "signals.uniqueness": "uniqueness",
  "signals.outlier": "outlier score",
  "signals.typicality": "typicality",
  "signals.label_issue": "label issue score",
  "signals.cluster": "cluster",
};

/** An asset's value of a field as the filter language names it (`meta.x`, `signals.x`, `size_bytes`). */
export function fieldValue(asset, name) {
  if (name.startsWith("meta.")) return asset.metadata ? asset.metadata[name.slice(5)] : undefined;
  let value = asset;
  for (const part of name.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[part];
  }
  return value;
}

/** A sorted value, short enough for a card. */
export function formatSorted(value, type) {
  if (value === null || value === undefined) return "—";
  if (type === "datetime") return fmtDate(value);
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(3);
  return String(value);
}

export function fieldLabel(name) {
  return SIGNAL_LABELS[name] || name.replace(/^meta\./, "");
}

export class Sorting {
  constructor(search, filters) {
    this.search = search;
    this.filters = filters;
    this.types = new Map(); // orderable field -> its type
    this.field = $("#sort-by");
    this.dir = $("#sort-order");
    this.field.addEventListener("change", () => this.apply());
    this.dir.addEventListener("change", () => this.apply());
    for (const type of ["reset", "marks"]) search.addEventListener(type, () => this.showMode());
  }

  /** The orderable fields: indexed numbers and times of GET /fields, and every computed signal. */
  async load() {
    const types = new Map();
    for (const f of this.filters.fields) if (f.indexed && ORDERABLE.has(f.type)) types.set(f.name, f.type);
    try {
      const { data } = await getJSON("/signals");
      for (const s of data) {
        if (s.state === "succeeded" && s.field in SIGNAL_LABELS) types.set(s.field, s.kind === "clusters" ? "integer" : "float");
      }
    } catch {
      // The fields alone still sort; the signals' own error shows in the Curation view.
    }
    this.types = types;
    this.render();
  }

  render() {
    const current = this.search.order ? this.search.order.field : "";
    const signals = [...this.types.keys()].filter((n) => n.startsWith("signals."));
    const others = [...this.types.keys()].filter((n) => !n.startsWith("signals."));
    const group = (label, names) =>
      names.length ? h("optgroup", { label }, names.map((n) => h("option", { value: n, selected: n === current }, fieldLabel(n)))) : null;
    clear(this.field).append(
      h("option", { value: "" }, "catalog order"),
      ...[group("Signals", signals), group("Fields", others)].filter(Boolean),
    );
    if (current && !this.types.has(current)) this.set(null);
    this.showMode();
  }

  /** Sort the listing by `field` (null: catalog order), highest first unless `dir` says "asc". */
  set(field, dir = "desc") {
    this.field.value = field || "";
    this.dir.value = dir;
    this.apply();
  }

  apply() {
    const field = this.field.value;
    this.search.order = field ? { field, dir: this.dir.value, type: this.types.get(field) } : null;
    this.dir.disabled = !field;
    if (this.search.mode === "browse") this.search.run();
  }

  describe() {
    const { field, dir } = this.search.order;
    return `${fieldLabel(field)}, ${dir === "desc" ? "highest" : "lowest"} first`;
  }

  /** Sorting applies to browsing only: a search ranks by similarity. */
  showMode() {
    const browsing = this.search.mode === "browse";
    $("#sort-row").classList.toggle("inactive", !browsing);
    this.field.disabled = !browsing;
    this.dir.disabled = !browsing || !this.field.value;
    this.field.title = browsing ? "" : "Searches rank by similarity; sorting applies when browsing (no text, images or marks)";
  }
}
