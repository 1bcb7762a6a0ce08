// The results grid: thumbnails with score and key metadata, selection (click, shift-click range,
// select all) and the more-like / less-like marks.

import { showImage, thumbnailUrl } from "./api.js";
import { basename, clear, fmtValue, h, plural } from "./dom.js";
import { fieldLabel, fieldValue, formatSorted } from "./sorting.js";
import { verdictLine } from "./verdict.js";

const CARD_FIELDS = 3; // metadata values shown under a thumbnail
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T/; // too long for a card; the detail view shows them

/** A few short metadata values worth a glance (long text and nested objects stay in the detail view). */
function keyMetadata(asset) {
  const out = [];
  for (const [name, value] of Object.entries(asset.metadata || {})) {
    if (value === null || typeof value === "object") continue;
    const text = String(value);
    if (text.length > 24 || TIMESTAMP.test(text)) continue;
    out.push([name, text]);
    if (out.length === CARD_FIELDS) break;
  }
  return out;
}

/**
 * The score as the API gives it: a cosine, or below -1 when the asset is nearer a "less like"
 * example than to any positive (-2 - its cosine to that negative); the title says which.
 */
function scoreBadge(score) {
  if (score === null || score === undefined) return null;
  if (score >= -1) return h("span", { class: "score", title: "cosine similarity to the query" }, score.toFixed(3));
  const cos = (-2 - score).toFixed(3);
  return h("span", { class: "score below", title: `nearer a “less like” example (cosine ${cos}) than to the query` }, score.toFixed(3));
}

/** When browsing sorted by a field (sorting.js): that field's value on the card. */
function sortBadge(search, asset) {
  if (!search.order || search.mode !== "browse") return null;
  const { field, type } = search.order;
  const value = fieldValue(asset, field);
  return h("span", { class: "score sorted", title: `${fieldLabel(field)}: ${value ?? "no value"}` }, formatSorted(value, type));
}

export class Grid extends EventTarget {
  constructor(root, search) {
    super();
    this.root = root;
    this.search = search;
    this.selection = new Set();
    this.anchor = null; // index of the last card clicked, for shift-click ranges
    this.cards = new Map(); // id -> li
  }

  reset() {
    clear(this.root);
    this.cards.clear();
    this.anchor = null;
  }

  append(start, hits) {
    const fragment = document.createDocumentFragment();
    hits.forEach((hit, i) => fragment.append(this.card(hit, start + i)));
    this.root.append(fragment);
  }

  card(hit, index) {
    const { asset } = hit;
    const name = basename(asset.key) || hit.id;
    const img = h("img", { alt: "", loading: "lazy", width: 256, height: 256 });
    showImage(img, thumbnailUrl(hit.id));
    const box = h("input", {
      type: "checkbox",
      class: "pick",
      checked: this.selection.has(hit.id),
      "aria-label": `Select ${name}`,
      onclick: (e) => this.pick(index, e.shiftKey, e.target.checked),
    });
    const mark = (kind, label, glyph) =>
      h("button", {
        type: "button",
        class: `mark ${kind}`,
        "aria-pressed": String(this.search.markOf(hit.id) === kind),
        "aria-label": `${label}: ${name}`,
        title: label,
        onclick: () => this.emit("mark", { asset, kind }),
      }, glyph);
    const li = h(
      "li",
      { class: "card", dataset: { id: hit.id, index: String(index) } },
      h("button", { type: "button", class: "thumb", "aria-label": `Open ${name}`, onclick: () => this.emit("open", { index }) }, img),
      h("label", { class: "pick-wrap" }, box),
      h(
        "div",
        { class: "caption" },
        h("div", { class: "line" },
          scoreBadge(hit.score) || sortBadge(this.search, asset),
          h("span", { class: "name", title: asset.key }, name)),
        verdictLine(asset, this.search.where?.context),
        h("div", { class: "kv" }, keyMetadata(asset).map(([k, v]) => h("span", { title: `${k}: ${v}` }, `${k}: ${fmtValue(v)}`))),
      ),
      h("div", { class: "marks" }, mark("like", "More like this", "+"), mark("unlike", "Less like this", "−")),
    );
    this.cards.set(hit.id, li);
    this.paint(li, hit.id);
    return li;
  }

  paint(li, id) {
    const kind = this.search.markOf(id);
    li.classList.toggle("selected", this.selection.has(id));
    li.classList.toggle("liked", kind === "like");
    li.classList.toggle("unliked", kind === "unlike");
    li.querySelector(".pick").checked = this.selection.has(id);
    li.querySelector(".mark.like").setAttribute("aria-pressed", String(kind === "like"));
    li.querySelector(".mark.unlike").setAttribute("aria-pressed", String(kind === "unlike"));
  }

  repaint(id = null) {
    if (id !== null) {
      const li = this.cards.get(id);
      if (li) this.paint(li, id);
      return;
    }
    for (const [cardId, li] of this.cards) this.paint(li, cardId);
  }

  /** A checkbox click: toggle one, or with shift set the whole range from the last click. */
  pick(index, range, on) {
    const hits = this.search.hits;
    if (range && this.anchor !== null) {
      const [a, b] = this.anchor < index ? [this.anchor, index] : [index, this.anchor];
      for (let i = a; i <= b; i++) {
        if (on) this.selection.add(hits[i].id);
        else this.selection.delete(hits[i].id);
      }
    } else if (on) this.selection.add(hits[index].id);
    else this.selection.delete(hits[index].id);
    this.anchor = index;
    this.repaint();
    this.emit("selection");
  }

  toggle(id) {
    if (this.selection.has(id)) this.selection.delete(id);
    else this.selection.add(id);
    this.repaint(id);
    this.emit("selection");
  }

  selectAll() {
    for (const hit of this.search.hits) this.selection.add(hit.id);
    this.repaint();
    this.emit("selection");
  }

  selectNone() {
    this.selection.clear();
    this.anchor = null;
    this.repaint();
    this.emit("selection");
  }

  describeSelection() {
    return plural(this.selection.size, "asset") + " selected";
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
