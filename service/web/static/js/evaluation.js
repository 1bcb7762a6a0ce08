// One evaluation in the Models view: its overall metrics, the per-class table, the confusion matrix
// (each cell opens its assets in the grid), the biggest confusions and the slices, each with
// "Find more like these".

import { fmtCount, h, plural } from "./dom.js";
import { fmtMetric, sortableTable } from "./tables.js";

const OVERALL = {
  classification: [["accuracy", "Accuracy"], ["macro_f1", "Macro F1"], ["weighted_f1", "Weighted F1"]],
  detection: [["map", "mAP@[.5:.95]"], ["map_50", "mAP@.5"], ["precision", "Precision"], ["recall", "Recall"],
    ["f1", "F1"], ["tp", "TP"], ["fp", "FP"], ["fn", "FN"]],
};
const CLASS_COLUMNS = {
  classification: [["precision", "Precision"], ["recall", "Recall"], ["f1", "F1"], ["support", "Support"]],
  detection: [["ap", "AP"], ["precision", "Precision"], ["recall", "Recall"], ["f1", "F1"], ["tp", "TP"],
    ["fp", "FP"], ["fn", "FN"], ["support", "Boxes"]],
};
const SLICE_COLUMNS = {
  classification: [["accuracy", "Accuracy"], ["macro_f1", "Macro F1"]],
  detection: [["map", "mAP"], ["map_50", "mAP@.5"], ["precision", "Precision"], ["recall", "Recall"], ["fp", "FP"], ["fn", "FN"]],
};
const TOP_CONFUSIONS = 8;

/** The short name of a run: "m1 vs shape". */
export function runName(ev) {
  return `${ev.predictions} vs ${ev.ground_truth}`;
}

/** The cards' context for assets opened from this evaluation (verdict.js). */
export function contextOf(ev, { evaluation = true } = {}) {
  return { gt: ev.ground_truth, pred: ev.predictions, task: ev.task, evaluation: evaluation ? ev.id : null };
}

function and(...parts) {
  const kept = parts.filter(Boolean);
  return kept.length === 1 ? kept[0] : { and: kept };
}

/**
 * The panel of `ev`; `actions` = {open(where), similar(ev, body, label)}: open a filter in the grid,
 * and find unlabeled look-alikes of a cell or a slice.
 */
export function evaluationPanel(ev, actions) {
  const task = ev.task;
  const metrics = OVERALL[task].map(([key, label]) =>
    h("div", { class: "metric", dataset: { metric: key } }, h("span", { class: "metric-value" }, fmtMetric(ev.metrics[key], key)), h("span", { class: "metric-label" }, label)));
  const facts = [
    `${task}`,
    `${fmtCount(ev.counts.matched)} of ${plural(ev.counts.assets, "ground-truth asset")} scored`,
    task === "detection" ? `tp/fp/fn at IoU ${ev.iou}` : null,
    ev.filter ? `under ${JSON.stringify(ev.filter)}` : null,
  ].filter(Boolean).join(" · ");
  const wrong = ev.outcomes?.wrong;
  return h("div", { class: "evaluation", dataset: { id: ev.id } },
    h("div", { class: "section-head" },
      h("h3", { id: "evaluation-title" }, `Evaluation ${ev.id.slice(0, 8)}: ${runName(ev)}`),
      wrong ? h("button", {
        type: "button", class: "open-wrong",
        onclick: () => actions.open({ filter: and(wrong, ev.filter), label: `every asset ${runName(ev)} got wrong`, context: contextOf(ev) }),
      }, "Show every error") : null),
    h("p", { class: "muted" }, facts),
    h("div", { class: "metrics" }, metrics),
    h("h4", {}, "Per class"),
    h("div", { class: "table-wrap" }, perClass(ev)),
    confusionSection(ev, actions),
    slicesSection(ev, actions));
}

function perClass(ev) {
  const rows = Object.entries(ev.per_class || {}).map(([label, m]) => ({ label, ...m }));
  if (!rows.length) return h("p", { class: "muted" }, "No class to report.");
  const columns = [{ key: "label", label: "Class" }, ...CLASS_COLUMNS[ev.task].map(([key, label]) => ({ key, label, num: true }))];
  return sortableTable({ columns, rows, sort: { key: "label", dir: "asc" }, className: "per-class" });
}

/** A cell's background: the share of its row (recall-like), so rare classes read as clearly as common ones. */
function heat(value, rowTotal) {
  return rowTotal ? Math.min(1, value / rowTotal) : 0;
}

function confusionSection(ev, actions) {
  const confusion = ev.confusion;
  if (!confusion) {
    return h("div", {}, h("h4", {}, "Confusion matrix"), h("p", { class: "muted" }, "This evaluation has no confusion matrix."));
  }
  const { labels, matrix, filters } = confusion;
  const none = labels.includes("(none)");
  const describeCell = (i, j) => {
    const gt = labels[i] === "(none)" ? "no ground-truth box" : `ground truth “${labels[i]}”`;
    const pr = labels[j] === "(none)" ? (ev.task === "detection" ? "no matching prediction" : "no predicted label") : `predicted “${labels[j]}”`;
    return `${gt}, ${pr}`;
  };
  const openCell = (i, j) => actions.open({
    filter: filters[i][j],
    label: `the ${plural(matrix[i][j], "asset")} with ${describeCell(i, j)} (${runName(ev)})`,
    context: contextOf(ev),
    cell: [labels[i], labels[j]],
  });
  const head = h("tr", {}, h("th", { scope: "col", class: "corner" }, "GT ↓ · Pred →"), labels.map((l) => h("th", { scope: "col", class: "pred-head", title: `predicted ${l}` }, l)));
  const body = labels.map((gt, i) => {
    const total = matrix[i].reduce((a, b) => a + b, 0);
    return h("tr", {}, h("th", { scope: "row", title: `ground truth ${gt}` }, gt), labels.map((pr, j) => {
      const n = matrix[i][j];
      const kind = i === j ? "diag" : "off";
      if (!n) return h("td", { class: `cell ${kind} zero` }, "0");
      const filter = filters[i][j];
      const share = heat(n, total);
      const style = `--heat: ${share.toFixed(3)}`;
      const dark = share > 0.55 ? " dark" : "";
      if (!filter) {
        return h("td", { class: `cell ${kind}${dark}`, style, title: `${n}: ${describeCell(i, j)}. These cannot be listed by one filter (see the API docs).` }, fmtCount(n));
      }
      return h("td", { class: `cell ${kind}${dark}`, style },
        h("button", {
          type: "button", class: "cell-open", dataset: { gt, pred: pr, count: String(n) },
          title: `Show the ${plural(n, "asset")} with ${describeCell(i, j)}`,
          "aria-label": `${n}: ${describeCell(i, j)}; show them`,
          onclick: () => openCell(i, j),
        }, fmtCount(n)));
    }));
  });
  const note = ev.task === "detection"
    ? "Boxes matched at the IoU regardless of class: a row is the ground-truth class, a column the class of the prediction it matched; “(none)” holds unmatched boxes and predictions. A cell counts boxes; it opens the images that hold them."
    : none ? "“(none)”: a prediction without a label." : "Rows: ground truth; columns: prediction. A cell opens its assets in the results.";
  return h("div", {},
    h("h4", {}, "Confusion matrix"),
    h("p", { class: "muted small" }, note),
    h("div", { class: "table-wrap" }, h("table", { class: "confusion", "aria-label": "Confusion matrix" }, h("thead", {}, head), h("tbody", {}, body))),
    topConfusions(ev, actions, openCell, describeCell));
}

function topConfusions(ev, actions, openCell, describeCell) {
  const { labels, matrix, filters } = ev.confusion;
  const cells = [];
  labels.forEach((_, i) => labels.forEach((__, j) => {
    if (i !== j && matrix[i][j]) cells.push([i, j]);
  }));
  cells.sort((a, b) => matrix[b[0]][b[1]] - matrix[a[0]][a[1]]);
  if (!cells.length) return h("p", { class: "muted" }, "No confusion: every scored prediction is right.");
  // "Find more like these" takes a cell's images as examples: a cell with no filter has none to give.
  const similarOk = (i, j) => Boolean(filters[i][j]);
  return h("div", {},
    h("h4", {}, "Biggest confusions"),
    h("ul", { class: "confusions" }, cells.slice(0, TOP_CONFUSIONS).map(([i, j]) =>
      h("li", { dataset: { gt: labels[i], pred: labels[j] } },
        h("span", { class: "confusion-what" }, `${labels[i]} → ${labels[j]}`),
        h("span", { class: "count" }, plural(matrix[i][j], ev.task === "detection" ? "box" : "asset", ev.task === "detection" ? "boxes" : "assets")),
        filters[i][j] ? h("button", { type: "button", class: "link", onclick: () => openCell(i, j) }, "Show") : null,
        similarOk(i, j) ? h("button", {
          type: "button", class: "similar",
          onclick: () => actions.similar(ev, { cell: [labels[i], labels[j]] }, describeCell(i, j)),
        }, "Find more like these") : null))));
}

function slicesSection(ev, actions) {
  const slices = ev.slices || [];
  if (!slices.length) {
    return h("div", {}, h("h4", {}, "Per slice"), h("p", { class: "muted" }, "Not sliced: choose a field to slice by when you run an evaluation."));
  }
  const wrong = ev.outcomes?.wrong;
  const rows = slices.map((s) => ({ field: s.field, value: s.value, count: s.count, ...s.metrics }));
  const columns = [
    { key: "field", label: "Field" },
    { key: "value", label: "Value", cell: (r) => String(r.value) },
    { key: "count", label: "Assets", num: true },
    ...SLICE_COLUMNS[ev.task].map(([key, label]) => ({ key, label, num: true })),
    { key: "actions", label: "", sortable: false, cell: (r) => h("td", { class: "row-actions" },
      wrong ? h("button", {
        type: "button", class: "link",
        onclick: () => actions.open({
          filter: and({ [r.field]: r.value }, wrong, ev.filter),
          label: `the errors of ${runName(ev)} where ${r.field} = ${r.value}`,
          context: contextOf(ev),
        }),
      }, "Show errors") : null,
      " ",
      h("button", {
        type: "button", class: "similar",
        onclick: () => actions.similar(ev, { slice: { field: r.field, value: r.value } }, `the errors where ${r.field} = ${r.value}`),
      }, "Find more like these")) },
  ];
  const first = SLICE_COLUMNS[ev.task][0][0];
  return h("div", {},
    h("h4", {}, "Per slice"),
    h("div", { class: "table-wrap" }, sortableTable({ columns, rows, sort: { key: first, dir: "asc" }, className: "slices" })));
}
