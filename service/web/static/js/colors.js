// Colours for the map: a categorical palette and a perceptual ramp for numbers and times.

import { packRGB } from "./scatter.js";

// Distinct on a dark background; category 1 is the most frequent value.
const CATEGORICAL = [
  [78, 161, 255], [255, 146, 56], [80, 200, 120], [240, 82, 90], [178, 132, 240],
  [245, 210, 70], [90, 210, 220], [240, 120, 200], [160, 200, 80], [200, 160, 120],
  [120, 130, 255], [255, 190, 160], [60, 170, 150], [220, 220, 220], [170, 90, 60],
  [140, 230, 190], [255, 100, 140], [110, 150, 190], [230, 170, 40], [190, 120, 180],
];
const NONE = [70, 74, 84]; // no value
const OTHER = [130, 134, 144]; // the rarer values, lumped

// Viridis at nine stops, interpolated to 256.
const RAMP_STOPS = [
  [68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
  [40, 174, 128], [94, 201, 98], [173, 220, 48], [253, 231, 37],
];

export const RAMP = (() => {
  const out = [];
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (RAMP_STOPS.length - 1);
    const k = Math.min(Math.floor(t), RAMP_STOPS.length - 2);
    const f = t - k;
    const [a, b] = [RAMP_STOPS[k], RAMP_STOPS[k + 1]];
    out.push(a.map((v, j) => Math.round(v + (b[j] - v) * f)));
  }
  return out;
})();

export function categoryColor(code, values) {
  if (code === 0) return NONE;
  if (values[code - 1] === "(other)") return OTHER;
  return CATEGORICAL[(code - 1) % CATEGORICAL.length];
}

export function css([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}

/** One packed colour per point from a colour frame (see GET /projector/colors). */
export function pointColors(header, values) {
  const n = values.length;
  const out = new Uint32Array(n);
  if (header.kind === "category") {
    const lut = new Uint32Array(256);
    for (let code = 0; code < 256; code++) lut[code] = packRGB(...categoryColor(code, header.values));
    for (let i = 0; i < n; i++) out[i] = lut[values[i]];
    return out;
  }
  const lo = header.min - header.offset;
  const span = header.max - header.min || 1;
  const lut = RAMP.map((c) => packRGB(...c));
  const none = packRGB(...NONE);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    out[i] = Number.isNaN(v) ? none : lut[Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)))];
  }
  return out;
}
