// Filter controls built from the catalog's own fields (GET /fields): value lists with facet counts,
// number and date ranges, text match; emits "change" with the filter in Loupe's JSON filter language.

import { getJSON } from "./api.js";
import { $, clear, debounce, fmtCount, fmtValue, h } from "./dom.js";
import { showError } from "./notify.js";

// Unique per asset or internal: no use as a filter control.
const HIDDEN = new Set(["key", "exports.export_id", "exports.project", "synced_at", "signals.duplicate_of"]);
const OPEN_FIRST = 4; // value lists open at start; the rest wait behind their summary
const SHOWN_VALUES = 10;

/** Whether a field gets a list of its values with counts (else a range or a text box). */
function listable(field) {
  if (!field.facetable || !["keyword", "bool"].includes(field.type)) return false;
  // Near-unique values (captions, paths) make a useless list: those get an "equals" box.
  return !(field.sampled >= 20 && field.distinct > Math.max(30, field.sampled / 2));
}

function pretty(label) {
  return label.replaceAll("_", " ").replaceAll(".", " › ");
}

function nextDay(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** One field's condition as the filter language spells it. */
function conditionJSON(cond) {
  switch (cond.type) {
    case "in":
      return cond.values.length === 1 ? cond.values[0] : { in: cond.values };
    case "match":
      return { match: cond.text };
    case "eq":
      return cond.value;
    case "range": {
      const out = {};
      if (cond.gte !== "") out.gte = cond.date ? cond.gte : Number(cond.gte);
      if (cond.lte !== "") {
        if (cond.date) out.lt = nextDay(cond.lte); // the whole last day
        else out.lte = Number(cond.lte);
      }
      return out;
    }
    default:
      return null;
  }
}

function describeCondition(cond) {
  switch (cond.type) {
    case "in":
      return cond.values.map(fmtValue).join(", ");
    case "match":
      return `contains “${cond.text}”`;
    case "eq":
      return `= ${cond.value}`;
    case "range":
      return [cond.gte !== "" ? `≥ ${cond.gte}` : "", cond.lte !== "" ? `≤ ${cond.lte}` : ""].filter(Boolean).join(" and ");
    default:
      return "";
  }
}

export class Filters extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.fields = [];
    this.conds = new Map(); // field name -> condition
    this.sections = new Map(); // field name -> {details, body, field}
    this.facetRequest = null;
    this.refreshFacets = debounce(() => this.loadFacets(), 150);
  }

  async load() {
    try {
      const { data } = await getJSON("/fields");
      // The source, then the catalog's own metadata, then the other built-in fields.
      const rank = (f) => (f.name === "source" ? 0 : f.builtin ? 2 : 1);
      this.fields = data.filter((f) => !HIDDEN.has(f.name)).sort((a, b) => rank(a) - rank(b));
    } catch (err) {
      showError(err, "Loading the catalog's fields failed");
      return;
    }
    this.render();
    this.loadFacets();
  }

  /** The filter JSON; `except` leaves one field out (its own value counts ignore it). */
  filter(except = null) {
    const out = {};
    for (const [name, cond] of this.conds) {
      if (name === except) continue;
      const json = conditionJSON(cond);
      if (json !== null && !(typeof json === "object" && !Array.isArray(json) && !Object.keys(json).length)) {
        out[name] = json;
      }
    }
    // Searches leave out assets gone from their source unless asked; browsing and counts do the same.
    if (!this.conds.has("status") && except !== "status") out.status = "ok";
    return out;
  }

  get active() {
    return this.conds.size;
  }

  set(name, cond) {
    if (cond === null) this.conds.delete(name);
    else this.conds.set(name, cond);
    this.renderActive();
    const section = this.sections.get(name);
    if (section) section.details.classList.toggle("has-filter", this.conds.has(name));
    this.dispatchEvent(new Event("change"));
    this.refreshFacets();
  }

  clearAll() {
    this.conds.clear();
    this.render();
    this.dispatchEvent(new Event("change"));
    this.loadFacets();
  }

  render() {
    clear(this.root);
    this.sections.clear();
    let opened = 0;
    for (const field of this.fields) {
      const list = listable(field);
      const preferred = list && opened < OPEN_FIRST && (field.name === "source" || !field.builtin);
      const open = this.conds.has(field.name) || preferred;
      if (preferred) opened += 1;
      this.root.append(this.section(field, open));
    }
    this.renderActive();
  }

  section(field, open) {
    const body = h("div", { class: "field-body" });
    const details = h(
      "details",
      { class: "field", open, dataset: { field: field.name } },
      h("summary", {}, pretty(field.label), field.indexed ? null : h("span", { class: "hint" }, " (not indexed)")),
      body,
    );
    details.classList.toggle("has-filter", this.conds.has(field.name));
    details.addEventListener("toggle", () => {
      if (details.open) this.loadFacets([field.name]);
    });
    this.sections.set(field.name, { details, body, field });
    this.fillControl(field, body);
    return details;
  }

  fillControl(field, body) {
    const kind = field.type;
    if (listable(field)) {
      body.append(h("p", { class: "muted" }, "Loading values…"));
    } else if (kind === "integer" || kind === "float" || kind === "datetime") {
      body.append(this.rangeControl(field));
    } else {
      body.append(this.textControl(field, kind === "text" ? "match" : "eq"));
    }
  }

  rangeControl(field) {
    const date = field.type === "datetime";
    const cond = this.conds.get(field.name) || { type: "range", gte: "", lte: "", date };
    const input = (bound, label) =>
      h("input", {
        type: date ? "date" : "number",
        step: field.type === "float" ? "any" : "1",
        value: cond[bound],
        "aria-label": `${pretty(field.label)} ${label}`,
        placeholder: label,
        onchange: (e) => {
          const next = { ...(this.conds.get(field.name) || cond), [bound]: e.target.value };
          this.set(field.name, next.gte === "" && next.lte === "" ? null : next);
        },
      });
    return h("div", { class: "range" }, input("gte", "from"), h("span", { "aria-hidden": "true" }, "–"), input("lte", "to"));
  }

  textControl(field, type) {
    const cond = this.conds.get(field.name);
    const label = type === "match" ? "contains" : "equals";
    return h("input", {
      type: "search",
      value: cond ? (cond.text ?? cond.value) : "",
      placeholder: label,
      "aria-label": `${pretty(field.label)} ${label}`,
      onchange: (e) => {
        const text = e.target.value.trim();
        if (!text) this.set(field.name, null);
        else this.set(field.name, type === "match" ? { type, text } : { type, value: text });
      },
    });
  }

  /** Value counts of the open value-list fields, each under the other fields' conditions. */
  async loadFacets(names = null) {
    const wanted = [...this.sections.values()].filter((s) => s.details.open && listable(s.field));
    const targets = names ? wanted.filter((s) => names.includes(s.field.name)) : wanted;
    await Promise.all(
      targets.map(async (s) => {
        try {
          const res = await getJSON(`/facets/${encodeURIComponent(s.field.name)}`, {
            filter: this.filter(s.field.name),
            limit: 50,
          });
          this.renderValues(s, res.values);
        } catch (err) {
          clear(s.body).append(h("p", { class: "muted" }, "Values could not be counted."));
          showError(err, `Counting the values of ${pretty(s.field.label)} failed`);
        }
      }),
    );
  }

  renderValues(section, values) {
    const { field, body } = section;
    const focused = body.contains(document.activeElement) ? document.activeElement.dataset.value : null;
    const cond = this.conds.get(field.name);
    const chosen = cond && cond.type === "in" ? cond.values : [];
    // Chosen values stay listed even when the other filters leave them no matches.
    const all = [...values];
    for (const v of chosen) if (!all.some((x) => x.value === v)) all.push({ value: v, count: 0 });
    const expanded = body.dataset.expanded === "1";
    const list = h("ul", { class: "values" });
    all.forEach((item, i) => {
      const key = JSON.stringify(item.value);
      const box = h("input", {
        type: "checkbox",
        checked: chosen.includes(item.value),
        dataset: { value: key },
        onchange: (e) => this.toggleValue(field.name, item.value, e.target.checked),
      });
      const row = h("li", { hidden: !expanded && i >= SHOWN_VALUES && !chosen.includes(item.value) },
        h("label", {}, box, h("span", { class: "value" }, fmtValue(item.value)), h("span", { class: "count" }, fmtCount(item.count))));
      list.append(row);
    });
    clear(body).append(all.length ? list : h("p", { class: "muted" }, "No values."));
    if (all.length > SHOWN_VALUES) {
      body.append(
        h("button", {
          type: "button",
          class: "link",
          onclick: () => {
            body.dataset.expanded = expanded ? "0" : "1";
            this.renderValues(section, values);
          },
        }, expanded ? "Show fewer" : `Show all ${all.length}`),
      );
    }
    if (focused) {
      const again = body.querySelector(`input[data-value="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  toggleValue(name, value, on) {
    const cond = this.conds.get(name);
    const values = cond && cond.type === "in" ? cond.values.filter((v) => v !== value) : [];
    if (on) values.push(value);
    this.set(name, values.length ? { type: "in", values } : null);
  }

  renderActive() {
    const box = $("#active-filters");
    clear(box);
    if (!this.conds.size) {
      box.append(h("p", { class: "muted" }, "No filters: every asset."));
      return;
    }
    const chips = h("ul", { class: "chips", "aria-label": "Active filters" });
    for (const [name, cond] of this.conds) {
      const field = this.fields.find((f) => f.name === name);
      const label = `${pretty(field ? field.label : name)}: ${describeCondition(cond)}`;
      chips.append(
        h("li", { class: "chip" }, h("span", {}, label),
          h("button", {
            type: "button",
            class: "ghost",
            "aria-label": `Remove the filter ${label}`,
            onclick: () => {
              this.set(name, null);
              this.render();
              this.loadFacets();
            },
          }, "×")),
      );
    }
    box.append(chips, h("button", { type: "button", class: "link", onclick: () => this.clearAll() }, "Clear all filters"));
  }
}
