// Export a selection (asset ids), a whole search or everything under the filters to a labeling
// target (POST /exports), follow it (GET /exports/{id}) until it has finished, and show the outcome.

import { getJSON, postJSON } from "./api.js";
import { $, clear, fill, fmtCount, h, plural } from "./dom.js";
import { describe } from "./notify.js";

const FILE_TARGETS = new Set(["jsonl", "csv", "labelbox", "coco", "label-studio-json"]);
const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 600;

export class Exporter {
  constructor(dialog) {
    this.dialog = dialog;
    this.ids = [];
    this.wide = null; // {label, selection}: the alternative to the ids, e.g. {search: {...}}
    this.returnFocus = null;
    $("form", dialog).addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $("#export-target", dialog).addEventListener("change", () => this.showTargetFields());
    $("#export-cancel", dialog).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    });
  }

  /**
   * Open for `ids` (a selection, described by `label`); `wide` offers a larger selection instead:
   * {label, selection: {search: body} | {filter: {...}}}.
   */
  open({ ids, label, wide = null }) {
    this.ids = ids;
    this.wide = wide;
    this.returnFocus = document.activeElement;
    const byIds = $("#export-what-ids", this.dialog);
    $("#export-what-ids-label", this.dialog).textContent = `${label} (${plural(ids.length, "asset")})`;
    byIds.disabled = !ids.length;
    byIds.checked = ids.length > 0;
    const wideRadio = $("#export-what-search", this.dialog);
    $("#export-what-search-row", this.dialog).hidden = !wide;
    wideRadio.checked = !ids.length && !!wide;
    if (wide) $("#export-what-search-label", this.dialog).textContent = wide.label;
    clear($("#export-result", this.dialog));
    this.showTargetFields();
    this.dialog.showModal();
    $("#export-target", this.dialog).focus();
  }

  showTargetFields() {
    const target = $("#export-target", this.dialog).value;
    $("#export-file-fields", this.dialog).hidden = !FILE_TARGETS.has(target);
    $("#export-ls-fields", this.dialog).hidden = target !== "label-studio";
  }

  request() {
    const target = $("#export-target", this.dialog).value;
    const body = { target };
    const limit = Number($("#export-limit", this.dialog).value) || 1000;
    if ($("#export-what-search", this.dialog).checked && this.wide) {
      const { search, filter, selection } = this.wide.selection;
      if (search) body.search = { ...search, offset: 0, limit: Math.min(limit, 1000) };
      else if (selection) Object.assign(body, { selection, limit }); // a named selection (POST /selections)
      else Object.assign(body, { filter, limit });
    } else {
      body.ids = this.ids;
    }
    const path = $("#export-path", this.dialog).value.trim();
    if (FILE_TARGETS.has(target) && path) body.path = path;
    if (target === "label-studio") {
      const project = $("#export-ls-project", this.dialog).value.trim();
      body.label_studio = {
        url: $("#export-ls-url", this.dialog).value.trim(),
        token: $("#export-ls-token", this.dialog).value,
        ...(/^\d+$/.test(project) ? { project_id: Number(project) } : { title: project || "Loupe export" }),
      };
    }
    return body;
  }

  async submit() {
    const out = $("#export-result", this.dialog);
    const button = $("#export-submit", this.dialog);
    button.disabled = true;
    clear(out).append(h("p", {}, "Exporting…"));
    try {
      let job = await postJSON("/exports", this.request());
      this.show(job);
      while (ACTIVE.has(job.state)) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        job = await getJSON(`/exports/${encodeURIComponent(job.id)}`);
        this.show(job);
      }
    } catch (err) {
      clear(out).append(h("p", { class: "error" }, describe(err)));
    } finally {
      button.disabled = false;
    }
  }

  show(job) {
    const counts = job.counts || {};
    const parts = ["selected", "sent", "skipped", "failed"]
      .filter((k) => counts[k] !== undefined)
      .map((k) => `${fmtCount(counts[k])} ${k}`);
    const failed = job.state === "failed";
    const where = job.location || "";
    const link = /^https?:\/\//.test(where);
    fill($("#export-result", this.dialog),
      h("p", { class: failed ? "error" : ACTIVE.has(job.state) ? "" : "ok" }, `Export ${job.state}: ${parts.join(", ")}.`),
      where && !ACTIVE.has(job.state)
        ? h("p", {}, link ? h("a", { href: where, class: "location", target: "_blank", rel: "noopener" }, where.includes("/download") ? "Download the file" : where)
          : h("span", {}, "Written to ", h("code", { class: "location" }, where)))
        : null,
      job.detail ? h("p", { class: failed ? "error" : "muted" }, job.detail) : null,
    );
  }
}
