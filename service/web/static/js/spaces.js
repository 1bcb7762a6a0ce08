// The vector-space selectors: which space the search panel searches and the map lays out.
// Text and example images exist only in the encoder's space; in a user space the page searches
// by marked examples (more like / less like) and lists the assets that have a vector there.

import { getJSON } from "./api.js";
import { $, clear, fmtCount, h } from "./dom.js";

export class Spaces {
  constructor(search, map) {
    this.search = search;
    this.map = map;
    this.spaces = [];
    $("#space").addEventListener("change", (e) => this.chooseSearch(e.target.value));
    $("#map-space").addEventListener("change", (e) => this.chooseMap(e.target.value));
  }

  async load() {
    const res = await getJSON("/vector-spaces");
    this.spaces = res.data;
    const users = this.spaces.filter((s) => !s.encoder);
    $("#space-row").hidden = users.length === 0;
    $("#map-space-label").hidden = users.length === 0;
    for (const select of [$("#space"), $("#map-space")]) {
      const current = select.value;
      clear(select).append(
        ...this.spaces.map((s) =>
          h("option", { value: s.encoder ? "" : s.name, selected: (s.encoder ? "" : s.name) === current }, this.label(s)),
        ),
      );
    }
  }

  label(space) {
    if (space.encoder) return `${space.model} (encoder)`;
    const made = space.model ? ` · ${space.model}` : "";
    return `${space.name} · ${space.dim}-d ${space.distance}${made} · ${fmtCount(space.count)}`;
  }

  chooseSearch(name) {
    this.search.space = name || null;
    const user = Boolean(name);
    // Text and images are encoded by the encoder: they mean nothing in another space.
    $("#q").disabled = user;
    $("#files").disabled = user;
    $("#drop").classList.toggle("disabled", user);
    $("#space-hint").hidden = !user;
    if (user) {
      $("#q").value = "";
      this.search.text = "";
      this.search.images = [];
      $("#examples").replaceChildren();
    }
    this.search.scope = null;
    this.search.run();
  }

  chooseMap(name) {
    this.map.space = name || null;
    this.map.version = null;
    this.map.refresh(true);
  }
}
