// A labeling function's precision/coverage curve as inline SVG, built with DOM calls (the page's
// CSP allows no inline styles: the strokes and fills are classes in styles.css).

const SVG = "http://www.w3.org/2000/svg";
const W = 520;
const H = 230;
const PAD = { left: 44, right: 14, top: 12, bottom: 36 };

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** Runs of consecutive points with a value (a precision is null where nothing is labelled). */
function runs(points) {
  const out = [];
  let current = [];
  for (const p of points) {
    if (p === null) {
      if (current.length) out.push(current);
      current = [];
    } else current.push(p);
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * An <svg> of precision and coverage against threshold, with the chosen threshold marked.
 * `curve` is GET /labeling-functions/{name}/curve's `curve`: [{threshold, precision, coverage}].
 */
export function curveChart(curve, chosen) {
  const lo = curve[0].threshold;
  const hi = curve[curve.length - 1].threshold;
  const span = hi - lo || 1;
  const x = (t) => PAD.left + ((t - lo) / span) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - v) * (H - PAD.top - PAD.bottom);
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "curve",
    role: "img",
    "aria-labelledby": "curve-title",
  });
  svg.append(el("title", { id: "curve-title" }, "Held-out precision and coverage against the threshold"));
  const axes = el("g", { class: "curve-axis" });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    axes.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: v ? "curve-grid" : "" }));
    axes.append(el("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  for (const t of [lo, (lo + hi) / 2, hi]) {
    axes.append(el("text", { x: x(t), y: H - PAD.bottom + 16, "text-anchor": "middle" }, t.toFixed(2)));
  }
  axes.append(el("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 4, "text-anchor": "middle" }, "threshold"));
  svg.append(axes);
  const line = (key, cls) => {
    const pts = curve.map((p) => (p[key] === null || p[key] === undefined ? null : [x(p.threshold), y(p[key])]));
    for (const run of runs(pts)) {
      if (run.length === 1) svg.append(el("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, class: `${cls} dot` }));
      else svg.append(el("polyline", { points: run.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "), class: cls }));
    }
  };
  line("coverage", "curve-coverage");
  line("precision", "curve-precision");
  if (chosen !== null && chosen !== undefined && chosen >= lo - 1e-9 && chosen <= hi + 1e-9) {
    const at = x(chosen);
    svg.append(el("line", { x1: at, x2: at, y1: PAD.top, y2: H - PAD.bottom, class: "curve-chosen" }));
    const right = at > W - 120;
    svg.append(el("text", { x: at + (right ? -4 : 4), y: PAD.top + 10, "text-anchor": right ? "end" : "start", class: "curve-chosen-label" }, `chosen ${chosen.toFixed(3)}`));
  }
  return svg;
}
