// Label sets, evaluations (per class, per slice), confusion matrices and run comparisons. Every
// group of assets (a cell, a slice's errors, the assets fixed between runs, look-alikes of errors)
// opens in the results grid by its filter, with ground truth and prediction on each card.

import { deleteJSON, getJSON, postForm, postJSON } from "./api.js";
import { fill, fmtCount, fmtDate, h, plural } from "./dom.js";
import { contextOf, evaluationPanel, runName } from "./evaluation.js";
import { describe, note, showError } from "./notify.js";
import { deltaCell, fmtMetric, sortableTable } from "./tables.js";

const POLL_MS = 400;
const ACTIVE = new Set(["queued", "running"]);
// POST /labelsets/{name}/annotations as multipart: the file formats it reads.
const FILE_FORMATS = [
  ["loupe", "Loupe JSONL"], ["csv", "CSV (classification)"], ["coco", "COCO JSON"],
  ["yolo", "YOLO (zip of .txt + class names)"], ["label-studio", "Label Studio export (JSON)"],
];
const SIMILAR_LIMIT = 200;
const SHOWN_CLASSES = 8;
const MAIN_METRIC = { classification: ["accuracy", "accuracy"], detection: ["map", "mAP"] };
const LOWER_IS_BETTER = new Set(["fp", "fn"]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ModelsView {
  constructor(root, page) {
    this.root = root;
    this.page = page;
    this.sets = [];
    this.evaluations = [];
    this.current = null; // the evaluation on show
    this.running = null; // {id, job}
    this.built = false;
  }

  /** Called each time the view's tab opens. */
  show() {
    if (!this.built) this.build();
    this.refresh();
  }

  build() {
    this.built = true;
    this.setsBox = h("div", { class: "table-wrap", id: "label-sets" });
    this.importBox = this.buildImport();
    this.gtSelect = h("select", { id: "eval-gt", onchange: () => this.fillPredictions() });
    this.predSelect = h("select", { id: "eval-pred", onchange: () => this.syncIou() });
    this.sliceSelect = h("select", { id: "eval-slice" });
    this.iouInput = h("input", { id: "eval-iou", type: "number", min: "0.05", max: "1", step: "0.05", value: "0.5" });
    this.iouRow = h("label", { class: "param", hidden: true }, "IoU ", this.iouInput);
    this.runButton = h("button", { type: "submit", class: "primary", id: "eval-run" }, "Evaluate");
    this.runStatus = h("div", { class: "run-status", id: "eval-status", role: "status" });
    this.evalsBox = h("div", { class: "table-wrap", id: "evaluations" });
    this.detailBox = h("div", { id: "evaluation-detail" });
    this.cmpA = h("select", { id: "compare-a", onchange: () => this.fillCompareB() });
    this.cmpB = h("select", { id: "compare-b" });
    this.cmpBox = h("div", { id: "comparison" });
    const runForm = h("form", { class: "eval-form", onsubmit: (e) => { e.preventDefault(); this.run(); } },
      h("label", { class: "param" }, "Ground truth ", this.gtSelect),
      h("label", { class: "param" }, "Predictions ", this.predSelect),
      h("label", { class: "param" }, "Slice by ", this.sliceSelect),
      this.iouRow,
      this.runButton);
    const cmpForm = h("form", { class: "eval-form", onsubmit: (e) => { e.preventDefault(); this.compare(); } },
      h("label", { class: "param" }, "A (before) ", this.cmpA),
      h("label", { class: "param" }, "B (after) ", this.cmpB),
      h("button", { type: "submit", id: "compare-run" }, "Compare"));
    fill(this.root,
      h("div", { class: "toolbar" }, h("h2", { class: "summary" }, "Models")),
      h("section", { class: "panel models-panel", "aria-labelledby": "sets-title" },
        h("div", { class: "section-head" }, h("h3", { id: "sets-title" }, "Label sets"),
          h("button", { type: "button", id: "labels-import-open", "aria-expanded": "false",
            onclick: (e) => this.toggleImport(e.currentTarget) }, "Import labels")),
        this.importBox, this.setsBox),
      h("section", { class: "panel models-panel", "aria-labelledby": "evals-title" },
        h("h3", { id: "evals-title" }, "Evaluations"),
        runForm, this.runStatus, this.evalsBox),
      h("section", { class: "panel models-panel", "aria-live": "polite" }, this.detailBox),
      h("section", { class: "panel models-panel", "aria-labelledby": "compare-title" },
        h("h3", { id: "compare-title" }, "Compare two runs"),
        h("p", { class: "muted small" }, "Two evaluations on the same ground truth: B minus A overall, per class and per slice, and the assets fixed and broken."),
        cmpForm, this.cmpBox));
  }

  async refresh() {
    try {
      const [sets, evals] = await Promise.all([getJSON("/labelsets"), getJSON("/evaluations", { limit: 100 })]);
      this.sets = sets.data;
      this.evaluations = evals.data;
    } catch (err) {
      showError(err, "Loading label sets and evaluations");
      return;
    }
    this.renderSets();
    if (!this.importBox.hidden) this.fillImport(); // a set made or deleted changes its choices
    this.fillRunForm();
    this.renderEvaluations();
    this.fillCompareA();
    const done = this.evaluations.filter((e) => e.state === "succeeded");
    if (!this.current && done.length) this.open(done[0].id);
  }

  // -- label sets ------------------------------------------------------------------------

  renderSets() {
    if (!this.sets.length) {
      fill(this.setsBox, h("p", { class: "muted" }, "No label sets yet. Import ground truth and model predictions with Import labels above, ",
        h("code", {}, "loupe labels import SET FILE --role ground_truth|predictions"), " or POST /api/v1/labelsets."));
      return;
    }
    const classes = (s) => {
      const shown = s.classes.slice(0, SHOWN_CLASSES).join(", ");
      return s.classes.length > SHOWN_CLASSES ? `${shown} +${s.classes.length - SHOWN_CLASSES} more` : shown || "—";
    };
    fill(this.setsBox, sortableTable({
      columns: [
        { key: "name", label: "Name" },
        { key: "role", label: "Kind", cell: (s) => (s.role === "ground_truth" ? "Ground truth" : "Predictions") },
        { key: "task", label: "Task" },
        { key: "classes", label: "Classes", value: (s) => s.classes.length, cell: (s) => h("td", { class: "classes", title: s.classes.join(", ") }, `${s.classes.length}: ${classes(s)}`) },
        { key: "assets", label: "Assets", num: true },
        { key: "model", label: "Model", cell: (s) => s.model || "—" },
        { key: "updated_at", label: "Updated", cell: (s) => (s.updated_at ? fmtDate(s.updated_at) : "—") },
        { key: "delete", label: "", sortable: false, cell: (s) => h("td", { class: "eval-actions" },
          h("button", {
            type: "button", class: "link set-delete", dataset: { name: s.name },
            "aria-label": `Delete the label set ${s.name}`,
            onclick: (e) => this.removeSet(s, e.currentTarget),
          }, "Delete")) },
      ],
      rows: this.sets,
      className: "label-sets",
    }));
  }

  /** DELETE /labelsets/{name}, once confirmed: the set and its `labels.<name>.*` fields go. */
  async removeSet(set, button) {
    if (!window.confirm(`Delete the label set ${set.name}? Its fields (labels.${set.name}.*) are removed from every asset; evaluations already run keep their numbers.`)) return;
    button.disabled = true;
    try {
      await deleteJSON(`/labelsets/${encodeURIComponent(set.name)}`);
    } catch (err) {
      button.disabled = false;
      showError(err, "Deleting the label set");
      return;
    }
    note(`Deleted the label set ${set.name}.`);
    this.page.filters.load(); // its labels.<name>.* fields leave the sidebar
    await this.refresh();
  }

  // -- importing labels ------------------------------------------------------------------------

  buildImport() {
    const field = (label, control, extra = {}) => h("label", { class: "param", ...extra }, `${label} `, control);
    this.impSet = h("select", { id: "import-set", onchange: () => this.syncImport() });
    this.impName = h("input", { id: "import-name", type: "text", placeholder: "e.g. reviewed", pattern: "[A-Za-z0-9_\\-]+", maxlength: "100" });
    this.impRole = h("select", { id: "import-role" },
      h("option", { value: "ground_truth" }, "Ground truth"), h("option", { value: "predictions" }, "Predictions"));
    this.impTask = h("select", { id: "import-task" },
      h("option", { value: "classification" }, "Classification"), h("option", { value: "detection" }, "Detection"));
    this.impModel = h("input", { id: "import-model", type: "text", placeholder: "optional: resnet v2", maxlength: "500" });
    this.impNew = h("div", { class: "eval-form", id: "import-new" },
      field("Name", this.impName), field("Kind", this.impRole), field("Task", this.impTask), field("Model", this.impModel));
    this.impFrom = h("select", { id: "import-from", onchange: () => this.syncImport() },
      h("option", { value: "file" }, "a file"), h("option", { value: "field" }, "a metadata field"),
      h("option", { value: "label-studio" }, "a Label Studio project"));
    this.impFile = h("input", { id: "import-file", type: "file" });
    this.impFormat = h("select", { id: "import-format" }, ...FILE_FORMATS.map(([v, t]) => h("option", { value: v }, t)));
    this.impSource = h("select", { id: "import-source" });
    this.impFromFile = h("div", { class: "eval-form", id: "import-from-file" },
      field("File", this.impFile), field("Format", this.impFormat), field("File names under source", this.impSource));
    this.impField = h("select", { id: "import-field" });
    this.impFromField = h("div", { class: "eval-form", id: "import-from-field", hidden: true }, field("Field", this.impField));
    this.impUrl = h("input", { id: "import-ls-url", type: "url", placeholder: "http://localhost:8080" });
    this.impToken = h("input", { id: "import-ls-token", type: "password", autocomplete: "off" });
    this.impProject = h("input", { id: "import-ls-project", type: "number", min: "1", step: "1" });
    this.impFromLs = h("div", { class: "eval-form", id: "import-from-ls", hidden: true },
      field("URL", this.impUrl), field("API token", this.impToken), field("Project id", this.impProject));
    this.impButton = h("button", { type: "submit", class: "primary", id: "import-run" }, "Import");
    this.impStatus = h("div", { class: "run-status", id: "import-status", role: "status" });
    return h("form", { class: "import-form", id: "labels-import", hidden: true, onsubmit: (e) => { e.preventDefault(); this.importLabels(); } },
      h("div", { class: "eval-form" }, field("Into", this.impSet), field("from", this.impFrom)),
      this.impNew, this.impFromFile, this.impFromField, this.impFromLs,
      h("p", { class: "muted small" }, "Assets are matched by id, by source + key, or by file name under the source; unmatched records are counted and listed, and a malformed file imports nothing."),
      h("div", { class: "eval-form" }, this.impButton), this.impStatus);
  }

  async toggleImport(button) {
    const form = this.importBox;
    form.hidden = !form.hidden;
    button.setAttribute("aria-expanded", String(!form.hidden));
    if (form.hidden) return;
    this.fillImport();
    try {
      const { data } = await getJSON("/sources");
      const keep = this.impSource.value;
      this.impSource.replaceChildren(h("option", { value: "" }, "the only source / ids in the file"),
        ...data.map((src) => h("option", { value: src.name }, src.name)));
      if (data.some((src) => src.name === keep)) this.impSource.value = keep;
    } catch (err) {
      showError(err, "Loading the sources");
    }
  }

  /** The set choices (existing ones, or a new one) and the catalog's metadata fields. */
  fillImport() {
    const keep = this.impSet.value;
    this.impSet.replaceChildren(h("option", { value: "" }, "a new set…"),
      ...this.sets.map((s) => h("option", { value: s.name }, `${s.name} (${s.role === "ground_truth" ? "ground truth" : "predictions"}, ${s.task})`)));
    if (this.sets.some((s) => s.name === keep)) this.impSet.value = keep;
    const meta = this.page.filters.fields.filter((f) => !f.derived && f.name.startsWith("meta."));
    const field = this.impField.value;
    this.impField.replaceChildren(...meta.map((f) => h("option", { value: f.name }, f.label)));
    if (meta.some((f) => f.name === field)) this.impField.value = field;
    this.syncImport();
  }

  syncImport() {
    this.impNew.hidden = Boolean(this.impSet.value);
    const from = this.impFrom.value;
    this.impFromFile.hidden = from !== "file";
    this.impFromField.hidden = from !== "field";
    this.impFromLs.hidden = from !== "label-studio";
  }

  /** Checked on the page before anything is sent: what the form lacks, in plain words. */
  importProblem() {
    if (!this.impSet.value && !this.impName.value.trim()) return "Name the new set (letters, digits, _ and -).";
    const from = this.impFrom.value;
    if (from === "file" && !this.impFile.files.length) return "Choose the file to import.";
    if (from === "field" && !this.impField.value) return "The catalog has no metadata field to take labels from.";
    if (from === "label-studio" && !(this.impUrl.value && this.impToken.value && this.impProject.value)) {
      return "Give the Label Studio URL, an API token and the project id.";
    }
    return null;
  }

  importBody() {
    const from = this.impFrom.value;
    if (from === "file") {
      const form = new FormData();
      form.append("file", this.impFile.files[0]);
      form.append("format", this.impFormat.value);
      if (this.impSource.value) form.append("source", this.impSource.value);
      return form;
    }
    if (from === "field") return { from_field: this.impField.value };
    return { label_studio: { url: this.impUrl.value.trim(), token: this.impToken.value, project_id: Number(this.impProject.value) } };
  }

  async importLabels() {
    const problem = this.importProblem();
    if (problem) {
      fill(this.impStatus, h("p", { class: "error" }, problem));
      return;
    }
    const name = this.impSet.value || this.impName.value.trim();
    const created = !this.impSet.value;
    const path = `/labelsets/${encodeURIComponent(name)}/annotations`;
    this.impButton.disabled = true;
    const bar = h("progress", { max: "1", value: "0" });
    const text = h("span", {}, "Sending…");
    fill(this.impStatus, bar, text);
    let job;
    try {
      if (created) {
        const body = { name, role: this.impRole.value, task: this.impTask.value };
        if (this.impModel.value.trim()) body.model = this.impModel.value.trim();
        await postJSON("/labelsets", body);
      }
      try {
        const body = this.importBody();
        job = body instanceof FormData ? await postForm(path, body) : await postJSON(path, body);
        while (ACTIVE.has(job.state)) {
          await sleep(POLL_MS);
          job = await getJSON(`/jobs/${job.id}`);
          bar.value = job.progress;
          text.textContent = `${job.state === "queued" ? "Queued" : "Importing"} into ${name}… ${Math.round(job.progress * 100)}%`;
        }
      } catch (err) {
        // The import was refused (a malformed file is checked whole before anything is written):
        // a set made for it is removed again, so a failed attempt leaves nothing behind.
        if (created) await deleteJSON(`/labelsets/${encodeURIComponent(name)}`).catch(() => {});
        throw err;
      }
    } catch (err) {
      fill(this.impStatus, h("p", { class: "error" }, describe(err)));
      this.impButton.disabled = false;
      await this.refresh();
      return;
    }
    this.impButton.disabled = false;
    const c = job.counts || {};
    if (job.state !== "succeeded") {
      if (created) await deleteJSON(`/labelsets/${encodeURIComponent(name)}`).catch(() => {});
      fill(this.impStatus, h("p", { class: "error" }, `The import ${job.state}: ${job.detail || "no reason given"}`));
    } else {
      const unmatched = c.unknown_asset || 0;
      const lines = [h("p", { class: "ok" }, `Imported ${plural(c.imported || 0, "annotation")} into ${name}`
        + ` (${fmtCount(c.received || 0)} received, ${fmtCount(unmatched)} matched no asset, ${fmtCount(c.invalid || 0)} invalid).`)];
      if (unmatched && job.errors.length) {
        lines.push(h("ul", { class: "unmatched small" }, ...job.errors.slice(0, 5).map((e) => h("li", {}, Object.values(e).join(": ")))));
      }
      fill(this.impStatus, ...lines);
      note(`Imported labels into ${name}: labels.${name}.* fields filter now.`);
      this.page.filters.load(); // the set's fields join the sidebar
    }
    await this.refresh();
    this.fillImport();
    if (job.state === "succeeded") this.impSet.value = name;
    this.syncImport();
  }

  // -- running an evaluation ----------------------------------------------------------------

  fillRunForm() {
    const keep = (select) => select.value;
    const gt = keep(this.gtSelect);
    const truths = this.sets.filter((s) => s.role === "ground_truth");
    this.gtSelect.replaceChildren(...truths.map((s) => h("option", { value: s.name }, `${s.name} (${s.task})`)));
    if (truths.some((s) => s.name === gt)) this.gtSelect.value = gt;
    this.fillPredictions();
    const slice = keep(this.sliceSelect);
    // Metadata and built-in fields whose values make groups (not the sets' own fields).
    const fields = this.page.filters.fields.filter((f) => !f.derived && f.facetable && ["keyword", "bool", "integer"].includes(f.type)
      && !["status", "key", "media_type"].includes(f.name) && f.distinct > 1);
    this.sliceSelect.replaceChildren(h("option", { value: "" }, "nothing"), ...fields.map((f) => h("option", { value: f.label }, f.label)));
    if (fields.some((f) => f.label === slice)) this.sliceSelect.value = slice;
    this.runButton.disabled = !truths.length || !this.predSelect.options.length || Boolean(this.running);
  }

  fillPredictions() {
    const gt = this.sets.find((s) => s.name === this.gtSelect.value);
    const pred = this.predSelect.value;
    const runs = this.sets.filter((s) => s.role === "predictions" && (!gt || s.task === gt.task));
    this.predSelect.replaceChildren(...runs.map((s) => h("option", { value: s.name }, s.model ? `${s.name} (${s.model})` : s.name)));
    if (runs.some((s) => s.name === pred)) this.predSelect.value = pred;
    this.syncIou();
  }

  syncIou() {
    const gt = this.sets.find((s) => s.name === this.gtSelect.value);
    this.iouRow.hidden = !gt || gt.task !== "detection";
    this.runButton.disabled = !gt || !this.predSelect.options.length || Boolean(this.running);
  }

  async run() {
    const body = { ground_truth: this.gtSelect.value, predictions: this.predSelect.value };
    if (this.sliceSelect.value) body.slice_by = [this.sliceSelect.value];
    if (!this.iouRow.hidden) body.iou = Number(this.iouInput.value);
    this.runButton.disabled = true;
    const bar = h("progress", { max: "1", value: "0" });
    const text = h("span", {}, "Queued…");
    fill(this.runStatus, bar, text);
    let ev;
    try {
      ev = await postJSON("/evaluations", body);
      this.running = { id: ev.id };
      while (ACTIVE.has(ev.state)) {
        await sleep(POLL_MS);
        const [job, now] = await Promise.all([getJSON(`/jobs/${ev.job_id}`), getJSON(`/evaluations/${ev.id}`)]);
        bar.value = job.progress;
        text.textContent = `${job.state === "queued" ? "Queued" : "Evaluating"} ${runName(ev)}… ${Math.round(job.progress * 100)}%`;
        ev = now;
      }
    } catch (err) {
      fill(this.runStatus, h("p", { class: "error" }, describe(err)));
      this.running = null;
      this.syncIou();
      return;
    }
    this.running = null;
    if (ev.state !== "succeeded") {
      fill(this.runStatus, h("p", { class: "error" }, `The evaluation ${ev.state}: ${ev.detail || "no reason given"}`));
    } else {
      fill(this.runStatus, h("p", { class: "ok" }, `Done: ${runName(ev)}, ${plural(ev.counts.matched, "asset")} scored.`));
      note(`Evaluated ${runName(ev)}: its outcomes are filterable fields now.`);
      this.page.filters.load(); // its evals.<id>.* fields join the sidebar
    }
    this.current = null;
    await this.refresh();
    if (ev.state === "succeeded") this.open(ev.id);
  }

  // -- the list and one evaluation ----------------------------------------------------------

  renderEvaluations() {
    if (!this.evaluations.length) {
      fill(this.evalsBox, h("p", { class: "muted" }, "No evaluation yet: pick a ground-truth set and a predictions set above."));
      return;
    }
    const metric = (e) => {
      const [key] = MAIN_METRIC[e.task];
      return e.metrics ? e.metrics[key] : null;
    };
    fill(this.evalsBox, sortableTable({
      columns: [
        { key: "id", label: "Run", cell: (e) => h("th", { scope: "row" },
          h("button", { type: "button", class: "link eval-open", dataset: { id: e.id }, disabled: e.state !== "succeeded", onclick: () => this.open(e.id) }, runName(e)),
          h("span", { class: "muted small" }, ` ${e.id.slice(0, 8)}`)) },
        { key: "task", label: "Task" },
        { key: "metric", label: "Accuracy / mAP", num: true, value: metric },
        { key: "matched", label: "Scored", num: true, value: (e) => e.counts.matched },
        { key: "slice_by", label: "Sliced by", cell: (e) => e.slice_by.join(", ") || "—" },
        { key: "state", label: "State", cell: (e) => h("td", { class: `state ${e.state}` }, e.detail && e.state === "failed" ? `failed: ${e.detail}` : e.state) },
        { key: "created_at", label: "When", cell: (e) => (e.created_at ? fmtDate(e.created_at) : "—") },
        { key: "delete", label: "", sortable: false, cell: (e) => h("td", { class: "eval-actions" },
          h("button", {
            type: "button", class: "link eval-delete", dataset: { id: e.id }, disabled: ACTIVE.has(e.state),
            title: ACTIVE.has(e.state) ? "Running: wait for it, or cancel its job in the header" : null,
            "aria-label": `Delete the evaluation ${runName(e)} ${e.id.slice(0, 8)}`,
            onclick: (ev) => this.remove(e, ev.currentTarget),
          }, "Delete")) },
      ],
      rows: this.evaluations,
      className: "evaluations",
    }));
  }

  /** DELETE /evaluations/{id}, once confirmed: its row and its `evals.<id>.*` fields go. */
  async remove(ev, button) {
    const what = `${runName(ev)} (${ev.id.slice(0, 8)})`;
    if (!window.confirm(`Delete the evaluation ${what}? Its outcome fields (evals.${ev.id}.*) are removed from every asset.`)) return;
    button.disabled = true;
    try {
      await deleteJSON(`/evaluations/${encodeURIComponent(ev.id)}`);
    } catch (err) {
      button.disabled = false;
      showError(err, "Deleting the evaluation");
      return;
    }
    if (this.current && this.current.id === ev.id) {
      this.current = null;
      fill(this.detailBox);
    }
    fill(this.cmpBox);
    note(`Deleted the evaluation ${what}.`);
    this.page.filters.load(); // its evals.<id>.* fields leave the sidebar
    await this.refresh();
  }

  async open(id) {
    let ev;
    try {
      ev = await getJSON(`/evaluations/${encodeURIComponent(id)}`);
    } catch (err) {
      showError(err, "Loading the evaluation");
      return;
    }
    this.current = ev;
    for (const b of this.evalsBox.querySelectorAll(".eval-open")) b.closest("tr").classList.toggle("current", b.dataset.id === id);
    fill(this.detailBox, evaluationPanel(ev, {
      open: (where) => this.openInGrid(where),
      similar: (e, body, what) => this.similar(e, body, what),
    }));
  }

  /** Show a filter's assets in the results grid, with a banner naming them. */
  openInGrid(where) {
    this.page.showView("#tab-results");
    this.page.search.setWhere(where);
  }

  /** Unlabeled look-alikes of a cell's or a slice's errors: POST /evaluations/{id}/similar, then the
   * same search in the grid (its examples and its "not in the ground truth" filter), exportable. */
  async similar(ev, body, what) {
    let res;
    try {
      res = await postJSON(`/evaluations/${ev.id}/similar`, { ...body, limit: SIMILAR_LIMIT });
    } catch (err) {
      showError(err, "Find more like these");
      return;
    }
    this.openInGrid({
      filter: res.search.filter,
      like: res.search.like,
      label: `unlabeled assets like ${what} (${runName(ev)}; ${plural(res.examples, "example")} of ${fmtCount(res.errors)}), not in “${ev.ground_truth}”`,
      context: { ...contextOf(ev, { evaluation: false }) },
      similar: res,
    });
  }

  // -- comparing two runs ------------------------------------------------------------------

  fillCompareA() {
    const done = this.evaluations.filter((e) => e.state === "succeeded");
    const a = this.cmpA.value;
    // Oldest first as A: comparisons usually read "before, after".
    const ordered = [...done].reverse();
    this.cmpA.replaceChildren(...ordered.map((e) => h("option", { value: e.id }, runLabel(e))));
    if (done.some((e) => e.id === a)) this.cmpA.value = a;
    this.fillCompareB();
  }

  fillCompareB() {
    const a = this.evaluations.find((e) => e.id === this.cmpA.value);
    const b = this.cmpB.value;
    const others = this.evaluations.filter((e) => e.state === "succeeded" && a && e.id !== a.id && e.ground_truth === a.ground_truth && e.task === a.task);
    this.cmpB.replaceChildren(...[...others].reverse().map((e) => h("option", { value: e.id }, runLabel(e))));
    if (others.some((e) => e.id === b)) this.cmpB.value = b;
    else if (others.length) this.cmpB.value = others[0].id; // the newest other run
    this.root.querySelector("#compare-run").disabled = !others.length;
    if (a && !others.length) fill(this.cmpBox, h("p", { class: "muted" }, `No other evaluation on “${a.ground_truth}” to compare with: run one.`));
  }

  async compare() {
    const a = this.evaluations.find((e) => e.id === this.cmpA.value);
    const b = this.evaluations.find((e) => e.id === this.cmpB.value);
    if (!a || !b) return;
    let cmp;
    try {
      cmp = await postJSON("/evaluations/compare", { a: a.id, b: b.id });
    } catch (err) {
      fill(this.cmpBox, h("p", { class: "error" }, describe(err)));
      return;
    }
    fill(this.cmpBox, comparisonPanel(cmp, a, b, (where) => this.openInGrid(where)));
  }
}

/** An evaluation in a list of choices: its run, short id and headline metric. */
function runLabel(e) {
  const [key, name] = MAIN_METRIC[e.task];
  return `${runName(e)} · ${e.id.slice(0, 8)} · ${name} ${fmtMetric(e.metrics[key], key)}`;
}

function comparisonPanel(cmp, a, b, open) {
  const better = (key) => !LOWER_IS_BETTER.has(key);
  const overall = Object.keys(cmp.metrics).map((key) => ({ key, a: a.metrics[key], b: b.metrics[key], delta: cmp.metrics[key] }));
  const change = (kind, what) => h("button", {
    type: "button", class: `change ${kind}`, id: `compare-${kind}`, dataset: { count: String(what.count) },
    disabled: !what.count,
    onclick: () => open({ filter: what.filter, label: `the ${plural(what.count, "asset")} ${kind} from ${runName(a)} to ${runName(b)}`, context: contextOf(b) }),
  }, `${kind === "fixed" ? "Fixed" : "Broken"}: ${plural(what.count, "asset")}`);
  const classKeys = [...new Set(Object.values(cmp.per_class).flatMap((d) => Object.keys(d)))].filter((k) => k !== "support");
  const classRows = Object.entries(cmp.per_class).map(([label, d]) => ({ label, ...d }));
  const sliceKey = MAIN_METRIC[cmp.task][0];
  return h("div", { class: "comparison" },
    h("h4", {}, `B minus A: ${runName(b)} (${b.id.slice(0, 8)}) against ${runName(a)} (${a.id.slice(0, 8)})`),
    h("div", { class: "changes" }, change("fixed", cmp.fixed), change("broken", cmp.broken), h("span", { class: "muted small" }, cmp.definition)),
    h("div", { class: "table-wrap" }, sortableTable({
      columns: [
        { key: "key", label: "Metric" },
        { key: "a", label: "A", num: true, cell: (r) => h("td", { class: "num" }, fmtMetric(r.a, r.key)) },
        { key: "b", label: "B", num: true, cell: (r) => h("td", { class: "num" }, fmtMetric(r.b, r.key)) },
        { key: "delta", label: "Δ", num: true, cell: (r) => deltaCell(r.delta, better(r.key), r.key) },
      ],
      rows: overall,
      className: "compare-overall",
    })),
    h("h4", {}, "Per class"),
    h("div", { class: "table-wrap" }, sortableTable({
      columns: [{ key: "label", label: "Class" }, ...classKeys.map((k) => ({ key: k, label: `Δ ${k}`, num: true, cell: (r) => deltaCell(r[k], better(k), k) }))],
      rows: classRows,
      className: "compare-classes",
    })),
    h("h4", {}, "Per slice"),
    cmp.slices.length ? h("div", { class: "table-wrap" }, sortableTable({
      columns: [
        { key: "field", label: "Field" },
        { key: "value", label: "Value", cell: (r) => String(r.value) },
        { key: "a", label: `A ${sliceKey}`, num: true, metric: sliceKey, value: (r) => r.a[sliceKey] },
        { key: "b", label: `B ${sliceKey}`, num: true, metric: sliceKey, value: (r) => r.b[sliceKey] },
        { key: "delta", label: `Δ ${sliceKey}`, num: true, value: (r) => r.delta[sliceKey], cell: (r) => deltaCell(r.delta[sliceKey], true, sliceKey) },
      ],
      rows: cmp.slices,
      className: "compare-slices",
    })) : h("p", { class: "muted" }, "No slice in common: run both with the same slice field."));
}
