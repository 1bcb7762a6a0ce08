// Running syncs: progress bars in the header (GET /jobs), and a "changed" event when one finishes.

import { getJSON } from "./api.js";
import { clear, fmtCount, h } from "./dom.js";

const ACTIVE = new Set(["queued", "running"]);
const FAST_MS = 1500; // while a sync runs
const SLOW_MS = 10000; // otherwise: notices syncs started elsewhere (CLI, another tab)
const KEEP_DONE_MS = 8000; // a finished sync stays on show this long

export class Jobs extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.active = new Map(); // id -> job
    this.done = new Map(); // id -> {job, until}
    this.timer = 0;
    this.failedOnce = false;
  }

  start() {
    if (this.started) return this.poll();
    this.started = true;
    this.poll();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.poll();
    });
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      const { data } = await getJSON("/jobs", { limit: 20 });
      this.update(data);
      this.failedOnce = false;
    } catch {
      // The page's own requests report errors; a failed poll just tries again later.
      this.failedOnce = true;
    }
    const delay = this.active.size ? FAST_MS : SLOW_MS;
    if (!document.hidden) this.timer = setTimeout(() => this.poll(), delay);
  }

  update(jobs) {
    const now = Date.now();
    let finished = 0;
    const seen = new Set();
    for (const job of jobs) {
      seen.add(job.id);
      if (ACTIVE.has(job.state)) this.active.set(job.id, job);
      else if (this.active.has(job.id)) {
        this.active.delete(job.id);
        this.done.set(job.id, { job, until: now + KEEP_DONE_MS });
        finished += 1;
      }
    }
    for (const id of this.active.keys()) if (!seen.has(id)) this.active.delete(id);
    for (const [id, entry] of this.done) if (entry.until < now) this.done.delete(id);
    this.render();
    if (finished) this.dispatchEvent(new Event("changed"));
  }

  render() {
    clear(this.root);
    for (const job of this.active.values()) this.root.append(this.row(job));
    for (const { job } of this.done.values()) this.root.append(this.row(job));
  }

  row(job) {
    const c = job.counts || {};
    const pct = Math.round((job.progress || 0) * 100);
    const active = ACTIVE.has(job.state);
    const text = active
      ? `Syncing ${job.source}: ${pct}% · ${fmtCount(c.seen || 0)} seen, ${fmtCount((c.added || 0) + (c.updated || 0))} new or changed`
      : job.state === "failed"
        ? `Sync of ${job.source} failed: ${job.detail || "see the job's errors"}`
        : `Synced ${job.source}: ${fmtCount(c.added || 0)} added, ${fmtCount(c.updated || 0)} updated`;
    const failures = c.failed ? ` · ${fmtCount(c.failed)} could not be read` : "";
    return h("div", { class: `job ${job.state}` },
      h("span", { class: "job-text" }, text + failures),
      active ? h("progress", { max: 100, value: pct, "aria-label": `Sync of ${job.source}` }) : null);
  }
}
