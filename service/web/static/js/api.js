// Loupe's REST API (/api/v1) for the page: JSON calls, binary frames, images, and errors in plain words.

const BASE = "/api/v1";
const KEY_STORE = "loupe.apiKey";

/** An error the API answered with ({"error", "detail"}) or a failure to reach it at all. */
export class ApiError extends Error {
  constructor(status, kind, detail) {
    super(detail);
    this.status = status;
    this.kind = kind;
    this.detail = detail;
  }
}

const listeners = new Set();

/** Call `fn` when the server asks for an API key (401); the page then shows its key form. */
export function onAuthNeeded(fn) {
  listeners.add(fn);
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function failure(response) {
  let kind = `HTTP ${response.status}`;
  let detail = response.statusText || "the server gave no reason";
  try {
    const body = await response.json();
    kind = body.error || kind;
    detail = body.detail || detail;
  } catch {
    // not JSON: a proxy or a crash page; keep the status line
  }
  if (response.status === 401 || response.status === 403) listeners.forEach((fn) => fn(detail));
  return new ApiError(response.status, kind, detail);
}

async function send(path, options = {}) {
  let response;
  try {
    response = await fetch(BASE + path, { ...options, headers: headers(options.headers) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "Unreachable", "cannot reach the Loupe server; is `loupe serve` still running?");
  }
  if (!response.ok && response.status !== 304) throw await failure(response);
  return response;
}

/** GET a JSON resource; `params` become the query string (objects are sent as JSON). */
export async function getJSON(path, params = {}, options = {}) {
  const response = await send(path + query(params), options);
  return response.json();
}

export async function postJSON(path, body, options = {}) {
  const init = { ...options, method: "POST", body: JSON.stringify(body) };
  init.headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  const response = await send(path, init);
  return response.status === 204 ? null : response.json();
}

/** DELETE a resource; the answer's JSON body, if any. */
export async function deleteJSON(path, options = {}) {
  const response = await send(path, { ...options, method: "DELETE" });
  return response.status === 204 ? null : response.json();
}

export async function postForm(path, form, options = {}) {
  const response = await send(path, { ...options, method: "POST", body: form });
  return response.json();
}

export async function getBinary(path, params = {}, options = {}) {
  const response = await send(path + query(params), options);
  return response.arrayBuffer();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    q.set(name, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

export function thumbnailUrl(id, size = 256) {
  return `${BASE}/assets/${encodeURIComponent(id)}/thumbnail?size=${size}`;
}

export function contentUrl(id) {
  return `${BASE}/assets/${encodeURIComponent(id)}/content`;
}

/** Show an API image in `img`: a plain src, or fetched with the key when one is needed. */
export async function showImage(img, url) {
  if (!apiKey()) {
    img.src = url;
    return;
  }
  try {
    const response = await fetch(url, { headers: headers() });
    if (!response.ok) throw new Error(String(response.status));
    const blobUrl = URL.createObjectURL(await response.blob());
    img.addEventListener("load", () => URL.revokeObjectURL(blobUrl), { once: true });
    img.src = blobUrl;
  } catch {
    img.alt = "image unavailable";
  }
}

const TYPED = { float32: Float32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array };

/** A projector frame (see service/api/routes/projector.py): its JSON header and typed arrays. */
export function decodeFrame(buffer) {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "LPJ1") throw new ApiError(0, "BadFrame", "the server sent data this page cannot read");
  const size = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, size)));
  const arrays = {};
  for (const a of header.arrays) arrays[a.name] = new TYPED[a.dtype](buffer, 8 + size + a.offset, a.length);
  return { header, arrays };
}
