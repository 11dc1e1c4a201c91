// The API client: the caller's own credential on every request, kept in this tab only.

const STORE = "videojob.credential";

/** {mode: "token"|"key", secret: string} or null. sessionStorage: gone with the tab, never
 *  sent anywhere but in the headers below. */
export function credential() {
  try {
    const c = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (c && (c.mode === "token" || c.mode === "key") && typeof c.secret === "string") return c;
  } catch { /* nothing usable stored */ }
  return null;
}

export function remember(mode, secret) {
  sessionStorage.setItem(STORE, JSON.stringify({ mode, secret }));
}

export function forget() {
  sessionStorage.removeItem(STORE);
}

/** The headers that carry the credential: a Kubernetes token as a bearer token, an API key in
 *  X-API-Key (the gateway takes either; docs/http-api.md, "Authentication"). */
export function authHeaders() {
  const c = credential();
  if (!c) return {};
  return c.mode === "key" ? { "X-API-Key": c.secret } : { Authorization: `Bearer ${c.secret}` };
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

const enc = encodeURIComponent;
export const paths = {
  namespaces: () => "/api/v1/namespaces",
  list: (ns) => `/api/v1/namespaces/${enc(ns)}/videojobs?limit=100`,
  create: (ns) => `/api/v1/namespaces/${enc(ns)}/videojobs`,
  uploads: (ns) => `/api/v1/namespaces/${enc(ns)}/uploads`,
  one: (ns, name) => `/api/v1/namespaces/${enc(ns)}/videojobs/${enc(name)}`,
};
paths.events = (ns, name) => `${paths.one(ns, name)}/events`;
paths.kubeEvents = (ns, name) => `${paths.one(ns, name)}/kube-events`;
paths.suspend = (ns, name) => `${paths.one(ns, name)}/suspend`;
paths.resume = (ns, name) => `${paths.one(ns, name)}/resume`;
paths.downloadLink = (ns, name) => `${paths.one(ns, name)}/download-link`;

/** A request to the gateway; the decoded JSON, or ApiError with the problem document. */
export async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // multipart; the browser writes the boundary
  }
  const resp = await fetch(path, { method, headers, body, cache: "no-store",
                                   credentials: "omit" });
  const type = resp.headers.get("content-type") || "";
  const doc = type.includes("json") ? await resp.json().catch(() => null) : null;
  if (!resp.ok) throw new ApiError(resp.status, doc);
  return doc;
}
