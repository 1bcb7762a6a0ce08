// One asset large, with all its metadata; arrows step through the results, Escape closes.

import { contentUrl, showImage, thumbnailUrl } from "./api.js";
import { basename, clear, fmtBytes, fmtDate, fmtValue, h } from "./dom.js";
import { boxLegend, boxOverlay, verdictLine } from "./verdict.js";

function flatten(obj, prefix = "", out = []) {
  for (const [key, value] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value)) flatten(value, name, out);
    else out.push([name, Array.isArray(value) ? value.map(fmtValue).join(", ") : fmtValue(value)]);
  }
  return out;
}

function table(rows) {
  return h("dl", { class: "props" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export class Detail {
  constructor(dialog, search, grid) {
    this.dialog = dialog;
    this.search = search;
    this.grid = grid;
    this.index = -1;
    this.hits = null; // the list stepped through (search results, or one asset from the map)
    this.returnFocus = null;
    dialog.addEventListener("keydown", (e) => this.key(e));
    dialog.addEventListener("close", () => {
      if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    });
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  open(index, hits = null) {
    this.hits = hits;
    this.index = index;
    this.returnFocus = document.activeElement;
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    this.dialog.querySelector(".close").focus();
  }

  get list() {
    return this.hits || this.search.hits;
  }

  key(e) {
    if (e.target.matches("input, select, textarea")) return;
    if (e.key === "ArrowRight") this.step(1);
    else if (e.key === "ArrowLeft") this.step(-1);
    else return;
    e.preventDefault();
  }

  step(delta) {
    const next = this.index + delta;
    if (next < 0 || next >= this.list.length) return;
    this.index = next;
    this.render();
    if (!this.hits && next >= this.search.hits.length - 3) this.search.more();
  }

  render() {
    const hit = this.list[this.index];
    if (!hit) return;
    const a = hit.asset;
    const name = basename(a.key) || hit.id;
    const img = h("img", { alt: name, class: "large" });
    img.addEventListener("error", () => showImage(img, thumbnailUrl(hit.id, 1024)), { once: true });
    showImage(img, contentUrl(hit.id));
    const kind = this.search.markOf(hit.id);
    const selected = this.grid.selection.has(hit.id);
    const action = (role, label, pressed, onclick) =>
      h("button", { type: "button", dataset: { role }, "aria-pressed": String(pressed), onclick }, label);
    // Re-rendering replaces the buttons: keep the keyboard focus on the same one.
    const focused = this.dialog.contains(document.activeElement) ? document.activeElement.dataset.role : null;
    const rows = [
      ["id", hit.id],
      ["source", fmtValue(a.source)],
      ["key", fmtValue(a.key)],
      ["uri", fmtValue(a.uri)],
      ["media type", fmtValue(a.media_type)],
      ["size", fmtBytes(a.size_bytes)],
      ["pixels", a.width && a.height ? `${a.width} × ${a.height}` : "—"],
      ["modified", a.modified_at ? fmtDate(a.modified_at) : "—"],
      ["synced", a.synced_at ? fmtDate(a.synced_at) : "—"],
      ["status", fmtValue(a.status)],
    ];
    if (hit.score !== null && hit.score !== undefined) rows.unshift(["score", hit.score.toFixed(4)]);
    // Opened from the Models view: ground truth beside prediction, and both sets' boxes over the image.
    const context = this.search.where?.context;
    const boxes = boxOverlay(a, context);
    const exports = (a.exports || []).map((x) => h("li", {}, flatten(x).map(([k, v]) => `${k}: ${v}`).join(" · ")));
    clear(this.dialog).append(
      h("header", { class: "dialog-head" },
        h("h2", { id: "detail-title" }, name),
        h("span", { class: "muted" }, this.hits ? "" : `${this.index + 1} of ${this.search.hits.length}${this.search.next !== null ? "+" : ""}`),
        h("button", { type: "button", class: "ghost close", dataset: { role: "close" }, "aria-label": "Close", onclick: () => this.dialog.close() }, "×")),
      h("div", { class: "detail-body" },
        h("figure", { class: boxes ? "detail-image boxed" : "detail-image" }, img, boxes),
        h("div", { class: "detail-meta" },
          context ? h("div", { class: "detail-verdict" }, verdictLine(a, context), boxLegend(context)) : null,
          h("div", { class: "actions" },
            action("like", "More like this", kind === "like", () => this.mark(a, "like")),
            action("unlike", "Less like this", kind === "unlike", () => this.mark(a, "unlike")),
            action("select", selected ? "Selected" : "Select", selected, () => {
              this.grid.toggle(hit.id);
              this.render();
            })),
          h("h3", {}, "Asset"), table(rows),
          h("h3", {}, "Metadata"), flatten(a.metadata).length ? table(flatten(a.metadata)) : h("p", { class: "muted" }, "No metadata."),
          h("h3", {}, "Exports"), exports.length ? h("ul", {}, exports) : h("p", { class: "muted" }, "Not exported yet."))),
      h("footer", { class: "dialog-foot" },
        h("button", { type: "button", dataset: { role: "prev" }, disabled: this.index <= 0, onclick: () => this.step(-1) }, "← Previous"),
        h("button", { type: "button", dataset: { role: "next" }, disabled: this.index >= this.list.length - 1, onclick: () => this.step(1) }, "Next →")),
    );
    if (focused) {
      const again = this.dialog.querySelector(`[data-role="${focused}"]`);
      (again && !again.disabled ? again : this.dialog.querySelector(".close")).focus();
    }
    this.dialog.setAttribute("aria-labelledby", "detail-title");
  }

  mark(asset, kind) {
    this.search.mark(asset, kind);
    this.grid.repaint(asset.id);
    this.render();
  }
}
