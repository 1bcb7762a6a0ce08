// "Select next batch": a name, a budget and strategies (uncertainty, diversity, balance, similarity,
// a numeric field as weight) over the current filters -> POST /selections, a job; its members then
// open in the grid (the filter {"selections": name}) and the Export button sends them by name.

import { getJSON, postJSON } from "./api.js";
import { $, clear, fill, fmtCount, h, plural } from "./dom.js";
import { describe, note } from "./notify.js";
import { fieldLabel } from "./sorting.js";

const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 600;
const MEASURES = [
  ["margin", "margin", "the smallest p1 − p2 first"],
  ["least_confidence", "least confidence", "1 − the top probability"],
  ["entropy", "entropy", "the entropy of the probabilities"],
];

function defaultName() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `batch-${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

export class BatchDialog {
  constructor(page) {
    this.page = page;
    this.dialog = $("#batch-dialog");
    this.returnFocus = null;
    this.build();
    this.dialog.addEventListener("close", () => {
      if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    });
  }

  build() {
    const strength = (id, label) =>
      h("label", { class: "strength" }, "strength ",
        h("input", { type: "number", id, min: 0, max: 10, step: "any", value: 1, "aria-label": `${label}: strength` }));
    const strategy = (kind, title, help, ...options) =>
      h("div", { class: "strategy", dataset: { kind } },
        h("label", { class: "strategy-name" }, h("input", { type: "checkbox", id: `strat-${kind}` }), " ", title),
        h("div", { class: "strategy-options" }, ...options),
        h("p", { class: "muted small" }, help));
    this.result = h("div", { id: "batch-result", class: "export-result", role: "status" });
    this.submitButton = h("button", { type: "submit", id: "batch-submit", class: "primary" }, "Choose the batch");
    const form = h("form", { class: "batch-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      h("h2", { id: "batch-title" }, "Select the next batch to label"),
      h("div", { class: "batch-grid" },
        h("label", { for: "batch-name", class: "label" }, "Name"),
        h("input", { type: "text", id: "batch-name", autocomplete: "off" }),
        h("label", { for: "batch-budget", class: "label" }, "Budget (assets)"),
        h("input", { type: "number", id: "batch-budget", min: 1, step: 1, value: 50 })),
      h("p", { class: "pool" }, h("span", { class: "label-inline" }, "Chosen among: "), h("span", { id: "batch-pool" })),
      h("fieldset", {},
        h("legend", {}, "Strategies"),
        h("p", { class: "muted small combine" }, "Combined as the product of each normalised objective raised to its strength; balance shares the budget out."),
        strategy("uncertainty", "Uncertainty", "The assets the model is least sure about. Without diversity the batch still spreads within itself (the most uncertain first); diversity at strength 0 takes the exact top N.",
          h("select", { id: "batch-predictions", "aria-label": "Uncertainty: predictions set" }),
          h("select", { id: "batch-measure", "aria-label": "Uncertainty: measure" }, MEASURES.map(([v, t, why]) => h("option", { value: v, title: why }, t))),
          strength("batch-uncertainty-strength", "Uncertainty")),
        strategy("diversity", "Diversity", "Spread over the embedding space (greedy k-centre, seeded with what is labelled); strength 0 spreads nothing.",
          strength("batch-diversity-strength", "Diversity")),
        strategy("balance", "Balance", "An equal share of the budget for each value of a field.",
          h("select", { id: "batch-balance-field", "aria-label": "Balance: field" })),
        strategy("similar", "Similar", "Like the assets marked “more like” in the results, and/or a text.",
          h("span", { id: "batch-marks", class: "muted" }),
          h("input", { type: "text", id: "batch-text", placeholder: "a text (optional)", "aria-label": "Similar: text" }),
          strength("batch-similar-strength", "Similar")),
        strategy("field", "Weight by a field", "Prefer higher values of a numeric field (a signal such as uniqueness).",
          h("select", { id: "batch-weight-field", "aria-label": "Weight: numeric field" }),
          strength("batch-field-strength", "Weight"))),
      h("div", { class: "batch-grid" },
        h("label", { for: "batch-exclude", class: "label" }, "Leave out assets labelled in"),
        h("select", { id: "batch-exclude" })),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "batch-include-selected" }), " Also choose assets an earlier selection holds"),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "batch-include-exported" }), " Also choose assets already exported"),
      this.result,
      h("div", { class: "dialog-foot" },
        h("button", { type: "button", id: "batch-cancel", onclick: () => this.dialog.close() }, "Close"),
        this.submitButton));
    fill(this.dialog, form);
  }

  async open() {
    this.returnFocus = document.activeElement;
    clear(this.result);
    this.submitButton.disabled = false;
    $("#batch-name").value = defaultName();
    let sets = [];
    try {
      sets = (await getJSON("/labelsets")).data;
    } catch (err) {
      this.result.append(h("p", { class: "error" }, `Label sets could not be listed: ${describe(err)}`));
    }
    const preds = sets.filter((s) => s.role === "predictions");
    const truth = sets.filter((s) => s.role === "ground_truth");
    fill($("#batch-predictions"), preds.length ? preds.map((s) => h("option", { value: s.name }, s.name)) : h("option", { value: "" }, "no predictions set yet"));
    // Uncertainty needs a model's predictions (POST /labelsets with role predictions, then an import).
    $("#strat-uncertainty").disabled = !preds.length;
    if (!preds.length) $("#strat-uncertainty").checked = false;
    $("#strat-uncertainty").title = preds.length ? "" : "Import a model's predictions as a label set first";
    if (!this.opened) $("#strat-diversity").checked = true; // a sound default: spread over the data
    this.opened = true;
    fill($("#batch-exclude"), h("option", { value: "" }, "(no set)"), truth.map((s) => h("option", { value: s.name }, s.name)));
    const fields = this.page.filters.fields;
    const keywords = fields.filter((f) => f.facetable && ["keyword", "bool"].includes(f.type) && !f.name.startsWith("signals.") && f.name !== "key");
    fill($("#batch-balance-field"), keywords.map((f) => h("option", { value: f.name }, f.label)));
    const numeric = [...this.page.sorting.types].filter(([, t]) => t !== "datetime").map(([n]) => n);
    fill($("#batch-weight-field"), numeric.map((n) => h("option", { value: n, selected: n === "signals.uniqueness" }, fieldLabel(n))));
    const search = this.page.search;
    $("#batch-marks").textContent = search.like.size ? `${plural(search.like.size, "marked asset")} ·` : "no marked assets ·";
    $("#batch-text").value = search.text.trim();
    this.describePool();
    this.dialog.showModal();
    $("#batch-name").focus();
  }

  describePool() {
    const filter = this.page.search.filter();
    const shown = Object.entries(filter || {}).filter(([k]) => k !== "status");
    const what = shown.length ? `the assets that pass the filters ${JSON.stringify(Object.fromEntries(shown))}` : "every asset (no filters)";
    $("#batch-pool").textContent = what;
    getJSON("/assets/count", { filter }).then(
      (r) => { $("#batch-pool").textContent = `${what}: ${fmtCount(r.count)}`; },
      () => {},
    );
  }

  strategies() {
    const on = (kind) => $(`#strat-${kind}`).checked;
    const num = (id) => Number($(id).value === "" ? 1 : $(id).value);
    const out = [];
    if (on("uncertainty")) {
      out.push({ kind: "uncertainty", predictions: $("#batch-predictions").value, measure: $("#batch-measure").value, strength: num("#batch-uncertainty-strength") });
    }
    if (on("diversity")) out.push({ kind: "diversity", strength: num("#batch-diversity-strength") });
    if (on("balance")) out.push({ kind: "balance", field: $("#batch-balance-field").value });
    if (on("similar")) {
      const s = { kind: "similar", strength: num("#batch-similar-strength") };
      const like = [...this.page.search.like.keys()];
      if (like.length) s.like = like;
      const text = $("#batch-text").value.trim();
      if (text) s.text = text;
      out.push(s);
    }
    if (on("field")) out.push({ kind: "field", field: $("#batch-weight-field").value, strength: num("#batch-field-strength") });
    return out;
  }

  request() {
    const budget = $("#batch-budget").value.trim();
    const body = {
      name: $("#batch-name").value.trim(),
      // Sent as typed: the API says what is wrong with a budget of 0 or less.
      budget: budget === "" ? 0 : Number(budget),
      filter: this.page.search.filter(),
      strategies: this.strategies(),
    };
    const exclude = $("#batch-exclude").value;
    if (exclude) body.exclude_labeled = exclude;
    if (this.page.search.space) body.space = this.page.search.space;
    if ($("#batch-include-selected").checked) body.include_selected = true;
    if ($("#batch-include-exported").checked) body.include_exported = true;
    return body;
  }

  async submit() {
    const body = this.request();
    if (!body.strategies.length) {
      fill(this.result, h("p", { class: "error" }, "Tick at least one strategy: diversity alone is a good start."));
      return;
    }
    this.submitButton.disabled = true;
    fill(this.result, h("p", {}, "Choosing…"));
    try {
      let sel = await postJSON("/selections", body);
      while (ACTIVE.has(sel.state)) {
        this.show(sel);
        await new Promise((r) => setTimeout(r, POLL_MS));
        sel = await getJSON(`/selections/${encodeURIComponent(sel.name)}`);
      }
      this.show(sel);
      if (sel.state === "succeeded" && sel.count > 0) {
        this.dialog.close();
        note(`Selection “${sel.name}”: ${plural(sel.count, "asset")} chosen${sel.detail ? ` (${sel.detail})` : ""}. Export… sends them.`);
        this.page.browseWith({ selections: { type: "in", values: [sel.name] } });
      }
    } catch (err) {
      fill(this.result, h("p", { class: "error" }, describe(err)));
    } finally {
      this.submitButton.disabled = false;
    }
  }

  show(sel) {
    const c = sel.counts || {};
    const active = ACTIVE.has(sel.state);
    const text = active
      ? `Selection ${sel.state}: choosing ${fmtCount(sel.budget)} of ${fmtCount(c.candidates || 0)} candidates…`
      : sel.state === "succeeded"
        ? `Chose ${plural(sel.count, "asset")} of ${fmtCount(c.candidates || 0)} candidates.`
        : `Selection ${sel.state}: ${sel.detail || "see its job"}`;
    fill(this.result,
      h("p", { class: sel.state === "failed" ? "error" : active ? "" : "ok" }, text),
      sel.detail && sel.state === "succeeded" ? h("p", { class: "muted" }, sel.detail) : null);
  }
}
