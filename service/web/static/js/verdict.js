// Ground truth beside prediction for one asset: the card's "GT · Pred" line and the detail view's
// boxes of both sets. `context` = {gt, pred, task, evaluation} (set names and an evaluation id),
// as the Models view opens assets in the grid (search.where.context).

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function labelOf(asset, set) {
  return set ? (asset.labels || {})[set] || null : null;
}

/** Right, wrong or unknown under the evaluation (its outcome fields), else by comparing the labels. */
function outcome(asset, context, gt, pred) {
  const ev = context.evaluation ? (asset.evals || {})[context.evaluation] : null;
  if (context.task === "classification") {
    if (ev && typeof ev.correct === "boolean") return ev.correct ? "right" : "wrong";
    if (gt && pred) return gt.label === pred.label ? "right" : "wrong";
    return "unknown";
  }
  if (ev && Number.isInteger(ev.fp)) return ev.fp + ev.fn ? "wrong" : "right";
  return "unknown";
}

function boxesText(value) {
  if (!value) return "—";
  const classes = value.classes || [];
  const n = value.count ?? (value.boxes || []).length;
  return `${n} box${n === 1 ? "" : "es"}${classes.length ? ` (${classes.join(", ")})` : ""}`;
}

/** "GT: circle · Pred: square", red when wrong; null without a context. */
export function verdictLine(asset, context) {
  if (!context) return null;
  const gt = labelOf(asset, context.gt);
  const pred = labelOf(asset, context.pred);
  const state = outcome(asset, context, gt, pred);
  const show = context.task === "classification" ? (v) => (v ? v.label ?? "(none)" : "—") : boxesText;
  const parts = [];
  if (context.gt) parts.push(h("span", { class: "gt", title: `ground truth (${context.gt})` }, `GT: ${gt ? show(gt) : "unlabeled"}`));
  if (context.pred) {
    const score = pred && typeof pred.score === "number" && context.task === "classification" ? ` (${pred.score.toFixed(2)})` : "";
    parts.push(h("span", { class: "pred", title: `prediction (${context.pred})` }, `Pred: ${show(pred)}${score}`));
  }
  const ev = context.evaluation ? (asset.evals || {})[context.evaluation] : null;
  if (context.task === "detection" && ev && Number.isInteger(ev.tp)) {
    parts.push(h("span", { class: "counts" }, `tp ${ev.tp} · fp ${ev.fp} · fn ${ev.fn}`));
  }
  return h("div", { class: `verdict ${state}`, dataset: { verdict: state } }, parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
}

function rect(box, kind, fs, imageHeight) {
  const [x, y, w, hgt] = box.bbox;
  const g = document.createElementNS(SVG, "g");
  g.setAttribute("class", `box ${kind}`);
  const r = document.createElementNS(SVG, "rect");
  for (const [k, v] of Object.entries({ x, y, width: w, height: hgt })) r.setAttribute(k, String(v));
  const title = document.createElementNS(SVG, "title");
  const score = typeof box.score === "number" ? ` ${box.score.toFixed(2)}` : "";
  title.textContent = `${kind === "gt" ? "ground truth" : "prediction"}: ${box.label}${score}`;
  const text = document.createElementNS(SVG, "text");
  text.setAttribute("x", String(x + 1));
  // Ground truth captions above the box, predictions below; inside it where the image ends.
  const above = y - fs * 0.25;
  const below = y + hgt + fs;
  text.setAttribute("y", String(kind === "gt" ? (above - fs > 0 ? above : y + fs) : (below < imageHeight ? below : y + hgt - fs * 0.25)));
  text.setAttribute("font-size", String(fs));
  text.textContent = `${box.label}${score}`;
  g.append(title, r, text);
  return g;
}

/**
 * An SVG over the detail image with both sets' boxes (ground truth green, predictions dashed red),
 * in the original image's pixels: its viewBox with "meet" scales as the image's object-fit: contain.
 * Null without a detection context or the image size.
 */
export function boxOverlay(asset, context) {
  if (!context || context.task !== "detection" || !asset.width || !asset.height) return null;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "boxes");
  svg.setAttribute("viewBox", `0 0 ${asset.width} ${asset.height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.setAttribute("role", "img");
  const gt = labelOf(asset, context.gt)?.boxes || [];
  const pred = labelOf(asset, context.pred)?.boxes || [];
  svg.setAttribute("aria-label", `${gt.length} ground-truth and ${pred.length} predicted boxes`);
  const fs = Math.max(asset.width, asset.height) / 24; // captions about 1/24 of the image, at any size
  for (const box of gt) svg.append(rect(box, "gt", fs, asset.height));
  for (const box of pred) svg.append(rect(box, "pred", fs, asset.height));
  return svg;
}

/** The legend under the boxes. */
export function boxLegend(context) {
  if (!context || context.task !== "detection") return null;
  return h("p", { class: "box-legend" },
    h("span", { class: "swatch gt" }), ` ground truth (${context.gt}) `,
    h("span", { class: "swatch pred" }), ` predictions (${context.pred})`);
}
