// Running jobs (syncs, exports, ...): progress bars in the header (GET /jobs) with a Cancel button
// (DELETE /jobs/{id}), and a "changed" event when one finishes.

import { deleteJSON, getJSON } from "./api.js";
import { clear, fmtCount, h } from "./dom.js";

const ACTIVE = new Set(["queued", "running"]);
const FAST_MS = 1500; // while a sync runs
const SLOW_MS = 10000; // otherwise: notices syncs started elsewhere (CLI, another tab)
const KEEP_DONE_MS = 8000; // a finished sync stays on show this long
const ENGINES = { ray: "Ray" }; // a sync's engine other than the in-process one, as the page names it

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

  async cancel(job, button) {
    button.disabled = true;
    button.textContent = "Cancelling…";
    try {
      const updated = await deleteJSON(`/jobs/${encodeURIComponent(job.id)}`);
      this.update([updated]);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Cancel";
      button.title = err.detail || String(err);
    }
    this.poll();
  }

  row(job) {
    const active = ACTIVE.has(job.state);
    const pct = Math.round((job.progress || 0) * 100);
    const what = describe(job);
    const cancelling = active && job.cancel_requested;
    const cancel = active
      ? h("button", {
          class: "link job-cancel",
          disabled: cancelling,
          "aria-label": `Cancel the ${what}`,
          onclick: (e) => this.cancel(job, e.currentTarget),
        }, cancelling ? "Cancelling…" : "Cancel")
      : null;
    return h("div", { class: `job ${job.state}`, dataset: { kind: job.kind || "sync", id: job.id } },
      h("span", { class: "job-text" }, summary(job, pct)),
      active ? h("progress", { max: 100, value: pct, "aria-label": `Progress of the ${what}` }) : null,
      cancel);
  }
}

function describe(job) {
  if (job.kind === "export") return "export";
  if (job.source) return `${job.kind || "sync"} of ${job.source}${onEngine(job)}`;
  return `${job.kind} job`;
}

function summary(job, pct) {
  const c = job.counts || {};
  const what = describe(job);
  const title = what.charAt(0).toUpperCase() + what.slice(1);
  if (job.state === "failed") return `${title} failed: ${job.detail || "see the job's errors"}`;
  if (job.state === "cancelled") return `${title} cancelled: ${counts(job)} before it stopped`;
  if (ACTIVE.has(job.state)) {
    if (job.state === "queued") return `${title}: waiting to start`;
    const label = job.kind === "sync" || !job.kind ? `Syncing ${job.source}${onEngine(job)}` : title;
    return `${label}: ${pct}% · ${counts(job)}`;
  }
  if (!job.kind || job.kind === "sync") {
    const unread = c.failed ? ` · ${fmtCount(c.failed)} could not be read` : "";
    return `Synced ${job.source}${onEngine(job)}: ${fmtCount(c.added || 0)} added, ${fmtCount(c.updated || 0)} updated${unread}`;
  }
  const failures = c.failed ? ` · ${fmtCount(c.failed)} failed` : "";
  return `${title} done: ${counts(job)}${failures}`;
}

function onEngine(job) {
  const name = ENGINES[job.engine];
  return name ? ` on ${name}` : "";
}

function counts(job) {
  const c = job.counts || {};
  if (job.kind === "export") return `${fmtCount(c.sent || 0)} of ${fmtCount(c.selected || 0)} sent`;
  if (!job.kind || job.kind === "sync") {
    return `${fmtCount(c.seen || 0)} seen, ${fmtCount((c.added || 0) + (c.updated || 0))} new or changed`;
  }
  const shown = Object.entries(c).filter(([, v]) => v);
  return shown.length ? shown.map(([k, v]) => `${fmtCount(v)} ${k}`).join(", ") : "nothing yet";
}
