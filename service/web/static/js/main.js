// The page: wires the search form, filters, results grid, detail view, export, syncs and the map.

import { onAuthNeeded, setApiKey, showImage, thumbnailUrl } from "./api.js";
import { Detail } from "./detail.js";
import { $, basename, clear, debounce, fmtCount, h, plural } from "./dom.js";
import { Exporter } from "./export.js";
import { Filters } from "./filters.js";
import { Grid } from "./grid.js";
import { Jobs } from "./jobs.js";
import { hideError, note, showError } from "./notify.js";
import { ProjectorView } from "./projector.js";
import { Search } from "./search.js";
import { Spaces } from "./spaces.js";
import { CurationView } from "./curation.js";
import { LabelingTools } from "./labeling.js";
import { ModelsView } from "./models.js";
import { Sorting } from "./sorting.js";
import { BatchDialog } from "./batch.js";

const filters = new Filters($("#filter-fields"));
const search = new Search(filters);
const grid = new Grid($("#results"), search);
const detail = new Detail($("#detail"), search, grid);
const exporter = new Exporter($("#export-dialog"));
const jobs = new Jobs($("#jobs"));
const map = new ProjectorView(search);
const spaces = new Spaces(search, map);
const sorting = new Sorting(search, filters);
// The active-learning views get the page's parts and a way to switch view (they open results in the grid).
const page = {
  search, grid, filters, detail, exporter, map, sorting,
  showView: (tab) => showView(tab),
  browseWith: (conds) => browseWith(conds),
};
const curation = new CurationView($("#curation-view"), page);
const models = new ModelsView($("#models-view"), page);
const labeling = new LabelingTools(page);
const batch = new BatchDialog(page);
page.batch = batch; // the Curation view opens it too

// -- views ----------------------------------------------------------------------

const TABS = [
  ["#tab-results", "#results-view"],
  ["#tab-map", "#map-view"],
  ["#tab-curation", "#curation-view"],
  ["#tab-models", "#models-view"],
];
// Each view's address (location.hash); the search has none.
const HASHES = { "#tab-map": "#map", "#tab-curation": "#curation", "#tab-models": "#models" };

function showView(tabId, focus = false) {
  for (const [tab, view] of TABS) {
    const on = tab === tabId;
    $(tab).setAttribute("aria-selected", String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(view).hidden = !on;
  }
  if (focus) $(tabId).focus();
  if (tabId === "#tab-map") map.show();
  else map.hide();
  if (tabId === "#tab-curation") curation.show();
  if (tabId === "#tab-models") models.show();
  history.replaceState(null, "", HASHES[tabId] || "#");
}

for (const [tab] of TABS) {
  $(tab).addEventListener("click", () => showView(tab));
  // Arrow keys move between tabs (the ARIA tabs pattern).
  $(tab).addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const i = TABS.findIndex(([t]) => t === tab);
    showView(TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length][0], true);
  });
}

// -- search form -------------------------------------------------------------------

$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  search.text = $("#q").value;
  search.scope = null;
  hideError();
  search.run();
});

$("#reset-search").addEventListener("click", () => {
  clearQuery();
  search.run();
});

/** No text, example images, map selection or marks: the next run browses. */
function clearQuery() {
  $("#q").value = "";
  search.text = "";
  search.images = [];
  search.scope = null;
  search.where = null;
  search.clearMarks();
  renderExamples();
}

/**
 * Browse exactly the assets under `conds` ({field: condition} as filters.js holds them): the
 * Curation view's clusters and a selection's members open in the grid this way.
 */
function browseWith(conds) {
  clearQuery();
  filters.conds.clear();
  for (const [name, cond] of Object.entries(conds)) filters.conds.set(name, cond);
  filters.render();
  filters.loadFacets();
  showView("#tab-results");
  search.run();
}

function addImages(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/") || !f.type);
  if (!images.length) {
    showError(new Error("those files are not images"), "Example images");
    return;
  }
  search.images.push(...images);
  search.scope = null;
  renderExamples();
  search.run();
}

function renderExamples() {
  const list = clear($("#examples"));
  search.images.forEach((file, i) => {
    const url = URL.createObjectURL(file);
    const img = h("img", { src: url, alt: "", width: 56, height: 56 });
    img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    list.append(
      h("li", { class: "example" }, img,
        h("button", {
          type: "button",
          class: "remove",
          "aria-label": `Remove the example image ${file.name}`,
          onclick: () => {
            search.images.splice(i, 1);
            renderExamples();
            search.run();
          },
        }, "×")),
    );
  });
}

$("#files").addEventListener("change", (e) => {
  addImages(e.target.files);
  e.target.value = ""; // choosing the same file again still counts
});

const drop = $("#drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  addImages(e.dataTransfer.files);
});

// -- marks (more like / less like) -------------------------------------------------

function renderMarks() {
  const chip = (asset, kind) => {
    const img = h("img", { alt: "", width: 40, height: 40 });
    showImage(img, thumbnailUrl(asset.id, 64));
    const name = basename(asset.key) || asset.id.slice(0, 8);
    return h("li", {}, img,
      h("button", {
        type: "button",
        class: "remove",
        "aria-label": `Unmark ${name}`,
        onclick: () => {
          search.mark(asset, kind);
          grid.repaint(asset.id);
        },
      }, "×"));
  };
  clear($("#like-list")).append(...[...search.like.values()].map((a) => chip(a, "like")));
  clear($("#unlike-list")).append(...[...search.unlike.values()].map((a) => chip(a, "unlike")));
  $("#like-row").hidden = !search.like.size;
  $("#unlike-row").hidden = !search.unlike.size;
  $("#marks").hidden = !search.like.size && !search.unlike.size;
  $("#search-button").textContent = search.like.size || search.unlike.size ? "Search again" : "Search";
}

search.addEventListener("marks", renderMarks);
$("#marks-clear").addEventListener("click", () => {
  search.clearMarks();
  grid.repaint();
});
grid.addEventListener("mark", (e) => {
  search.mark(e.detail.asset, e.detail.kind);
  grid.repaint(e.detail.asset.id);
});

// -- results -----------------------------------------------------------------------

function summary() {
  const shown = search.hits.length;
  const more = search.next !== null ? "+" : "";
  const total = search.total === null ? "…" : fmtCount(search.total);
  let text;
  if (search.mode === "scope") text = `${plural(search.scope.ids.length, "point")} selected on the map`;
  else if (search.mode === "search") text = `Best matches among ${total} assets that pass the filters`;
  else text = `${total} assets match the filters`;
  if (search.mode === "browse" && search.order) text += ` · sorted by ${sorting.describe()}`;
  // An empty catalog says what to do, not just "nothing".
  $("#empty-catalog").hidden = !(search.mode === "browse" && search.total === 0 && !filters.active);
  if (search.loading && !shown) text += " · searching…";
  else if (!shown && !search.loading) text += " · nothing to show";
  else text += ` · showing ${fmtCount(shown)}${more}`;
  $("#summary").textContent = text;
  $("#more").hidden = search.next === null;
  $("#more").disabled = search.loading;
  const scope = search.scope;
  $("#scope-banner").hidden = !scope && !search.where;
  if (scope) $("#scope-text").textContent = `Showing the ${plural(scope.ids.length, "asset")} ${scope.label}.`;
  else if (search.where) $("#scope-text").textContent = `Showing ${search.where.label}.`;
}

search.addEventListener("reset", () => {
  grid.reset();
  summary();
});
search.addEventListener("results", (e) => {
  grid.append(e.detail.start, e.detail.hits);
  summary();
});
for (const type of ["count", "loading", "idle"]) search.addEventListener(type, summary);
search.addEventListener("error", (e) => showError(e.detail.err));

grid.addEventListener("open", (e) => detail.open(e.detail.index));
grid.addEventListener("selection", () => {
  $("#selection-count").textContent = grid.describeSelection();
});
$("#select-all").addEventListener("click", () => grid.selectAll());
$("#select-none").addEventListener("click", () => grid.selectNone());
$("#more").addEventListener("click", () => search.more());
$("#scope-clear").addEventListener("click", () => (search.where ? search.setWhere(null) : search.setScope(null)));
$("#export-open").addEventListener("click", () => exporter.open({ ids: [...grid.selection], label: "The selected assets", wide: wideSelection() }));
$("#batch-open").addEventListener("click", () => batch.open());

/** The export alternative to a hand-made selection: the whole search, or everything under the filters. */
function wideSelection() {
  // Browsing one selection's members (a batch opened from the Select next batch dialog): export it by name.
  const chosen = filters.conds.get("selections");
  if (search.mode === "browse" && chosen && chosen.type === "in" && chosen.values.length === 1 && filters.active === 1) {
    const total = search.total === null ? "" : ` (${fmtCount(search.total)})`;
    return { label: `The selection “${chosen.values[0]}”${total}`, selection: { selection: chosen.values[0] } };
  }
  if (search.mode === "browse") {
    const total = search.total === null ? "" : ` (${fmtCount(search.total)})`;
    const what = search.where ? `Every asset of ${search.where.label}` : "Every asset that passes the filters";
    return { label: `${what}${total}`, selection: { filter: search.filter() } };
  }
  // Uploaded images and map selections cannot be replayed by the export API: ids only.
  if (search.mode === "search" && !search.images.length) {
    return { label: "All results of the current search", selection: { search: search.body() } };
  }
  return null;
}

// Infinite scroll: the next page loads before the end comes into view.
const AHEAD_PX = 800;
new IntersectionObserver(
  (entries) => {
    if (entries.some((en) => en.isIntersecting) && !$("#results-view").hidden) search.more();
  },
  { rootMargin: `${AHEAD_PX}px` },
).observe($("#sentinel"));
// The observer only speaks when the end crosses that line; a page too short to push it back out
// (a tall window, a short page) would stop there, so check again whenever a page has arrived.
search.addEventListener("idle", () => {
  const near = $("#sentinel").getBoundingClientRect().top < window.innerHeight + AHEAD_PX;
  if (near && !$("#results-view").hidden && search.next !== null) search.more();
});

filters.addEventListener("change", debounce(() => search.run(), 250));

// -- the map -------------------------------------------------------------------------

map.addEventListener("show", (e) => {
  showView("#tab-results");
  search.setScope(e.detail.ids, "selected on the map");
});
map.addEventListener("like", (e) => {
  search.clearMarks();
  for (const id of e.detail.ids) search.mark({ id, key: "", metadata: {} }, "like");
  search.scope = null;
  showView("#tab-results");
  search.run();
});
map.addEventListener("export", (e) => exporter.open({ ids: e.detail.ids, label: "The points selected on the map" }));
map.addEventListener("open", (e) => detail.open(0, [e.detail.hit]));

// -- syncs, API key --------------------------------------------------------------------

jobs.addEventListener("changed", () => {
  note("A sync finished: fields, counts and the map are up to date.");
  filters.load().then(() => sorting.load());
  spaces.load().catch(() => {}); // counts per space; an error shows at the next search
  search.count();
  if (!$("#map-view").hidden) map.refresh();
});

const keyDialog = $("#key-dialog");
onAuthNeeded((reason) => {
  $("#key-open").hidden = false;
  $("#key-reason").textContent = reason;
  if (!keyDialog.open) keyDialog.showModal();
});
$("#key-open").addEventListener("click", () => keyDialog.showModal());
$("#key-cancel").addEventListener("click", () => keyDialog.close());
$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setApiKey($("#key-input").value.trim());
  keyDialog.close();
  start();
});

// -- start -------------------------------------------------------------------------------

async function start() {
  hideError();
  await filters.load();
  await sorting.load();
  await spaces.load().catch((err) => showError(err, "Vector spaces"));
  search.run();
  jobs.start();
  const view = Object.keys(HASHES).find((tab) => HASHES[tab] === location.hash);
  if (view) showView(view);
}

window.addEventListener("error", (e) => showError(e.error || e.message));
window.addEventListener("unhandledrejection", (e) => showError(e.reason));
start();

// The page's parts, for the browser tests and the console (importing this module again returns them).
export { batch, curation, filters, grid, labeling, map, models, search, sorting, spaces };
