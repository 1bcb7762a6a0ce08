// The map: the catalog's embeddings in 2-D (GET /projector, binary points and colours), coloured by a
// field, with hover thumbnails, zoom/pan, and box or lasso selection that becomes results or an export.

import { decodeFrame, getBinary, getJSON, showImage, thumbnailUrl } from "./api.js";
import { categoryColor, css, pointColors, RAMP } from "./colors.js";
import { $, basename, clear, fill, fmtCount, fmtDate, fmtValue, h, plural } from "./dom.js";
import { showError } from "./notify.js";
import { Scatter } from "./scatter.js";
import { fieldLabel } from "./sorting.js";

const POLL_MS = 1000;
const CLICK_SLOP = 4; // px a press may move and still be a click
const MAX_RINGS = 400; // search results marked on the map
const MAX_LIKE = 64; // the API's limit on example ids
// Signal fields that name assets or groups: as colours they say nothing.
const NO_COLOUR = new Set(["signals.duplicate_of", "signals.duplicate_group", "signals.duplicate_keep"]);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export class ProjectorView extends EventTarget {
  constructor(search) {
    super();
    this.search = search;
    this.space = null; // a user vector space to lay out; null = the encoder's
    this.scatter = new Scatter($("#map-canvas"), $("#map-overlay"));
    this.scatter.overlayPainter = (ctx) => this.paintOverlay(ctx);
    this.status = null;
    this.version = null; // the points' version (GET /projector `version`)
    this.colorsVersion = null; // the colour columns' (`colors_version`): a signal renews only these
    this.ids = null;
    this.idIndex = null;
    this.mask = null;
    this.selectedCount = 0;
    this.colorField = null;
    this.colorHeader = null;
    this.colorValues = null;
    this.hover = -1;
    this.drag = null;
    this.rings = [];
    this.pollTimer = 0;
    this.visible = false;
    this.assetCache = new Map();
    this.wire();
  }

  wire() {
    const wrap = $("#map-wrap");
    wrap.addEventListener("pointerdown", (e) => this.down(e));
    wrap.addEventListener("pointermove", (e) => this.move(e));
    wrap.addEventListener("pointerup", (e) => this.up(e));
    wrap.addEventListener("pointerleave", () => this.setHover(-1));
    wrap.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    $("#map-canvas").addEventListener("keydown", (e) => this.key(e));
    $("#map-color").addEventListener("change", (e) => this.loadColors(e.target.value));
    $("#map-method").addEventListener("change", () => this.refresh(true));
    $("#map-fit").addEventListener("click", () => this.scatter.fit());
    $("#map-show-results").addEventListener("change", () => this.scatter.draw());
    $("#map-show").addEventListener("click", () => this.emit("show", { ids: this.selectedIds() }));
    $("#map-like").addEventListener("click", () => this.emit("like", { ids: spread(this.selectedIds(), MAX_LIKE) }));
    $("#map-export").addEventListener("click", () => this.emit("export", { ids: this.selectedIds() }));
    $("#map-clear").addEventListener("click", () => this.select([], "replace"));
    new ResizeObserver(() => this.visible && this.scatter.resize()).observe(wrap);
    for (const type of ["results", "reset"]) this.search.addEventListener(type, () => this.updateRings());
  }

  get tool() {
    return document.querySelector("input[name=map-tool]:checked").value;
  }

  get method() {
    return $("#map-method").value || "umap";
  }

  /** The query of every projector call: the method, and the vector space when it is a user space. */
  params(extra = {}) {
    const params = { method: this.method, ...extra };
    if (this.space) params.space = this.space;
    return params;
  }

  async show() {
    this.visible = true;
    this.scatter.resize();
    await this.refresh();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.pollTimer);
  }

  /** Ask where the layout stands (which also starts it); load it when a new one is available. */
  async refresh(methodChanged = false) {
    clearTimeout(this.pollTimer);
    let st;
    try {
      st = await getJSON("/projector", this.params());
    } catch (err) {
      this.setStatus("The map is unavailable.");
      showError(err, "The map could not be loaded");
      return;
    }
    this.status = st;
    this.fillMethods(st.methods);
    if (st.available && (st.version !== this.version || methodChanged)) await this.loadPoints(st);
    else if (st.available && st.colors_version !== this.colorsVersion) await this.reloadColors(st);
    this.describeStatus(st);
    if (this.visible && (st.state === "computing" || st.state === "queued" || st.state === "missing")) {
      this.pollTimer = setTimeout(() => this.refresh(), POLL_MS);
    }
  }

  fillMethods(methods) {
    const select = $("#map-method");
    if (select.options.length === methods.length) return;
    const current = select.value || "umap";
    clear(select).append(...methods.map((m) => h("option", { value: m, selected: m === current }, m.toUpperCase())));
  }

  describeStatus(st) {
    const empty = $("#map-empty");
    empty.hidden = true;
    if (st.state === "failed") {
      this.setStatus(`The layout failed: ${st.detail}`);
      return;
    }
    if (!st.available) {
      const pct = Math.round((st.progress || 0) * 100);
      empty.textContent = st.state === "queued" ? "Waiting for another layout to finish…" : `Laying out the catalog: ${pct}%`;
      empty.hidden = false;
      this.setStatus(empty.textContent);
      return;
    }
    if (st.count === 0) {
      empty.textContent = "No assets yet: add a source and sync it, then come back.";
      empty.hidden = false;
    }
    let text = `${plural(st.count, "point")} · ${st.method.toUpperCase()} · laid out in ${st.seconds.toFixed(1)} s`;
    if (st.state === "computing") text += ` · updating: ${Math.round(st.progress * 100)}%`;
    else if (st.stale && st.syncing) text += " · a sync is running; the map updates after it";
    this.setStatus(text);
  }

  setStatus(text) {
    $("#map-status").textContent = text;
  }

  async loadPoints(st) {
    const keep = this.mask ? this.selectedIds() : [];
    try {
      const { header, arrays } = decodeFrame(await getBinary("/projector/points", this.params({ method: st.method })));
      this.version = header.version;
      this.ids = arrays.ids;
      this.idIndex = null;
      this.scatter.setData(arrays.xy, header.view);
    } catch (err) {
      showError(err, "The map's points could not be loaded");
      return;
    }
    await this.reloadColors(st);
    this.select(keep.length ? this.indicesOf(keep) : [], "replace");
    this.updateRings();
  }

  /** New colour columns on the same points (a signal finished): the list and the current colours. */
  async reloadColors(st) {
    this.colorsVersion = st.colors_version;
    this.fillColors(st.colors);
    await this.loadColors($("#map-color").value);
  }

  fillColors(colors) {
    const select = $("#map-color");
    const current = this.colorField || (colors.find((c) => c.field === "meta.label") || colors.find((c) => c.kind === "category" && c.field.startsWith("meta.")) || colors[0] || {}).field;
    const option = (c) => h("option", { value: c.field, selected: c.field === current }, fieldLabel(c.field));
    // The signals (uniqueness, outliers, clusters...) apart: a ramp for scores, categories for clusters.
    const signals = colors.filter((c) => c.field.startsWith("signals.") && !NO_COLOUR.has(c.field));
    fill(select,
      h("option", { value: "" }, "(one colour)"),
      colors.filter((c) => !c.field.startsWith("signals.")).map(option),
      signals.length ? h("optgroup", { label: "Signals" }, signals.map(option)) : null);
  }

  async loadColors(field) {
    this.colorField = field || null;
    $("#map-color").value = field || "";
    if (!field) {
      this.colorHeader = null;
      this.scatter.setColors(new Uint32Array(this.scatter.n).fill(0xffe6a04e));
      this.renderLegend();
      return;
    }
    try {
      const buffer = await getBinary("/projector/colors", this.params({ field }));
      const { header, arrays } = decodeFrame(buffer);
      if (header.version !== this.version) return this.refresh(true);
      this.colorHeader = header;
      this.colorValues = arrays.values;
      this.scatter.setColors(pointColors(header, arrays.values));
      this.renderLegend();
    } catch (err) {
      showError(err, `Colouring the map by ${field} failed`);
    }
  }

  renderLegend() {
    const legend = clear($("#map-legend"));
    const head = this.colorHeader;
    if (!head) return;
    if (head.kind === "category") {
      head.values.forEach((value, i) => {
        legend.append(h("li", {},
          h("button", {
            type: "button",
            class: "legend-item",
            title: "Select these points (Shift adds to the selection)",
            onclick: (e) => this.selectCategory(i + 1, e.shiftKey ? "add" : "replace"),
          }, h("span", { class: "swatch", style: `background:${css(categoryColor(i + 1, head.values))}` }),
          `${head.field === "signals.cluster" && value === -1 ? "noise (−1)" : fmtValue(value)} `, h("span", { class: "count" }, fmtCount(head.counts[i])))));
      });
      return;
    }
    const label = (v) => (head.kind === "time" ? fmtDate(v) : Number(v.toPrecision(4)).toString());
    const stops = [0, 64, 128, 192, 255].map((i) => css(RAMP[i])).join(", ");
    legend.append(h("li", { class: "ramp" }, h("span", { class: "legend-title" }, fieldLabel(head.field)), h("span", {}, label(head.min)),
      h("span", { class: "ramp-bar", style: `background: linear-gradient(to right, ${stops})` }),
      h("span", {}, label(head.max))));
  }

  selectCategory(code, mode) {
    const out = [];
    for (let i = 0; i < this.colorValues.length; i++) if (this.colorValues[i] === code) out.push(i);
    this.select(out, mode);
  }

  /** Change the selection: `replace` it, `add` to it or `remove` from it. */
  select(indices, mode) {
    const n = this.scatter.n;
    if (mode === "replace" || !this.mask) this.mask = new Uint8Array(n);
    const on = mode === "remove" ? 0 : 1;
    for (const i of indices) this.mask[i] = on;
    let count = 0;
    for (let i = 0; i < n; i++) count += this.mask[i];
    this.selectedCount = count;
    this.scatter.setSelection(count ? this.mask : null);
    $("#map-selection").hidden = count === 0;
    $("#map-selection-count").textContent = `${fmtCount(count)} of ${plural(n, "point")} selected`;
    $("#map-like").disabled = count === 0;
  }

  idAt(i) {
    const b = this.ids;
    const o = 16 * i;
    let s = "";
    for (let k = 0; k < 16; k++) {
      s += HEX[b[o + k]];
      if (k === 3 || k === 5 || k === 7 || k === 9) s += "-";
    }
    return s;
  }

  selectedIds() {
    const out = [];
    if (!this.mask) return out;
    for (let i = 0; i < this.mask.length; i++) if (this.mask[i]) out.push(this.idAt(i));
    return out;
  }

  indicesOf(ids) {
    if (!this.idIndex) {
      this.idIndex = new Map();
      for (let i = 0; i < this.scatter.n; i++) this.idIndex.set(this.idAt(i), i);
    }
    return ids.map((id) => this.idIndex.get(id)).filter((i) => i !== undefined);
  }

  updateRings() {
    if (!this.ids) return;
    // Browsing lists assets in id order: ringing those would mark nothing in particular.
    const hits = this.search.mode === "browse" ? [] : this.search.hits;
    this.rings = this.indicesOf(hits.slice(0, MAX_RINGS).map((hit) => hit.id));
    this.scatter.draw();
  }

  // -- pointer and keyboard -------------------------------------------------

  local(e) {
    const rect = $("#map-wrap").getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  down(e) {
    if (e.button !== 0 || !this.scatter.n || !e.target.closest("canvas")) return; // not the floating bar
    $("#map-wrap").setPointerCapture(e.pointerId);
    const [x, y] = this.local(e);
    // Shift-drag selects a box even with the pan tool: the quick way to select.
    const tool = this.tool === "pan" && e.shiftKey ? "box" : this.tool;
    this.drag = { tool, x0: x, y0: y, x, y, path: [[x, y]], moved: false };
    this.setHover(-1);
  }

  move(e) {
    const [x, y] = this.local(e);
    const d = this.drag;
    if (!d) {
      this.setHover(e.target.closest("canvas") ? this.scatter.nearest(x, y) : -1, x, y);
      return;
    }
    d.moved = d.moved || Math.hypot(x - d.x0, y - d.y0) > CLICK_SLOP;
    if (d.tool === "pan") this.scatter.panBy(x - d.x, y - d.y);
    else if (d.tool === "lasso") {
      const [px, py] = d.path[d.path.length - 1];
      if (Math.hypot(x - px, y - py) > 3) d.path.push([x, y]);
      this.scatter.paintOverlay();
    } else this.scatter.paintOverlay();
    d.x = x;
    d.y = y;
  }

  up(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const [x, y] = this.local(e);
    if (!d.moved) {
      const i = this.scatter.nearest(x, y);
      if (i >= 0) this.openPoint(i);
      this.scatter.paintOverlay();
      return;
    }
    const mode = e.shiftKey ? "add" : e.altKey ? "remove" : "replace";
    if (d.tool === "box") this.select(this.scatter.inRect(d.x0, d.y0, x, y), mode);
    else if (d.tool === "lasso") this.select(this.scatter.inPolygon(d.path), mode);
    this.scatter.paintOverlay();
  }

  wheel(e) {
    e.preventDefault();
    const [x, y] = this.local(e);
    const delta = e.deltaMode === 1 ? e.deltaY * 30 : e.deltaY; // Firefox scrolls by lines
    this.scatter.zoomAt(x, y, Math.exp(-delta * 0.0015));
  }

  key(e) {
    const s = this.scatter;
    const step = 60;
    const actions = {
      ArrowLeft: () => s.panBy(step, 0),
      ArrowRight: () => s.panBy(-step, 0),
      ArrowUp: () => s.panBy(0, step),
      ArrowDown: () => s.panBy(0, -step),
      "+": () => s.zoomAt(s.cssW / 2, s.cssH / 2, 1.25),
      "=": () => s.zoomAt(s.cssW / 2, s.cssH / 2, 1.25),
      "-": () => s.zoomAt(s.cssW / 2, s.cssH / 2, 0.8),
      0: () => s.fit(),
      Escape: () => this.select([], "replace"),
      p: () => this.setTool("pan"),
      b: () => this.setTool("box"),
      l: () => this.setTool("lasso"),
    };
    const action = actions[e.key];
    if (!action) return;
    e.preventDefault();
    action();
  }

  setTool(tool) {
    document.querySelector(`input[name=map-tool][value=${tool}]`).checked = true;
  }

  setHover(i, x = 0, y = 0) {
    const tip = $("#map-tip");
    if (i !== this.hover) {
      this.hover = i;
      this.scatter.paintOverlay();
    }
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    const id = this.idAt(i);
    if (tip.dataset.id !== id) {
      tip.dataset.id = id;
      const img = h("img", { alt: "", width: 128, height: 128 });
      showImage(img, thumbnailUrl(id, 128));
      clear(tip).append(img, h("div", { class: "tip-name" }, this.colorText(i)));
      this.nameFor(id).then((name) => {
        if (tip.dataset.id === id && name) tip.querySelector(".tip-name").textContent = `${name} · ${this.colorText(i)}`;
      });
    }
    tip.hidden = false;
    const wrap = $("#map-wrap").getBoundingClientRect();
    tip.style.left = `${Math.min(x + 14, wrap.width - 160)}px`;
    tip.style.top = `${Math.min(y + 14, wrap.height - 180)}px`;
  }

  colorText(i) {
    const head = this.colorHeader;
    if (!head) return "";
    const v = this.colorValues[i];
    const field = head.field.replace(/^meta\./, "");
    if (head.kind === "category") return `${field}: ${v ? fmtValue(head.values[v - 1]) : "—"}`;
    if (Number.isNaN(v)) return `${field}: —`;
    const value = v + head.offset;
    return `${field}: ${head.kind === "time" ? fmtDate(value) : Number(value.toPrecision(6))}`;
  }

  async asset(id) {
    if (!this.assetCache.has(id)) {
      if (this.assetCache.size > 500) this.assetCache.clear();
      this.assetCache.set(id, getJSON(`/assets/${encodeURIComponent(id)}`));
    }
    return this.assetCache.get(id);
  }

  async nameFor(id) {
    try {
      return basename((await this.asset(id)).key);
    } catch {
      return "";
    }
  }

  async openPoint(i) {
    try {
      const asset = await this.asset(this.idAt(i));
      this.emit("open", { hit: { id: asset.id, score: null, asset } });
    } catch (err) {
      showError(err, "That asset could not be opened");
    }
  }

  paintOverlay(ctx) {
    const s = this.scatter;
    if ($("#map-show-results").checked && this.rings.length) {
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const i of this.rings) {
        const [x, y] = s.toScreen(s.xy[2 * i], s.xy[2 * i + 1]);
        ctx.moveTo(x + 5, y);
        ctx.arc(x, y, 5, 0, 2 * Math.PI);
      }
      ctx.stroke();
    }
    if (this.hover >= 0) {
      const [x, y] = s.toScreen(s.xy[2 * this.hover], s.xy[2 * this.hover + 1]);
      ctx.strokeStyle = "#ffd84a";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
    }
    const d = this.drag;
    if (d && d.moved && d.tool !== "pan") {
      ctx.strokeStyle = "#ffd84a";
      ctx.fillStyle = "rgba(255,216,74,0.12)";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      if (d.tool === "box") ctx.rect(d.x0, d.y0, d.x - d.x0, d.y - d.y0);
      else d.path.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** At most `k` of `items`, evenly spread (a cluster's examples, not just its first few). */
function spread(items, k) {
  if (items.length <= k) return items;
  return Array.from({ length: k }, (_, i) => items[Math.floor((i * items.length) / k)]);
}
