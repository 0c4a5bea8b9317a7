// The console's only way to the server: same-origin fetch with the session's CSRF token
// on every write (the server refuses cookie-carried writes without it).

let session = { auth: false, role: null, csrf: null };
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    const message = body && typeof body === "object" && body.message ? body.message : `HTTP ${status}: ${String(body).slice(0, 200)}`;
    super(message);
    this.status = status;
    this.body = body;
    this.field = body && typeof body === "object" ? body.field : undefined;
  }
}

export function currentSession() {
  return session;
}

export function onUnauthorized(callback) {
  listeners.add(callback);
}

export async function loadSession() {
  const r = await fetch("/v1/session", { credentials: "same-origin", headers: { accept: "application/json" } });
  if (!r.ok) throw new ApiError(r.status, await r.text());
  session = await r.json();
  return session;
}

export async function login(token) {
  session = await request("POST", "/v1/session", { token });
  return loadSession();
}

export async function request(method, path, body, { contentType, raw = false } = {}) {
  const headers = { accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = session.csrf || "";
  let payload = body;
  if (body !== undefined && !raw) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
  } else if (contentType) {
    headers["content-type"] = contentType;
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) { /* plain text answer (logs) */ }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && path !== "/v1/session") listeners.forEach((cb) => cb(error));  // a failed sign-in stays on its form
    throw error;
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const del = (path) => request("DELETE", path);

export async function text(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, await response.text());
  return { text: await response.text(), next: response.headers.get("X-Next-Offset") };
}
