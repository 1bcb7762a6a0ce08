// Labeling from the results: "Label as" on a selection (POST /labelsets/{set}/labels, by hand into
// a ground-truth set), and "Auto-label similar" (POST /labeling-functions: a rule from the marked
// examples, the selection and the text, under the filters) with its precision/coverage curve.

import { getJSON, postJSON } from "./api.js";
import { curveChart } from "./curve.js";
import { $, clear, fill, fmtCount, h, plural } from "./dom.js";
import { describe, note } from "./notify.js";

const NEW_SET = "__new__"; // not a set name: names start with a letter or digit
const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 500;
const MAX_EXAMPLES = 1000; // the API's limit on a rule's `like`

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)} %`);
const num = (v) => (v === null || v === undefined ? "—" : v.toFixed(3));

/** A set or function name the API takes (letters, digits, '_', '-'; at most 64) made from `text`. */
function slug(text) {
  const s = text.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[-_]+|-+$/g, "");
  return s.slice(0, 48) || "labels";
}

function classesOf(text) {
  return [...new Set(text.split(",").map((c) => c.trim()).filter(Boolean))];
}

async function groundTruthSets() {
  const { data } = await getJSON("/labelsets");
  return data.filter((s) => s.role === "ground_truth" && s.task === "classification");
}

function field(id, label, control, hint = null) {
  return [h("label", { for: id, class: "label" }, label), control, hint];
}

export class LabelingTools {
  constructor(page) {
    this.page = page;
    this.ids = [];
    this.sets = [];
    this.running = false;
    this.gtChoice = undefined;
    this.labelDialog = this.buildLabelDialog();
    this.autoDialog = this.buildAutoDialog();
    document.body.append(this.labelDialog, this.autoDialog);
    $("#label-open").addEventListener("click", () => this.openLabel([...page.grid.selection], "selected"));
    $("#map-label").addEventListener("click", () => this.openLabel(page.map.selectedIds(), "selected on the map"));
    $("#autolabel-open").addEventListener("click", () => this.openAuto());
    const selection = () => {
      const none = !page.grid.selection.size;
      $("#label-open").disabled = none;
      $("#label-open").title = none ? "Select cards first" : "";
    };
    page.grid.addEventListener("selection", selection);
    selection();
  }

  // -- "Label as…" ----------------------------------------------------------------------

  buildLabelDialog() {
    const form = h("form", { class: "label-form" },
      h("h2", { id: "label-title" }, "Label as…"),
      h("p", { id: "label-what", class: "muted" }),
      field("label-set", "Ground-truth set", h("select", { id: "label-set", onchange: () => this.showSet() })),
      h("div", { id: "label-new", hidden: true },
        field("label-new-name", "Name of the new classification set",
          h("input", { id: "label-new-name", type: "text", autocomplete: "off", placeholder: "e.g. reviewed" })),
        field("label-new-classes", "Its classes (optional)",
          h("input", { id: "label-new-classes", type: "text", autocomplete: "off", placeholder: "cat, dog, bird" }),
          h("p", { class: "muted" }, "Comma-separated. Without classes the set takes any label and learns it.")),
      ),
      field("label-value", "Label",
        h("input", { id: "label-value", type: "text", autocomplete: "off", list: "label-classes", required: true }),
        h("p", { id: "label-hint", class: "muted" })),
      h("datalist", { id: "label-classes" }),
      h("div", { id: "label-result", class: "export-result", role: "status" }),
      h("div", { class: "dialog-foot" },
        h("button", { type: "button", id: "label-cancel", onclick: () => this.labelDialog.close() }, "Close"),
        h("button", { type: "submit", id: "label-submit", class: "primary" }, "Label")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitLabel();
    });
    return h("dialog", { id: "label-dialog", "aria-labelledby": "label-title" }, form);
  }

  async openLabel(ids, how) {
    const d = this.labelDialog;
    this.ids = ids;
    $("#label-what", d).textContent = `${plural(ids.length, "asset")} ${how}: each gets the label below, recorded with who and when.`;
    clear($("#label-result", d));
    $("#label-submit", d).disabled = !ids.length;
    d.showModal();
    await this.loadSets($("#label-set", d).value);
    $("#label-value", d).focus();
  }

  async loadSets(keep = "") {
    const select = $("#label-set", this.labelDialog);
    try {
      this.sets = await groundTruthSets();
    } catch (err) {
      fill($("#label-result", this.labelDialog), h("p", { class: "error" }, describe(err)));
      this.sets = [];
    }
    const chosen = this.sets.some((s) => s.name === keep) ? keep : this.sets.length ? this.sets[0].name : NEW_SET;
    fill(select,
      this.sets.map((s) => h("option", { value: s.name, selected: s.name === chosen }, `${s.name} (${plural(s.assets, "asset")})`)),
      h("option", { value: NEW_SET, selected: chosen === NEW_SET }, "A new classification set…"));
    this.showSet();
  }

  showSet() {
    const d = this.labelDialog;
    const name = $("#label-set", d).value;
    const set = this.sets.find((s) => s.name === name);
    $("#label-new", d).hidden = name !== NEW_SET;
    fill($("#label-classes", d), (set ? set.classes : []).map((c) => h("option", { value: c })));
    let hint = "A new set.";
    if (set && set.classes_declared) hint = `This set takes only its classes: ${set.classes.join(", ")}.`;
    else if (set) hint = set.classes.length ? `Labels so far: ${set.classes.join(", ")}; a new one is learned.` : "The set takes any label.";
    $("#label-hint", d).textContent = hint;
  }

  async submitLabel() {
    const d = this.labelDialog;
    const out = $("#label-result", d);
    const button = $("#label-submit", d);
    const label = $("#label-value", d).value.trim();
    let set = $("#label-set", d).value;
    button.disabled = true;
    fill(out, h("p", {}, `Labelling ${plural(this.ids.length, "asset")}…`));
    try {
      if (set === NEW_SET) {
        const name = $("#label-new-name", d).value.trim();
        const classes = classesOf($("#label-new-classes", d).value);
        const body = { name, role: "ground_truth", task: "classification" };
        if (classes.length) body.classes = classes;
        await postJSON("/labelsets", body);
        set = name;
        await this.loadSets(name);
      }
      const res = await postJSON(`/labelsets/${encodeURIComponent(set)}/labels`, { label, ids: this.ids });
      const text = `Labelled ${plural(res.labeled, "asset")} as “${res.label}” in ${res.set}.`;
      fill(out, h("p", { class: "ok" }, text));
      note(text);
      await this.loadSets(set);
      this.page.filters.load(); // the set's field (labels.<set>.label) is a filter now
    } catch (err) {
      fill(out, h("p", { class: "error" }, describe(err)));
    } finally {
      button.disabled = !this.ids.length;
    }
  }

  // -- "Auto-label similar…" -------------------------------------------------------------

  buildAutoDialog() {
    const mode = (value, text, ...rest) =>
      h("div", { class: "mode-row" },
        h("label", {}, h("input", { type: "radio", name: "auto-mode", id: `auto-mode-${value}`, value }), ` ${text}`),
        ...rest);
    const form = h("form", { class: "auto-form" },
      h("h2", { id: "auto-title" }, "Auto-label similar"),
      h("p", { id: "auto-from", class: "muted" }),
      field("auto-label", "Label", h("input", { id: "auto-label", type: "text", autocomplete: "off", list: "auto-classes", required: true, oninput: () => this.nameFromLabel() })),
      h("datalist", { id: "auto-classes" }),
      h("div", { class: "two-col" },
        h("div", {}, ...field("auto-name", "Labeling function", h("input", { id: "auto-name", type: "text", autocomplete: "off" }))),
        h("div", {}, ...field("auto-into", "Predictions set it writes", h("input", { id: "auto-into", type: "text", autocomplete: "off" })))),
      h("fieldset", {},
        h("legend", {}, "Threshold"),
        mode("target", "Choose it to reach a precision of",
          h("input", { id: "auto-target", type: "number", min: "0.01", max: "1", step: "0.01", value: "0.9", "aria-label": "Target precision" })),
        mode("threshold", "Label at a similarity of at least",
          h("input", { id: "auto-threshold", type: "number", min: "-1", max: "1", step: "0.01", value: "0.8", "aria-label": "Threshold" })),
        h("div", { class: "mode-row" },
          h("label", { for: "auto-gt" }, "Measured on the ground-truth set"),
          h("select", { id: "auto-gt", onchange: (e) => { this.gtChoice = e.target.value; } })),
        h("p", { id: "auto-gt-hint", class: "muted", hidden: true },
          "No ground-truth set yet: label some assets with “Label as…” to measure and choose a precision."),
      ),
      h("div", { id: "auto-progress", class: "auto-progress", hidden: true },
        h("progress", { id: "auto-bar", max: "1", value: "0" }), h("span", { id: "auto-state" })),
      h("div", { id: "auto-result", class: "auto-result", role: "status" }),
      h("div", { class: "dialog-foot" },
        h("button", { type: "button", id: "auto-cancel", onclick: () => this.autoDialog.close() }, "Close"),
        h("button", { type: "submit", id: "auto-run", class: "primary" }, "Run")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.runAuto();
    });
    return h("dialog", { id: "autolabel-dialog", class: "wide", "aria-labelledby": "auto-title" }, form);
  }

  /** The rule the current results make: the marked "more like" and the selected ids, and the text. */
  rule() {
    const { search, grid } = this.page;
    const marked = [...search.like.keys()];
    const selected = [...grid.selection].filter((id) => !search.like.has(id));
    const like = [...marked, ...selected].slice(0, MAX_EXAMPLES);
    const text = search.space ? "" : search.text.trim();
    return { like, text, marked: marked.length, selected: selected.length };
  }

  describeRule(r) {
    const parts = [];
    if (r.marked) parts.push(`${plural(r.marked, "“more like” example")}`);
    if (r.selected) parts.push(`${plural(r.selected, "selected asset")}`);
    if (r.text) parts.push(`the text “${r.text}”`);
    if (!parts.length) return "Nothing to start from: mark results “more like”, select cards, or search by text first.";
    const filtered = this.page.filters.active ? ", under the current filters" : "";
    const images = this.page.search.images.length ? " Dropped example images are not used: mark catalog assets instead." : "";
    return `From ${parts.join(", ")}${filtered}: assets as similar as the threshold get the label.${images}`;
  }

  async openAuto() {
    const d = this.autoDialog;
    const r = this.rule();
    $("#auto-from", d).textContent = this.describeRule(r);
    $("#auto-run", d).disabled = this.running || (!r.like.length && !r.text);
    if (!this.running) {
      clear($("#auto-result", d));
      $("#auto-progress", d).hidden = true;
    }
    d.showModal();
    let sets = [];
    try {
      sets = await groundTruthSets();
    } catch (err) {
      fill($("#auto-result", d), h("p", { class: "error" }, describe(err)));
    }
    const keep = this.gtChoice; // the user's last choice; at first the first set
    fill($("#auto-gt", d),
      sets.map((s) => h("option", { value: s.name, selected: s.name === keep }, s.name)),
      h("option", { value: "", selected: !sets.length || keep === "" }, "none: nothing estimated"));
    fill($("#auto-classes", d), [...new Set(sets.flatMap((s) => s.classes))].map((c) => h("option", { value: c })));
    const target = $("#auto-mode-target", d);
    target.disabled = !sets.length;
    $("#auto-gt-hint", d).hidden = sets.length > 0;
    if (!sets.length) $("#auto-mode-threshold", d).checked = true;
    else if (!$("#auto-mode-threshold", d).checked) target.checked = true;
    $("#auto-label", d).focus();
  }

  nameFromLabel() {
    const d = this.autoDialog;
    const name = `similar-${slug($("#auto-label", d).value)}`;
    $("#auto-name", d).value = name;
    $("#auto-into", d).value = name;
  }

  request() {
    const d = this.autoDialog;
    const { search, filters } = this.page;
    const r = this.rule();
    const label = $("#auto-label", d).value.trim();
    const rule = { label };
    if (r.like.length) rule.like = r.like;
    if (r.text) rule.text = r.text;
    const name = $("#auto-name", d).value.trim() || `similar-${slug(label)}`;
    const body = { name, into: $("#auto-into", d).value.trim() || name, rules: [rule] };
    if (filters.active) body.filter = filters.filter();
    if (search.space) body.space = search.space;
    if ($("#auto-mode-target", d).checked) body.target_precision = Number($("#auto-target", d).value);
    else body.threshold = Number($("#auto-threshold", d).value);
    const gt = $("#auto-gt", d).value;
    if (gt) body.ground_truth = gt; // without one, a target is refused by the API in words
    return body;
  }

  async runAuto() {
    const d = this.autoDialog;
    const out = $("#auto-result", d);
    const button = $("#auto-run", d);
    const body = this.request();
    this.running = true;
    button.disabled = true;
    clear(out);
    this.progress(0, "queued");
    try {
      let run = await postJSON("/labeling-functions", body);
      while (ACTIVE.has(run.state)) {
        await sleep(POLL_MS);
        const [fn, job] = await Promise.all([
          getJSON(`/labeling-functions/${encodeURIComponent(body.name)}`),
          getJSON(`/jobs/${encodeURIComponent(run.job_id)}`).catch(() => null),
        ]);
        run = fn.run;
        this.progress(job ? job.progress : 0, run.state);
      }
      this.progress(1, run.state);
      if (run.state !== "succeeded") {
        fill(out, h("p", { class: "error" }, `The labeling function ${run.state}${run.detail ? `: ${run.detail}` : "."}`));
        return;
      }
      const curve = await getJSON(`/labeling-functions/${encodeURIComponent(body.name)}/curve`);
      this.showRun(run, curve, body.rules[0].label, body.target_precision ?? null);
      note(`Auto-labelled ${plural(run.labeled, "asset")} as “${body.rules[0].label}” into ${run.into}.`);
      this.page.filters.load();
    } catch (err) {
      $("#auto-progress", d).hidden = true;
      fill(out, h("p", { class: "error" }, describe(err)));
    } finally {
      this.running = false;
      button.disabled = false;
    }
  }

  progress(value, state) {
    const d = this.autoDialog;
    $("#auto-progress", d).hidden = false;
    $("#auto-bar", d).value = value || 0;
    $("#auto-state", d).textContent = state === "succeeded" ? "done" : `${state}… ${Math.round((value || 0) * 100)} %`;
  }

  showRun(run, curve, label, target) {
    const d = this.autoDialog;
    const estimated = run.estimated_from !== null && run.estimated_from !== undefined;
    const stat = (id, name, value) => [h("dt", {}, name), h("dd", { id }, value)];
    const facts = h("dl", { class: "props run-facts" },
      stat("auto-labeled", "Labelled", `${fmtCount(run.labeled)} as “${label}” into ${run.into}`),
      stat("auto-abstained", "Abstained", fmtCount(run.abstained)),
      stat("auto-threshold-value", "Threshold", num(run.threshold)),
      estimated ? stat("auto-precision", "Estimated precision", pct(run.estimated_precision)) : null,
      estimated ? stat("auto-coverage", "Estimated coverage", pct(run.estimated_coverage)) : null,
      estimated ? stat("auto-estimated-from", "Measured on", `${run.estimated_from} (${plural(run.estimated_on, "labelled asset")}; ${run.method})`) : null,
    );
    const points = curve.curve || [];
    const parts = [facts];
    if (!estimated) {
      parts.push(h("p", { id: "auto-nothing-estimated", class: "muted" },
        "Nothing was estimated: no ground-truth set was given, so the labels are at the threshold you chose and their precision is unknown."));
    } else if (run.threshold === null) {
      parts.push(h("p", { class: "error" }, run.detail || "No threshold reaches the target precision; nothing was labelled."));
    } else if (target !== null && run.estimated_precision !== null && run.estimated_precision < target) {
      parts.push(h("p", { id: "auto-below-target", class: "muted" },
        `Held out, the precision is below the target ${pct(target)}: the threshold fits these labelled assets better than new ones. Label more examples of “${label}”, or raise the target.`));
    } else if (run.estimated_precision === null) {
      parts.push(h("p", { class: "muted" },
        "No precision could be estimated: on held-out ground truth, the thresholds chosen on the other folds labelled nothing. Label more assets of this class, or lower the target."));
    }
    if (points.length) {
      parts.push(
        h("div", { class: "curve-wrap" },
          curveChart(points, run.threshold),
          h("ul", { class: "legend curve-legend" },
            h("li", { class: "legend-item" }, h("span", { class: "swatch curve-precision-swatch" }), "precision"),
            h("li", { class: "legend-item" }, h("span", { class: "swatch curve-coverage-swatch" }), "coverage"),
            h("li", { class: "legend-item" }, h("span", { class: "swatch curve-chosen-swatch" }), "chosen threshold"))),
        h("details", { class: "curve-table" },
          h("summary", {}, "The curve as a table"),
          h("table", {},
            h("thead", {}, h("tr", {}, h("th", {}, "threshold"), h("th", {}, "precision"), h("th", {}, "coverage"), h("th", {}, "labelled"))),
            h("tbody", {}, points.map((p) => h("tr", {}, h("td", {}, num(p.threshold)), h("td", {}, pct(p.precision)), h("td", {}, pct(p.coverage)), h("td", {}, fmtCount(p.labeled)))))),
        ),
      );
    }
    if (run.labeled) {
      parts.push(h("p", {}, h("button", { type: "button", id: "auto-show", class: "primary", onclick: () => this.showLabelled(run.into, label) },
        `Show the ${plural(run.labeled, "auto-labelled asset")}`)));
    }
    fill($("#auto-result", d), parts);
  }

  /** The grid lists what the function labelled: a filter on its set's field, nothing else. */
  showLabelled(into, label) {
    const { search, filters } = this.page;
    this.autoDialog.close();
    $("#reset-search").click(); // no text, images, marks or map scope: the filter alone
    search.scope = null;
    this.page.grid.selectNone();
    filters.set(`labels.${into}.label`, { type: "in", values: [label] });
    this.page.showView("#tab-results");
  }
}
