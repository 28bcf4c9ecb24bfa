// The console's JSON API: cookies carry the session; every POST/PUT/DELETE echoes the console_csrf
// cookie in X-CSRF-Token (the server checks it against the session).

export const BASE = "/console/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && typeof body === "object" && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.code) || `http_${status}`;
    this.details = (body && body.details) || null;
  }
}

let unauthenticated = () => {};

/** Called whenever the server says the session is gone (expired, logged out elsewhere). */
export function onUnauthenticated(handler) {
  unauthenticated = handler;
}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "console_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let resp;
  try {
    resp = await fetch(BASE + path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, { code: "network_error", message: "网络错误，请检查连接后重试" });
  }
  if (resp.status === 204) return null;
  const isJson = (resp.headers.get("Content-Type") || "").includes("application/json");
  const data = isJson ? await resp.json() : await resp.blob();
  if (!resp.ok) {
    if (resp.status === 401 && path !== "/login") unauthenticated();
    throw new ApiError(resp.status, isJson ? data : null);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}, headers = {}) => api("POST", path, body, headers);
export const put = (path, body) => api("PUT", path, body);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A path segment from data (application ids, school codes, consumers): always encoded. */
/** A fresh Idempotency-Key (128 random bits, hex): one per operator intent, reused on retry. */
export function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const seg = (value) => encodeURIComponent(String(value));
