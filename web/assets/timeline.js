// A run's timeline: one row per step, queued vs executing bars, sleeps and waits as
// spans; and the plain-language line saying what the run waits for.
import { h, ms, clock, relative, duration, statusBadge, jsonView, fullTime } from './dom.js';

const SPAN_OPS = new Set(['Sleep', 'WaitForEvent', 'InvokeFunction']);
const SPAN_STATUS = new Set(['sleeping', 'waiting', 'invoking']);

function colour(step) {
  switch (step.status) {
    case 'completed': return 'var(--completed)';
    case 'failed': return 'var(--failed)';
    case 'retrying': return 'var(--cancelled)';
    case 'sleeping': return 'var(--sleeping)';
    case 'waiting': case 'invoking': return 'var(--waiting)';
    default:
      if (step.op === 'Sleep') return 'var(--sleeping)';
      if (SPAN_OPS.has(step.op)) return 'var(--waiting)';
      return 'var(--queued)';
  }
}

/** What a step stores as its result, unwrapped: {data} → data, {error} → error. */
export function stepOutput(step) {
  const r = step.result;
  if (r && typeof r === 'object' && !Array.isArray(r)) {
    if ('data' in r) return { kind: 'output', value: r.data };
    if ('error' in r) return { kind: 'error', value: r.error };
  }
  return r === null || r === undefined ? null : { kind: 'output', value: r };
}

/**
 * The timeline element. `run` and `steps` as the API serves them; `maxAttempts` from
 * the pending endpoint when known.
 */
export function timeline(run, steps, { maxAttempts, now = Date.now() } = {}) {
  const t0 = ms(run.created_at) ?? Math.min(...steps.map((s) => ms(s.created_at) ?? now));
  const t1 = Math.max(ms(run.ended_at) ?? now, ...steps.map((s) => ms(s.ended_at) ?? 0), t0 + 1);
  const span = t1 - t0;
  const pct = (t) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(0, ((b - a) / span) * 100).toFixed(3)}%`;

  const bar = (cls, a, b, c, open) => {
    const el = h('div', { class: `tl-bar ${cls}${open ? ' open' : ''}` });
    el.style.left = pct(a);
    el.style.width = width(a, b);
    el.style.setProperty('--c', c);
    return el;
  };

  const runRow = (() => {
    const created = t0;
    const started = ms(run.started_at);
    const ended = ms(run.ended_at);
    const c = run.status === 'failed' ? 'var(--failed)' : run.status === 'cancelled' ? 'var(--cancelled)' : run.status === 'completed' ? 'var(--completed)' : 'var(--running)';
    const track = h('div', { class: 'tl-track' },
      bar('queued', created, started ?? ended ?? now, c, !started && !ended),
      started ? bar('exec', started, ended ?? now, c, !ended) : null);
    return h('div', { class: 'tl-step tl-run' },
      h('div', { class: 'tl-row' },
        h('div', { class: 'tl-name' }, h('span', { class: 'name' }, 'Function run'), statusBadge(run.status)),
        track,
        h('div', { class: 'tl-dur', title: started ? `queued ${duration(started - created)}` : '' },
          duration((ended ?? now) - (started ?? created)))));
  })();

  const rows = steps.map((s) => {
    const created = ms(s.created_at) ?? t0;
    const started = ms(s.started_at) ?? created;
    const ended = ms(s.ended_at);
    const end = ended ?? now;
    const c = colour(s);
    const isSpan = SPAN_OPS.has(s.op) || SPAN_STATUS.has(s.status);
    const track = h('div', { class: 'tl-track' },
      isSpan
        ? bar('span', started, end, c, !ended)
        : [started > created ? bar('queued', created, started, c) : null, bar('exec', started, end, c, !ended)]);
    const body = h('div', { class: 'tl-body', hidden: true }, stepBody(s, { maxAttempts, created, started, ended }));
    const attempts = s.attempts > 1 ? h('span', { class: 'muted', title: 'attempts' }, `×${s.attempts}`) : null;
    const row = h('div', {
      class: 'tl-row', role: 'button', tabindex: '-1', 'aria-expanded': 'false',
    },
    h('div', { class: 'tl-name' }, h('span', { class: 'name', title: s.name }, s.name || s.step_id), h('span', { class: 'op' }, s.op), attempts),
    track,
    h('div', { class: 'tl-dur' }, ended ? duration(ended - started) : statusBadge(s.status)));
    const wrap = h('div', { class: 'tl-step row', 'data-step': s.name || s.step_id, 'data-step-status': s.status }, row, body);
    wrap.addEventListener('click', (e) => {
      if (body.contains(e.target)) return;
      body.hidden = !body.hidden;
      row.setAttribute('aria-expanded', String(!body.hidden));
    });
    return wrap;
  });

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', {}, f === 0 ? clock(t0) : `+${duration(span * f, span > 10_000)}`));
  const legendItem = (label, cls, c) => {
    const i = h('i', { class: `tl-bar ${cls}` });
    i.style.position = 'static';
    i.style.setProperty('--c', c);
    return h('span', {}, i, label);
  };
  return h('div', { class: 'timeline', id: 'timeline' },
    h('div', { class: 'legend' },
      legendItem('queued', 'queued', 'var(--running)'),
      legendItem('executing', 'exec', 'var(--running)'),
      legendItem('sleep / wait', 'span', 'var(--sleeping)'),
      legendItem('failed', 'exec', 'var(--failed)')),
    h('div', { class: 'tl-axis' }, h('span', {}, 'Step'), h('div', { class: 'ticks' }, ticks), h('span', { class: 'tl-dur' }, 'Duration')),
    runRow,
    rows.length ? rows : h('div', { class: 'tl-step' }, h('div', { class: 'tl-row muted' }, 'No steps yet.')));
}

function stepBody(s, { maxAttempts, created, started, ended }) {
  const out = stepOutput(s);
  const attempts = maxAttempts ? `${s.attempts} of ${maxAttempts}` : String(s.attempts);
  const meta = h('div', { class: 'tl-meta' },
    h('span', {}, 'status ', statusBadge(s.status)),
    h('span', {}, 'attempts ', h('b', {}, attempts)),
    h('span', { title: fullTime(created) }, 'queued ', h('b', {}, clock(created))),
    h('span', { title: fullTime(started) }, 'started ', h('b', {}, clock(started))),
    ended ? h('span', { title: fullTime(ended) }, 'ended ', h('b', {}, clock(ended))) : null,
    started > created ? h('span', {}, 'waited ', h('b', {}, duration(started - created))) : null,
    h('span', {}, 'id ', h('code', {}, s.step_id)));
  // Every failed attempt, oldest first: the stored history plus the latest error.
  const failures = s.error && typeof s.error === 'object' && s.error.attempt
    ? [...(Array.isArray(s.error.history) ? s.error.history : []), s.error]
    : [];
  const retries = failures.length
    ? h('ol', { class: 'tl-attempts', 'data-attempt-errors': failures.length },
      failures.map((f) => h('li', {},
        h('b', {}, `attempt ${f.attempt ?? '?'}`), ' ',
        h('span', { class: 'error-text' }, [f.name, f.message].filter(Boolean).join(': ') || 'failed'))))
    : null;
  return [
    meta,
    retries,
    s.opts ? jsonView(s.opts, { label: 'options', open: false }) : null,
    s.error && s.status !== 'failed'
      ? jsonView(s.error, { label: s.status === 'retrying' ? `last attempt's error (will retry)` : 'error of an earlier attempt' })
      : null,
    out ? jsonView(out.value, { label: out.kind === 'error' ? 'error' : 'output' }) : null,
    !out && s.error && s.status === 'failed' ? jsonView(s.error, { label: 'error' }) : null,
  ];
}

const code = (t) => h('code', {}, t);

/**
 * The "what is it waiting for" line: from the pending endpoint's `waiting_for` when
 * there is one, else derived from the steps. Returns {kind, parts} or null.
 */
export function waitingLine(run, steps, pending, now = Date.now()) {
  if (['completed', 'failed', 'cancelled'].includes(run.status)) return null;
  const w = pending?.waiting_for;
  const at = (t) => [clock(t), h('span', { class: 'muted' }, ` (${relative(t, now)})`)];
  if (w) {
    switch (w.kind) {
      case 'sleeping':
        return { kind: 'sleeping', parts: ['Sleeping until ', ...at(w.until), w.step ? [' in step ', code(w.step)] : null] };
      case 'event':
        return {
          kind: 'event',
          parts: ['Waiting for event ', code(w.event), w.expression ? [' matching ', code(w.expression)] : null,
            w.until ? [' until ', ...at(w.until)] : null, w.step ? [' in step ', code(w.step)] : null],
        };
      case 'invoke':
        return { kind: 'invoke', parts: ['Waiting for ', w.function ? code(w.function) : 'the invoked function', ' to finish', w.until ? [' until ', ...at(w.until)] : null, w.step ? [' in step ', code(w.step)] : null] };
      case 'retry': {
        const msg = errorMessage(w.error);
        return {
          kind: 'retry',
          parts: [w.step ? ['Retrying step ', code(w.step)] : 'Retrying the function', ' at ', ...at(w.at),
            `, attempt ${w.attempt}${w.max_attempts ? ` of ${w.max_attempts}` : ''}`, msg ? [' — last error: ', h('span', { class: 'error-text' }, msg)] : null],
        };
      }
      case 'executing':
        return { kind: 'executing', parts: [w.step ? ['Running step ', code(w.step), ' now'] : 'Calling the function now'] };
      case 'scheduled':
        return { kind: 'scheduled', parts: ['Scheduled to start at ', ...at(w.at)] };
      case 'queued':
        return { kind: 'queued', parts: ['Queued since ', clock(w.since), ', waiting for a worker'] };
      default:
        break;
    }
  }
  // No pending endpoint: read the steps.
  const s = steps.find((x) => SPAN_STATUS.has(x.status) || x.status === 'retrying');
  if (s) {
    const o = s.opts || {};
    if (s.status === 'sleeping') return { kind: 'sleeping', parts: ['Sleeping', o.until ? [' until ', ...at(o.until)] : o.duration ? [` for ${o.duration}`] : null, ' in step ', code(s.name)] };
    if (s.status === 'waiting') return { kind: 'event', parts: ['Waiting for event ', code(o.event ?? '?'), o.if ? [' matching ', code(o.if)] : null, o.timeout ? [` (timeout ${o.timeout})`] : null] };
    if (s.status === 'invoking') return { kind: 'invoke', parts: ['Waiting for ', code(o.function_id ?? 'the invoked function'), ' to finish'] };
    return { kind: 'retry', parts: ['Retrying step ', code(s.name), `, attempt ${s.attempts + 1}`] };
  }
  return run.status === 'queued' ? { kind: 'queued', parts: ['Queued, waiting for a worker'] } : { kind: 'executing', parts: ['Running'] };
}

export function errorMessage(e) {
  if (!e) return '';
  if (typeof e === 'string') return e;
  const inner = e.error && typeof e.error === 'object' ? e.error : e;
  return [inner.name, inner.message].filter(Boolean).join(': ') || JSON.stringify(inner).slice(0, 200);
}
