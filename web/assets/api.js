// The REST API, as the dashboard uses it. Every call goes through `call`, which
// speaks JSON, sends the session cookie (same origin) and turns errors into Error
// objects carrying the server's {code, message}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export async function call(method, path, body) {
  const init = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    location.assign('/login');
    throw new ApiError(401, 'unauthorized', 'signed out');
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, json?.code, json?.message || json?.error || text.slice(0, 200));
  }
  return json;
}

const get = (p) => call('GET', p);
const post = (p, b) => call('POST', p, b ?? {});

/** A list response as {items, next}, whatever envelope the server used. */
export function page(resp) {
  if (Array.isArray(resp)) return { items: resp, next: null };
  const items = resp?.items ?? resp?.data ?? resp?.runs ?? resp?.events ?? resp?.apps ?? resp?.functions ?? [];
  return { items, next: resp?.next ?? resp?.cursor ?? resp?.next_cursor ?? null };
}

/** An object response, unwrapped from {data: …} if enveloped. */
const one = (resp) => (resp && typeof resp === 'object' && 'data' in resp && !('id' in resp) ? resp.data : resp);

function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && !v.length)) continue;
    q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const api = {
  session: () => get('/v1/session'),
  apps: async () => page(await get('/v1/apps')).items,
  addApp: (url) => post('/v1/apps', { url }),
  syncApp: (id) => post(`/v1/apps/${encodeURIComponent(id)}/sync`),
  functions: async () => page(await get('/v1/functions')).items,
  fn: async (slug) => one(await get(`/v1/functions/${encodeURIComponent(slug)}`)),
  invoke: (slug, body) => post(`/v1/functions/${encodeURIComponent(slug)}/invoke`, body),
  /** {name, internal, after, before, cursor, limit} */
  events: async (f = {}) => page(await get(`/v1/events${qs({ limit: 50, ...f })}`)),
  event: async (id) => one(await get(`/v1/events/${encodeURIComponent(id)}`)),
  /** The runs an event triggered (the event detail carries them). */
  eventRuns: async (id) => (await get(`/v1/events/${encodeURIComponent(id)}`))?.runs ?? [],
  sendEvent: (ev) => post('/v1/events', ev),
  /** {status, function (id or slug), after, before, cursor, limit} */
  runs: async (f = {}) => page(await get(`/v1/runs${qs({ limit: 50, ...f })}`)),
  run: async (id) => one(await get(`/v1/runs/${encodeURIComponent(id)}`)),
  steps: async (id) => page(await get(`/v1/runs/${encodeURIComponent(id)}/steps`)).items,
  pending: (id) => get(`/v1/runs/${encodeURIComponent(id)}/pending`),
  cancel: (id) => post(`/v1/runs/${encodeURIComponent(id)}/cancel`),
  /** Cancel / rerun every run matching a `runs()` filter (server-side, ≤ 10,000). */
  cancelMatching: (f) => post(`/v1/runs/cancel${qs(f)}`),
  rerunMatching: (f) => post(`/v1/runs/rerun${qs(f)}`),
  rerun: (id) => post(`/v1/runs/${encodeURIComponent(id)}/rerun`),
};

/** Runs `f` over `items`, at most `n` at a time; resolves to the settled results. */
export async function each(items, n, f) {
  const out = new Array(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const k = i++;
      try {
        out[k] = { ok: true, value: await f(items[k]) };
      } catch (error) {
        out[k] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

// ---- shared caches: functions by id and slug, event names by id ---------------

const fnCache = { byId: new Map(), bySlug: new Map(), at: 0 };

export async function functionsIndex(force = false) {
  if (force || Date.now() - fnCache.at > 5000) {
    const list = await api.functions().catch(() => []);
    fnCache.byId = new Map(list.map((f) => [f.id, f]));
    fnCache.bySlug = new Map(list.map((f) => [f.slug, f]));
    fnCache.at = Date.now();
  }
  return fnCache;
}

export const eventCache = new Map();

export function rememberEvents(events) {
  for (const e of events) eventCache.set(e.id, e);
}

/** The run's function as {slug, name}, from the run itself or the function cache. */
export function runFunction(run) {
  const f = fnCache.byId.get(run.function_id);
  return {
    slug: run.function_slug ?? run.function?.slug ?? f?.slug ?? run.function_id,
    name: run.function_name ?? run.function?.name ?? f?.name ?? run.function_slug ?? run.function_id,
  };
}

/** The run's (first) triggering event's name, when known. */
export function runEventName(run) {
  if (run.event_name) return run.event_name;
  if (run.event?.name) return run.event.name;
  if (run.events?.[0]?.name) return run.events[0].name;
  const id = run.event_ids?.[0];
  return id ? eventCache.get(id)?.name : undefined;
}
