// What the page asks the catalog: text, example images, more-like/less-like marks, filters, or a
// selection from the map; runs it page by page (offsets for searches, cursors for browsing).

import { getJSON, postForm, postJSON } from "./api.js";

export const PAGE_SIZE = 40;
const MAX_EXAMPLES = 64; // the API's limit on like/unlike ids and images per search
const SCOPE_FETCHES = 8; // assets of a map selection fetched at once

export class Search extends EventTarget {
  constructor(filters) {
    super();
    this.filters = filters;
    this.text = "";
    this.images = []; // File objects: example images
    this.like = new Map(); // asset id -> asset
    this.unlike = new Map();
    this.scope = null; // {ids: [...], label}: assets chosen on the map
    this.space = null; // a user vector space's name; null = the encoder's
    // {filter, label, like?, context?}: the assets one filter names (a confusion cell, the runs'
    // fixed assets), with a banner; `like` makes it a search ("find more like these"); `context`
    // tells the cards what to show (e.g. an evaluation's ground truth and prediction).
    this.where = null;
    this.order = null; // {field, dir}: browsing sorted by a numeric or datetime field (sorting.js)
    this.hits = [];
    this.next = null;
    this.total = null;
    this.loading = false;
    this.generation = 0;
    this.controller = null;
  }

  get mode() {
    if (this.scope) return "scope";
    return this.text.trim() || this.images.length || this.like.size || this.where?.like?.length ? "search" : "browse";
  }

  /** The filter, narrowed to `where` and, in a user space, to the assets that have a vector in it. */
  filter() {
    let own = this.filters.filter();
    if (this.where) own = own && Object.keys(own).length ? { and: [own, this.where.filter] } : this.where.filter;
    if (!this.space) return own;
    const held = { vectors: this.space };
    return own ? { and: [own, held] } : held;
  }

  /** The body of POST /search for the current query (also what an export of "all results" sends). */
  body(offset = 0) {
    const body = {
      text: this.text.trim() || null,
      like: [...new Set([...this.like.keys(), ...(this.where?.like || [])])].slice(0, MAX_EXAMPLES),
      unlike: [...this.unlike.keys()],
      filter: this.filter(),
      limit: PAGE_SIZE,
      offset,
    };
    if (this.space) body.space = this.space;
    return body;
  }

  mark(asset, kind) {
    const [mine, other] = kind === "like" ? [this.like, this.unlike] : [this.unlike, this.like];
    other.delete(asset.id);
    if (mine.has(asset.id)) mine.delete(asset.id);
    else if (mine.size < MAX_EXAMPLES) mine.set(asset.id, asset);
    this.emit("marks");
  }

  markOf(id) {
    if (this.like.has(id)) return "like";
    if (this.unlike.has(id)) return "unlike";
    return null;
  }

  clearMarks() {
    this.like.clear();
    this.unlike.clear();
    this.emit("marks");
  }

  setScope(ids, label) {
    this.scope = ids ? { ids, label } : null;
    return this.run();
  }

  /** Show the assets `where.filter` selects (null: back to the plain search); see the constructor. */
  setWhere(where) {
    this.where = where;
    this.scope = null;
    return this.run();
  }

  /** Start over: first page and the match count. */
  async run() {
    this.generation += 1;
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    this.hits = [];
    this.next = null;
    this.total = null;
    this.emit("reset");
    await Promise.all([this.page(true), this.count()]);
  }

  async more() {
    if (this.next === null || this.loading) return;
    await this.page(false);
  }

  async page(first) {
    const generation = this.generation;
    const signal = this.controller.signal;
    this.loading = true;
    this.emit("loading");
    try {
      const { hits, next } = await this.fetchPage(first ? null : this.next, signal);
      if (generation !== this.generation) return;
      const start = this.hits.length;
      this.hits.push(...hits);
      this.next = next;
      this.emit("results", { start, hits });
    } catch (err) {
      if (generation === this.generation && err.name !== "AbortError") this.emit("error", { err });
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.emit("idle");
      }
    }
  }

  async fetchPage(next, signal) {
    const mode = this.mode;
    if (mode === "scope") return this.scopePage(next ?? 0, signal);
    if (mode === "browse") {
      const params = { filter: this.filter(), limit: PAGE_SIZE, cursor: next };
      if (this.order) Object.assign(params, { order_by: this.order.field, order: this.order.dir });
      const res = await getJSON("/assets", params, { signal });
      return { hits: res.data.map((a) => ({ id: a.id, score: null, asset: a })), next: res.next_cursor };
    }
    const body = this.body(next ?? 0);
    let res;
    if (this.images.length) {
      const form = new FormData();
      for (const file of this.images) form.append("images", file, file.name);
      if (body.text) form.append("text", body.text);
      for (const id of body.like) form.append("like", id);
      for (const id of body.unlike) form.append("unlike", id);
      form.append("filter", JSON.stringify(body.filter));
      form.append("limit", String(body.limit));
      form.append("offset", String(body.offset));
      if (body.space) form.append("space", body.space);
      res = await postForm("/search/image", form, { signal });
    } else {
      res = await postJSON("/search", body, { signal });
    }
    return { hits: res.hits, next: res.next_offset };
  }

  /** One page of a map selection: each asset read by id, a few at a time. */
  async scopePage(offset, signal) {
    const ids = this.scope.ids.slice(offset, offset + PAGE_SIZE);
    const assets = new Array(ids.length);
    let cursor = 0;
    const worker = async () => {
      while (cursor < ids.length) {
        const i = cursor++;
        assets[i] = await getJSON(`/assets/${encodeURIComponent(ids[i])}`, {}, { signal });
      }
    };
    await Promise.all(Array.from({ length: SCOPE_FETCHES }, worker));
    const end = offset + ids.length;
    return {
      hits: assets.map((a) => ({ id: a.id, score: null, asset: a })),
      next: end < this.scope.ids.length ? end : null,
    };
  }

  async count() {
    const generation = this.generation;
    if (this.scope) {
      this.total = this.scope.ids.length;
      this.emit("count");
      return;
    }
    try {
      let filter = this.filter();
      // A sorted listing holds only the assets that have the field: count those.
      if (this.order && this.mode === "browse") {
        const held = { [this.order.field]: { exists: true } };
        filter = filter && Object.keys(filter).length ? { and: [filter, held] } : held;
      }
      const res = await getJSON("/assets/count", { filter }, { signal: this.controller.signal });
      if (generation !== this.generation) return;
      this.total = res.count;
      this.emit("count");
    } catch (err) {
      if (generation === this.generation && err.name !== "AbortError") this.emit("error", { err });
    }
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
