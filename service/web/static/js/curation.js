// Signals (duplicates, uniqueness, outliers, clusters, label issues) and selections of what to label next:
// each signal's state with a Compute button (a job), the duplicate groups with the kept one to choose,
// and the clusters by size, each one click away from the grid.

import { getJSON, postJSON, showImage, thumbnailUrl } from "./api.js";
import { basename, clear, fill, fmtCount, fmtDate, h, plural } from "./dom.js";
import { describe, showError } from "./notify.js";

const POLL_MS = 700;
const ACTIVE = new Set(["queued", "running"]);
const GROUPS_PAGE = 20; // duplicate groups per page
const GROUP_SHOWN = 12; // members of a group shown before "+N more"
const CLUSTERS_PAGE = 24;
const STRIP = 8; // thumbnails per cluster
const NOISE = -1;

// What each kind writes and its documented defaults (service/signals/schemas.py: DEFAULT_K, DEFAULT_THRESHOLD).
const KINDS = [
  { kind: "duplicates", title: "Duplicates", field: "signals.duplicate_group", k: 5, threshold: 0.02,
    about: "Exact copies (same content hash) and near copies (cosine distance at or under the threshold), in groups with one kept.",
    kHelp: "neighbours looked at per asset", thresholdHelp: "cosine distance, 0–2" },
  { kind: "uniqueness", title: "Uniqueness", field: "signals.uniqueness", k: 3, threshold: 0.75,
    about: "How far an asset is from its nearest neighbours (weighted 0.6, 0.3, 0.1), 0–1: rare data scores high.",
    kHelp: "nearest neighbours", thresholdHelp: "scores at or above count as flagged" },
  { kind: "outliers", title: "Outliers", field: "signals.outlier", k: 10, threshold: 0.9,
    about: "How far an asset lies outside its neighbourhood compared with the catalog's typical distance, 0–1.",
    kHelp: "nearest neighbours", thresholdHelp: "scores at or above count as flagged" },
  { kind: "typicality", title: "Typicality", field: "signals.typicality", k: 10, threshold: 0.75,
    about: "How representative an asset is of a dense region, 0–1.",
    kHelp: "nearest neighbours", thresholdHelp: "scores at or above count as flagged" },
  { kind: "clusters", title: "Clusters", field: "signals.cluster", k: 10, threshold: null,
    about: "HDBSCAN groups of similar assets; −1 is noise (in no cluster). Small clusters are the edge cases.",
    kHelp: "smallest cluster" },
  { kind: "label_issues", title: "Label issues", field: "signals.label_issue", k: 10, threshold: 0.5,
    about: "Ground-truth labels that disagree with their neighbours' labels (and a model's probabilities, if given), 0–1.",
    kHelp: "nearest neighbours", thresholdHelp: "scores at or above count as flagged", sets: true },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class CurationView {
  constructor(root, page) {
    this.root = root;
    this.page = page;
    this.signals = [];
    this.labelSets = [];
    this.running = new Map(); // kind -> job
    this.clusterOrder = "asc";
    this.clusterSizes = [];
    this.clustersShown = CLUSTERS_PAGE;
    this.groupsCursor = null;
    this.groupsToken = 0;
    this.clustersToken = 0;
    this.build();
  }

  build() {
    this.signalsBody = h("tbody");
    this.dupList = h("ol", { class: "dup-groups", "aria-label": "Duplicate groups" });
    this.dupMore = h("button", { type: "button", hidden: true, onclick: () => this.loadGroups(false) }, "More groups");
    this.dupSummary = h("p", { class: "muted", id: "dup-summary" });
    this.clusterList = h("ol", { class: "clusters", "aria-label": "Clusters" });
    this.clusterSummary = h("p", { class: "muted", id: "cluster-summary" });
    this.clusterMore = h("button", { type: "button", hidden: true, onclick: () => this.moreClusters() }, "More clusters");
    const order = h("select", { id: "cluster-order", "aria-label": "Cluster order", onchange: (e) => this.sortClusters(e.target.value) },
      h("option", { value: "asc" }, "smallest first"),
      h("option", { value: "desc" }, "largest first"));
    fill(this.root,
      h("div", { class: "toolbar curation-head" },
        h("h2", { class: "summary" }, "Curation"),
        h("div", { class: "toolbar-actions" },
          h("button", { type: "button", id: "curation-batch", class: "primary", onclick: () => this.page.batch.open() }, "Select next batch…"))),
      h("section", { class: "panel curation-panel", "aria-labelledby": "signals-title" },
        h("h3", { id: "signals-title" }, "Signals"),
        h("p", { class: "muted" }, "Each signal is stored on the assets as a field (filter by it, sort the grid by it, colour the map by it). ",
          "A sync that adds assets makes it stale: compute it again."),
        h("div", { class: "table-wrap" },
          h("table", { class: "signals-table" },
            h("thead", {}, h("tr", {}, ["Signal", "State", "Parameters", ""].map((t) => h("th", { scope: "col" }, t)))),
            this.signalsBody))),
      h("section", { class: "panel curation-panel", "aria-labelledby": "dups-title", id: "duplicates" },
        h("h3", { id: "dups-title" }, "Duplicates"),
        h("p", { class: "dup-note" }, "Click a copy to keep it: the other members of its group are then left out of search and export ",
          "(they stay in the catalog, marked signals.duplicate_excluded; “Include all” brings them back)."),
        this.dupSummary, this.dupList, h("div", { class: "more-row" }, this.dupMore)),
      h("section", { class: "panel curation-panel", "aria-labelledby": "clusters-title", id: "clusters" },
        h("div", { class: "section-head" },
          h("h3", { id: "clusters-title" }, "Clusters"),
          h("label", { class: "inline" }, "Order ", order)),
        this.clusterSummary, this.clusterList, h("div", { class: "more-row" }, this.clusterMore)),
    );
  }

  /** Called each time the view's tab opens; a second call while one runs joins it (no list twice). */
  show() {
    if (!this.showing) this.showing = this.refresh().finally(() => { this.showing = null; });
    return this.showing;
  }

  async refresh() {
    await Promise.all([this.loadSignals(), this.loadLabelSets()]);
    this.renderSignals();
    // A signal computed from elsewhere (the CLI, another tab) shows its progress here too.
    for (const s of this.signals) {
      const spec = KINDS.find((k) => k.kind === s.kind);
      if (spec && ACTIVE.has(s.state) && s.job_id && !this.running.has(s.kind)) {
        getJSON(`/jobs/${encodeURIComponent(s.job_id)}`).then((job) => this.follow(spec, job), () => {});
      }
    }
    await Promise.all([this.loadGroups(true), this.loadClusters()]);
  }

  // -- signals ----------------------------------------------------------------

  async loadSignals() {
    try {
      this.signals = (await getJSON("/signals")).data;
    } catch (err) {
      showError(err, "Listing the signals failed");
    }
  }

  async loadLabelSets() {
    try {
      this.labelSets = (await getJSON("/labelsets")).data;
    } catch {
      this.labelSets = []; // label issues then say a ground-truth set is needed
    }
  }

  renderSignals() {
    clear(this.signalsBody).append(...KINDS.map((spec) => this.signalRow(spec)));
  }

  signalRow(spec) {
    const rows = this.signals.filter((s) => s.kind === spec.kind);
    const job = this.running.get(spec.kind);
    const state = h("td", { class: "signal-state" });
    if (job) {
      const pct = Math.round((job.progress || 0) * 100);
      state.append(h("span", {}, job.state === "queued" ? "Waiting to start…" : `Computing… ${pct}%`),
        h("progress", { max: 100, value: pct, "aria-label": `Progress of ${spec.title}` }));
    } else if (!rows.length) {
      state.append(h("span", { class: "muted" }, "Not computed"));
    } else {
      for (const s of rows) state.append(this.describeSignal(s));
    }
    const params = h("td", { class: "signal-params" });
    const inputs = {};
    inputs.k = h("input", { type: "number", min: 1, max: 100, step: 1, value: spec.k, "aria-label": `${spec.title}: ${spec.kHelp}`, title: spec.kHelp });
    params.append(h("label", { class: "param" }, "k ", inputs.k));
    if (spec.threshold !== null) {
      inputs.threshold = h("input", { type: "number", step: "any", min: 0, value: spec.threshold, "aria-label": `${spec.title}: threshold, ${spec.thresholdHelp}`, title: spec.thresholdHelp });
      params.append(h("label", { class: "param" }, "threshold ", inputs.threshold));
    }
    if (spec.sets) {
      const truth = this.labelSets.filter((s) => s.role === "ground_truth");
      const preds = this.labelSets.filter((s) => s.role === "predictions");
      inputs.ground_truth = h("select", { "aria-label": "Label issues: ground-truth set" },
        truth.length ? truth.map((s) => h("option", { value: s.name }, s.name)) : h("option", { value: "" }, "no ground-truth set"));
      inputs.predictions = h("select", { "aria-label": "Label issues: predictions set (optional)" },
        h("option", { value: "" }, "no predictions"), preds.map((s) => h("option", { value: s.name }, s.name)));
      params.append(h("label", { class: "param" }, "labels ", inputs.ground_truth), h("label", { class: "param" }, "model ", inputs.predictions));
    }
    inputs.scoped = h("input", { type: "checkbox" });
    params.append(h("label", { class: "param check", title: "Compute over the assets the sidebar's filters keep" }, inputs.scoped, " under the current filters"));
    const result = h("div", { class: "signal-result", role: "status" });
    const button = h("button", {
      type: "button",
      class: "primary",
      disabled: !!job,
      dataset: { kind: spec.kind },
      "aria-label": `Compute ${spec.title}`,
      onclick: () => this.compute(spec, inputs, result),
    }, rows.length ? "Recompute" : "Compute");
    return h("tr", { dataset: { kind: spec.kind } },
      h("th", { scope: "row" }, h("div", { class: "signal-name" }, spec.title), h("div", { class: "muted small" }, spec.about),
        h("code", { class: "small" }, spec.field)),
      state, params, h("td", { class: "signal-action" }, button, result));
  }

  describeSignal(s) {
    const scope = s.filter ? ` · under ${JSON.stringify(s.filter)}` : "";
    const when = s.computed_at ? `computed ${fmtDate(s.computed_at)} UTC` : s.state;
    const p = s.params || {};
    const used = [p.k != null ? `k ${p.k}` : "", p.threshold != null ? `threshold ${p.threshold}` : ""].filter(Boolean).join(", ");
    let line = `${when} over ${plural(s.assets, "asset")}${used ? ` (${used})` : ""}${scope}`;
    if (s.state === "failed") line = `failed: ${s.detail || "see the job"}`;
    const stale = s.stale ? h("span", { class: "stale" }, `stale: ${plural(s.stale_count, "asset")} synced since`) : null;
    const ok = !s.stale && s.state === "succeeded" ? h("span", { class: "fresh" }, "up to date") : null;
    return h("div", { class: "signal-line", dataset: { state: s.stale ? "stale" : s.state } }, h("span", {}, line), " ", stale || ok);
  }

  body(spec, inputs) {
    const body = {};
    const k = inputs.k.value.trim();
    if (k !== "") body.k = Number(k);
    if (inputs.threshold && inputs.threshold.value.trim() !== "") body.threshold = Number(inputs.threshold.value);
    if (inputs.ground_truth && inputs.ground_truth.value) body.ground_truth = inputs.ground_truth.value;
    if (inputs.predictions && inputs.predictions.value) body.predictions = inputs.predictions.value;
    if (inputs.scoped.checked) body.filter = this.page.search.filter();
    if (this.page.search.space) body.space = this.page.search.space;
    return body;
  }

  async compute(spec, inputs, result) {
    clear(result);
    let job;
    try {
      job = await postJSON(`/signals/${spec.kind}`, this.body(spec, inputs));
    } catch (err) {
      result.append(h("p", { class: "error" }, describe(err)));
      return;
    }
    await this.follow(spec, job);
  }

  /** Show a signal job's progress until it ends, then what it changed. */
  async follow(spec, job) {
    this.running.set(spec.kind, job);
    this.renderSignals();
    try {
      while (ACTIVE.has(job.state)) {
        await sleep(POLL_MS);
        job = await getJSON(`/jobs/${encodeURIComponent(job.id)}`);
        this.running.set(spec.kind, job);
        this.updateProgress(spec, job);
      }
    } catch (err) {
      showError(err, `Following the ${spec.title} job failed`);
    }
    this.running.delete(spec.kind);
    await this.loadSignals();
    this.renderSignals();
    if (job.state !== "succeeded") {
      const row = this.signalsBody.querySelector(`tr[data-kind="${spec.kind}"] .signal-result`);
      if (row) row.append(h("p", { class: "error" }, `${spec.title} ${job.state}: ${job.detail || "see GET /api/v1/jobs/" + job.id}`));
      return;
    }
    // New fields: the sort menu, the map's colours and the lists below.
    this.page.filters.load().then(() => this.page.sorting.load());
    if (spec.kind === "duplicates") await this.loadGroups(true);
    if (spec.kind === "clusters") await this.loadClusters();
  }

  updateProgress(spec, job) {
    const row = this.signalsBody.querySelector(`tr[data-kind="${spec.kind}"]`);
    if (!row) return;
    const pct = Math.round((job.progress || 0) * 100);
    const cell = row.querySelector(".signal-state");
    fill(cell, h("span", {}, job.state === "queued" ? "Waiting to start…" : `Computing… ${pct}%`),
      h("progress", { max: 100, value: pct, "aria-label": `Progress of ${spec.title}` }));
  }

  // -- duplicates ---------------------------------------------------------------

  async loadGroups(first) {
    const token = first ? ++this.groupsToken : this.groupsToken; // a newer first page wins
    if (first) {
      this.groupsCursor = null;
      clear(this.dupList);
    }
    let res;
    try {
      res = await getJSON("/duplicates", { limit: GROUPS_PAGE, cursor: this.groupsCursor });
    } catch (err) {
      showError(err, "Listing the duplicate groups failed");
      return;
    }
    if (token !== this.groupsToken) return;
    this.groupsCursor = res.next_cursor;
    for (const group of res.data) this.dupList.append(this.groupItem(group));
    this.dupMore.hidden = !res.next_cursor;
    const n = this.dupList.children.length;
    const computed = this.signals.some((s) => s.kind === "duplicates" && s.state === "succeeded");
    this.dupSummary.textContent = n
      ? `${plural(n, "group")}${res.next_cursor ? " so far" : ""}; the kept copy of each is outlined.`
      : computed ? "No duplicates found." : "Compute Duplicates above to find copies.";
  }

  groupItem(group) {
    const li = h("li", { class: "dup-group", dataset: { group: group.group } });
    this.fillGroup(li, group);
    return li;
  }

  fillGroup(li, group) {
    const excluded = new Set(group.excluded || []);
    const shown = group.ids.slice(0, GROUP_SHOWN);
    const strip = h("ul", { class: "dup-strip" }, shown.map((id) => {
      const kept = id === group.keep;
      const out = excluded.has(id);
      const img = h("img", { alt: "", width: 96, height: 96, loading: "lazy" });
      showImage(img, thumbnailUrl(id, 128));
      return h("li", {},
        h("button", {
          type: "button",
          class: `dup-member${kept ? " kept" : ""}${out ? " excluded" : ""}`,
          dataset: { id },
          "aria-pressed": String(kept),
          "aria-label": kept ? `Kept: ${id}` : `Keep this one instead (${id})`,
          title: kept ? "Kept for this group" : out ? "Left out of search and export; click to keep this one instead" : "Keep this one, leave the others out",
          onclick: () => this.keep(li, group, id, true),
        }, img, h("span", { class: "dup-tag" }, kept ? "kept" : out ? "left out" : "")));
    }));
    const more = group.ids.length > shown.length ? h("span", { class: "muted" }, `+${fmtCount(group.ids.length - shown.length)} more`) : null;
    const state = excluded.size
      ? `1 kept, ${plural(excluded.size, "copy", "copies")} left out of search and export`
      : "all in search and export: click the one to keep";
    fill(li,
      h("div", { class: "dup-head" },
        h("span", { class: "dup-count" }, plural(group.ids.length, "copy", "copies")),
        h("span", { class: "muted dup-state" }, state),
        excluded.size ? h("button", { type: "button", class: "link", onclick: () => this.keep(li, group, group.keep, false) }, "Include all") : null),
      h("div", { class: "dup-row" }, strip, more));
  }

  async keep(li, group, id, excludeOthers) {
    try {
      const updated = await postJSON(`/duplicates/${encodeURIComponent(group.group)}/keep`, { keep: id, exclude_others: excludeOthers });
      this.fillGroup(li, updated);
      if (this.page.search.mode === "search") this.page.search.run(); // a search leaves the excluded out
    } catch (err) {
      showError(err, "Keeping that copy failed");
    }
  }

  // -- clusters -------------------------------------------------------------------

  async loadClusters() {
    const token = ++this.clustersToken;
    if (!this.signals.some((s) => s.kind === "clusters" && s.state === "succeeded")) {
      clear(this.clusterList);
      this.clusterMore.hidden = true;
      this.clusterSummary.textContent = "Compute Clusters above to group similar assets.";
      return;
    }
    // The list shown stays until the new counts arrive (a refresh does not blank it meanwhile).
    let values;
    try {
      // Counted as the grid counts (status ok), so a cluster's number is what its click shows.
      ({ values } = await getJSON("/facets/signals.cluster", { filter: { status: "ok" }, limit: 1000 }));
    } catch (err) {
      showError(err, "Counting the clusters failed");
      return;
    }
    if (token !== this.clustersToken) return; // a newer load renders
    this.clusterSizes = values.filter((v) => typeof v.value === "number");
    this.clustersShown = CLUSTERS_PAGE;
    this.renderClusters();
  }

  sortClusters(order) {
    this.clusterOrder = order;
    this.clustersShown = CLUSTERS_PAGE;
    this.renderClusters();
  }

  moreClusters() {
    this.clustersShown += CLUSTERS_PAGE;
    this.renderClusters();
  }

  renderClusters() {
    const sign = this.clusterOrder === "asc" ? 1 : -1;
    const real = this.clusterSizes.filter((v) => v.value !== NOISE).sort((a, b) => sign * (a.count - b.count) || a.value - b.value);
    const noise = this.clusterSizes.filter((v) => v.value === NOISE);
    const all = [...real, ...noise];
    const shown = all.slice(0, this.clustersShown);
    const noiseCount = noise.length ? noise[0].count : 0;
    this.clusterSummary.textContent = real.length
      ? `${plural(real.length, "cluster")}${noiseCount ? `, ${plural(noiseCount, "asset")} in none (noise)` : ""}. Click one to open its assets in the grid.`
      : "No clusters: every asset is noise. Try a smaller “smallest cluster” (k).";
    clear(this.clusterList).append(...shown.map((c) => this.clusterItem(c)));
    this.clusterMore.hidden = shown.length >= all.length;
  }

  clusterItem({ value, count }) {
    const name = value === NOISE ? "Noise (in no cluster)" : `Cluster ${value}`;
    const strip = h("ul", { class: "cluster-strip", "aria-hidden": "true" });
    const li = h("li", { class: "cluster", dataset: { cluster: String(value), count: String(count) } },
      h("button", {
        type: "button",
        class: "cluster-open",
        "aria-label": `${name}: open its ${plural(count, "asset")} in the grid`,
        onclick: () => this.page.browseWith({ "signals.cluster": { type: "in", values: [value] } }),
      },
      h("span", { class: "cluster-name" }, name),
      h("span", { class: "cluster-count" }, plural(count, "asset")),
      strip));
    this.fillStrip(strip, value);
    return li;
  }

  async fillStrip(strip, value) {
    try {
      const { data } = await getJSON("/assets", { filter: { "signals.cluster": value, status: "ok" }, limit: STRIP });
      strip.append(...data.map((a) => {
        const img = h("img", { alt: "", width: 56, height: 56, loading: "lazy", title: basename(a.key) });
        showImage(img, thumbnailUrl(a.id, 64));
        return h("li", {}, img);
      }));
    } catch {
      // A strip is a preview; the count and the click still work.
    }
  }
}
