// Messages to the user: API errors in plain words, and short status notes.

import { ApiError } from "./api.js";
import { $, h } from "./dom.js";

const PREFIX = {
  0: "",
  401: "An API key is needed: ",
  403: "Not allowed: ",
  404: "Not found: ",
  409: "Not possible right now: ",
  413: "Too large: ",
  415: "Unsupported file: ",
  422: "Please check the input: ",
  503: "The service is unavailable: ",
};

/** The sentence shown for an error: the API's `detail`, with a plain-words lead-in. */
export function describe(err) {
  if (err instanceof ApiError) {
    const lead = PREFIX[err.status] ?? (err.status >= 500 ? "The server failed: " : "");
    return lead + err.detail;
  }
  return `Something went wrong in the page: ${err && err.message ? err.message : err}`;
}

/** Show an error in the alert bar (role=alert, so screen readers announce it). */
export function showError(err, context = "") {
  if (err && err.name === "AbortError") return;
  const bar = $("#alert");
  const text = (context ? `${context}: ` : "") + describe(err);
  bar.replaceChildren(
    h("p", {}, text),
    h("button", { type: "button", class: "ghost", "aria-label": "Dismiss the message", onclick: hideError }, "×"),
  );
  bar.hidden = false;
}

export function hideError() {
  const bar = $("#alert");
  bar.hidden = true;
  bar.replaceChildren();
}

/** A short, polite status note (e.g. "Exported 12 assets"). */
export function note(text) {
  const el = $("#status-note");
  el.textContent = text;
}
