// A 2-D scatter of up to hundreds of thousands of points on a canvas: points are written straight
// into an ImageData buffer (no per-point canvas calls, no WebGL needed, same in Chromium and Firefox);
// hover, selection outlines and the box/lasso path go on an overlay canvas so they never redraw points.

const [BG_R, BG_G, BG_B] = [20, 22, 28];
const BACKGROUND = packRGB(BG_R, BG_G, BG_B);
const MIN_SCALE = 1e-3;

export function packRGB(r, g, b) {
  // ImageData is RGBA in memory; a Uint32 view on a little-endian machine reads it as ABGR.
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export function unpack(c) {
  return [c & 255, (c >>> 8) & 255, (c >>> 16) & 255];
}

/** `c` faded most of the way into the background: unselected points while a selection exists. */
export function dim(c) {
  // Called once per point when colours change: plain arithmetic, no arrays.
  return packRGB(((c & 255) + 3 * BG_R) >> 2, (((c >>> 8) & 255) + 3 * BG_G) >> 2, (((c >>> 16) & 255) + 3 * BG_B) >> 2);
}

/** Points in a uniform grid of cells, so hover finds its nearest point without scanning them all. */
class CellIndex {
  constructor(xy, n) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    this.g = Math.max(8, Math.min(512, Math.round(Math.sqrt(n / 4))));
    this.x0 = x0;
    this.y0 = y0;
    this.w = Math.max(x1 - x0, 1e-9) / this.g;
    this.h = Math.max(y1 - y0, 1e-9) / this.g;
    const cells = new Int32Array(n);
    const start = new Int32Array(this.g * this.g + 1);
    for (let i = 0; i < n; i++) {
      cells[i] = this.cell(xy[2 * i], xy[2 * i + 1]);
      start[cells[i] + 1] += 1;
    }
    for (let c = 0; c < this.g * this.g; c++) start[c + 1] += start[c];
    const fill = start.slice(0, -1);
    this.items = new Int32Array(n);
    for (let i = 0; i < n; i++) this.items[fill[cells[i]]++] = i;
    this.start = start;
  }

  col(x) {
    return Math.min(this.g - 1, Math.max(0, Math.floor((x - this.x0) / this.w)));
  }

  row(y) {
    return Math.min(this.g - 1, Math.max(0, Math.floor((y - this.y0) / this.h)));
  }

  cell(x, y) {
    return this.row(y) * this.g + this.col(x);
  }

  /** Nearest point to (x, y) within `r` (data units), or -1. */
  nearest(xy, x, y, r) {
    let best = -1;
    let bestD = r * r;
    for (let row = this.row(y - r); row <= this.row(y + r); row++) {
      for (let col = this.col(x - r); col <= this.col(x + r); col++) {
        const c = row * this.g + col;
        for (let k = this.start[c]; k < this.start[c + 1]; k++) {
          const i = this.items[k];
          const dx = xy[2 * i] - x, dy = xy[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d <= bestD) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }
}

export class Scatter {
  constructor(canvas, overlay) {
    this.canvas = canvas;
    this.overlay = overlay;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.octx = overlay.getContext("2d");
    this.n = 0;
    this.xy = new Float32Array(0);
    this.colors = new Uint32Array(0);
    this.dimmed = new Uint32Array(0);
    this.selected = null; // Uint8Array mask, or null when nothing is selected
    this.cx = 0;
    this.cy = 0;
    this.scale = 1; // CSS pixels per data unit
    this.dpr = 1;
    this.pending = 0;
    this.overlayPainter = null; // (ctx) => void, set by the projector view
    this.lastDrawMs = 0;
  }

  setData(xy, view) {
    this.xy = xy;
    this.n = xy.length / 2;
    this.cells = new CellIndex(xy, this.n);
    this.selected = null;
    if (this.colors.length !== this.n) this.setColors(new Uint32Array(this.n).fill(packRGB(120, 170, 230)));
    this.view = view;
    this.fit();
  }

  setColors(colors) {
    this.colors = colors;
    this.dimmed = colors.map(dim);
    this.draw();
  }

  setSelection(mask) {
    this.selected = mask;
    this.draw();
  }

  resize() {
    const rect = this.canvas.parentElement.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.cssW = Math.max(1, Math.floor(rect.width));
    this.cssH = Math.max(1, Math.floor(rect.height));
    for (const c of [this.canvas, this.overlay]) {
      c.width = Math.floor(this.cssW * this.dpr);
      c.height = Math.floor(this.cssH * this.dpr);
      c.style.width = `${this.cssW}px`;
      c.style.height = `${this.cssH}px`;
    }
    this.image = this.ctx.createImageData(this.canvas.width, this.canvas.height);
    this.pixels = new Uint32Array(this.image.data.buffer);
    this.draw();
  }

  /** Frame the view box [x0, y0, x1, y1] (most points, see the server's `view`). */
  fit() {
    const [x0, y0, x1, y1] = this.view || [-1, -1, 1, 1];
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
    this.scale = Math.max(MIN_SCALE, Math.min((this.cssW || 1) / (x1 - x0 || 1), (this.cssH || 1) / (y1 - y0 || 1)) * 0.95);
    this.draw();
  }

  toScreen(x, y) {
    return [(x - this.cx) * this.scale + this.cssW / 2, (this.cy - y) * this.scale + this.cssH / 2];
  }

  toData(sx, sy) {
    return [(sx - this.cssW / 2) / this.scale + this.cx, this.cy - (sy - this.cssH / 2) / this.scale];
  }

  zoomAt(sx, sy, factor) {
    const [x, y] = this.toData(sx, sy);
    this.scale = Math.max(MIN_SCALE, this.scale * factor);
    // Keep the data point under the cursor where it was.
    this.cx = x - (sx - this.cssW / 2) / this.scale;
    this.cy = y + (sy - this.cssH / 2) / this.scale;
    this.draw();
  }

  panBy(dx, dy) {
    this.cx -= dx / this.scale;
    this.cy += dy / this.scale;
    this.draw();
  }

  nearest(sx, sy, radiusPx = 8) {
    if (!this.n) return -1;
    const [x, y] = this.toData(sx, sy);
    return this.cells.nearest(this.xy, x, y, radiusPx / this.scale);
  }

  /** Indices of the points inside a screen rectangle. */
  inRect(ax, ay, bx, by) {
    const [x0, y1] = this.toData(Math.min(ax, bx), Math.min(ay, by));
    const [x1, y0] = this.toData(Math.max(ax, bx), Math.max(ay, by));
    const out = [];
    for (let i = 0; i < this.n; i++) {
      const x = this.xy[2 * i], y = this.xy[2 * i + 1];
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1) out.push(i);
    }
    return out;
  }

  /**
   * Indices of the points inside a screen polygon [[sx, sy], ...]: the polygon is filled into a
   * mask the size of the canvas and each point looks up its pixel, so the cost does not grow with
   * the number of vertices (a lasso has hundreds). Only points on screen can be inside.
   */
  inPolygon(screen) {
    if (screen.length < 3) return [];
    const w = this.cssW, h = this.cssH;
    const mask = document.createElement("canvas");
    mask.width = w;
    mask.height = h;
    const ctx = mask.getContext("2d", { willReadFrequently: true });
    ctx.beginPath();
    screen.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.fill("evenodd");
    const alpha = ctx.getImageData(0, 0, w, h).data;
    const s = this.scale, ox = w / 2 - this.cx * s, oy = h / 2 + this.cy * s;
    const out = [];
    for (let i = 0; i < this.n; i++) {
      const x = this.xy[2 * i] * s + ox, y = oy - this.xy[2 * i + 1] * s;
      if (x < 0 || y < 0 || x >= w || y >= h) continue;
      if (alpha[((y | 0) * w + (x | 0)) * 4 + 3] > 127) out.push(i);
    }
    return out;
  }

  draw() {
    if (!this.pending) this.pending = requestAnimationFrame(() => this.render());
  }

  /** Draw every point now; returns the milliseconds it took. */
  render() {
    this.pending = 0;
    if (!this.pixels) return 0;
    const t0 = performance.now();
    const W = this.canvas.width, H = this.canvas.height;
    this.pixels.fill(BACKGROUND);
    const s = this.scale * this.dpr;
    const ox = W / 2 - this.cx * s, oy = H / 2 + this.cy * s;
    const size = this.pointSize();
    if (this.selected) {
      this.plot(this.dimmed, s, ox, oy, size, 0);
      this.plot(this.colors, s, ox, oy, size + 1, 1);
    } else {
      this.plot(this.colors, s, ox, oy, size, -1);
    }
    this.ctx.putImageData(this.image, 0, 0);
    this.paintOverlay();
    this.lastDrawMs = performance.now() - t0;
    return this.lastDrawMs;
  }

  /** Points as size×size squares; `only` = 0/1 draws just the unselected/selected, -1 all. */
  plot(colors, s, ox, oy, size, only) {
    const W = this.canvas.width, H = this.canvas.height;
    const px = this.pixels, xy = this.xy, sel = this.selected;
    const half = size >> 1;
    for (let i = 0; i < this.n; i++) {
      if (only >= 0 && sel[i] !== only) continue;
      const fx = xy[2 * i] * s + ox - half, fy = oy - xy[2 * i + 1] * s - half;
      if (fx < 0 || fy < 0 || fx >= W - size || fy >= H - size) continue;
      const c = colors[i];
      let o = (fy | 0) * W + (fx | 0);
      for (let dy = 0; dy < size; dy++, o += W) for (let dx = 0; dx < size; dx++) px[o + dx] = c;
    }
  }

  pointSize() {
    // Denser maps get smaller points; zooming in grows them a little.
    const base = this.n > 50000 ? 2 : this.n > 5000 ? 3 : 5;
    return Math.max(1, Math.round(base * this.dpr * Math.min(2.5, Math.max(1, Math.log2(this.scaleGain() + 1)))));
  }

  scaleGain() {
    if (!this.view) return 1;
    const [x0, y0, x1, y1] = this.view;
    const fitScale = Math.min(this.cssW / (x1 - x0 || 1), this.cssH / (y1 - y0 || 1));
    return this.scale / (fitScale || 1);
  }

  paintOverlay() {
    const ctx = this.octx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    if (this.overlayPainter) this.overlayPainter(ctx);
  }
}
