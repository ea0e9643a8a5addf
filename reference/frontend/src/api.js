// The backend's JSON API (same origin: nginx proxies /api), and the session kept
// in localStorage so a reload stays signed in.

const SESSION_KEY = 'adapto.session';

export function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY)) ?? null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
}

// One line a person can read out of the backend's error body:
// {"error": "...", "fields": {"email": "..."}}.
function describe(status, body) {
  const fields = body && body.fields ? Object.entries(body.fields).map(([k, v]) => `${k}: ${v}`) : [];
  const text = (body && body.error) || `HTTP ${status}`;
  return fields.length ? `${text} (${fields.join('; ')})` : text;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
  }
}

/** `fetch` of /api/... with JSON in and out; throws ApiError on a non-2xx answer. */
export async function api(path, { token, method = 'GET', body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Same host as the page, wss under https: nginx proxies /ws to the backend.
export function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}/ws`;
}
