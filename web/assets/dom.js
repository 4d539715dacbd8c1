// DOM building and formatting. Everything user-supplied goes in as text, never HTML.

/** Creates an element: h('a', {href: '#/runs', class: 'x', onclick: fn}, 'text', child). */
export function h(tag, attrs, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && !svg) el.value = v;
    else if (k === 'checked' && !svg) el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(['svg', 'g', 'rect', 'line', 'path', 'text', 'title', 'polyline', 'circle']);

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// ---- time ----------------------------------------------------------------------

/** Epoch ms (number), or an RFC 3339 string, as epoch ms. */
export function ms(t) {
  if (t === null || t === undefined) return null;
  if (typeof t === 'number') return t;
  const n = Date.parse(t);
  return Number.isNaN(n) ? null : n;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** "12:04:05" for today, "Mar 3 12:04:05" otherwise. */
export function clock(t) {
  const v = ms(t);
  if (v === null) return '—';
  const d = new Date(v);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${time}`;
}

/** Full local time with milliseconds, for tooltips. */
export function fullTime(t) {
  const v = ms(t);
  if (v === null) return '';
  const d = new Date(v);
  return `${d.toLocaleDateString()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "3s ago", "in 2m". */
export function relative(t, now = Date.now()) {
  const v = ms(t);
  if (v === null) return '';
  const d = v - now;
  const s = duration(Math.abs(d), true);
  return d > 0 ? `in ${s}` : `${s} ago`;
}

/** 950 → "950ms", 61000 → "1m 1s". */
export function duration(d, coarse = false) {
  if (d === null || d === undefined || Number.isNaN(d)) return '—';
  if (d < 1000) return coarse ? `${Math.max(0, Math.round(d / 1000))}s` : `${Math.round(d)}ms`;
  const s = d / 1000;
  if (s < 60) return coarse ? `${Math.round(s)}s` : `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/** A time cell: local clock with the full time as a tooltip. */
export function timeCell(t) {
  return h('time', { datetime: ms(t) ? new Date(ms(t)).toISOString() : '', title: fullTime(t) }, clock(t));
}

// ---- JSON ----------------------------------------------------------------------

const LIMIT = 20_000;

/**
 * A JSON value, pretty-printed and coloured. Long values are collapsed; very large
 * ones are truncated, with buttons to show or download everything.
 */
export function jsonView(value, { open = true, label } = {}) {
  if (value === undefined) return h('span', { class: 'muted' }, 'none');
  const text = JSON.stringify(value, null, 2) ?? 'undefined';
  const pre = h('pre', { class: 'json' });
  const fill = (all) => {
    const shown = all || text.length <= LIMIT ? text : text.slice(0, LIMIT);
    mount(pre, colour(shown));
    if (shown.length < text.length) {
      pre.append(
        h('span', { class: 'muted' }, `\n… ${Math.round((text.length - shown.length) / 1024)} KB more `),
        h('button', { class: 'link', type: 'button', onclick: () => fill(true) }, 'show all'),
        h('span', { class: 'muted' }, ' · '),
        h('button', { class: 'link', type: 'button', 'data-download': true, onclick: () => download(text, `${label ?? 'value'}.json`) }, 'download'),
      );
    }
  };
  fill(false);
  const lines = text.split('\n').length;
  const copy = h('button', {
    class: 'link copy', type: 'button', title: 'Copy JSON',
    onclick: () => navigator.clipboard?.writeText(text),
  }, 'copy');
  const summary = h('summary', {}, label ?? summarize(value), ` · ${lines} line${lines === 1 ? '' : 's'}`, copy);
  return h('details', { class: 'json-box', open: open && lines <= 40 }, summary, pre);
}

/** Saves `text` as a file through a short-lived object URL. */
function download(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = h('a', { href: url, download: name.replace(/[^\w.-]+/g, '_') });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function summarize(v) {
  if (Array.isArray(v)) return `array [${v.length}]`;
  if (v && typeof v === 'object') return `object {${Object.keys(v).length}}`;
  return typeof v;
}

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

function colour(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const cls = m[1] ? (m[2] ? 'k' : 's') : m[3] ? 'b' : 'n';
    out.push(h('span', { class: `j-${cls}` }, m[1] ?? m[0]));
    if (m[2]) out.push(m[2]);
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

// ---- bits ----------------------------------------------------------------------

export function statusBadge(status) {
  const s = String(status || 'unknown').toLowerCase();
  return h('span', { class: `badge status-${s}`, 'data-status': s }, s);
}

export function empty(text, ...extra) {
  return h('div', { class: 'empty' }, h('p', {}, text), ...extra);
}

/** A short id: the last 8 characters. */
export function shortId(id) {
  const s = String(id ?? '');
  return s.length > 10 ? `…${s.slice(-8)}` : s;
}

/** Shows a short message at the bottom of the screen. */
export function toast(text, kind = 'info') {
  const box = $('#toasts');
  if (!box) return;
  const el = h('div', { class: `toast toast-${kind}`, role: 'status' }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 7000 : 3500);
}

/** A JSON editor: a textarea that validates as you type. Returns {el, value()}. */
export function jsonEditor(initial, { rows = 10, label = 'JSON' } = {}) {
  const area = h('textarea', { class: 'code', rows, spellcheck: 'false', 'aria-label': label });
  area.value = typeof initial === 'string' ? initial : JSON.stringify(initial, null, 2);
  const note = h('div', { class: 'editor-note' });
  const check = () => {
    try {
      JSON.parse(area.value);
      note.textContent = '';
      area.classList.remove('invalid');
      return true;
    } catch (e) {
      note.textContent = `Invalid JSON: ${e.message}`;
      area.classList.add('invalid');
      return false;
    }
  };
  area.addEventListener('input', check);
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey) {
      e.preventDefault();
      area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
    }
  });
  return {
    el: h('div', { class: 'editor' }, area, note),
    area,
    value() {
      if (!check()) throw new Error(note.textContent);
      return JSON.parse(area.value);
    },
  };
}

/** A modal dialog. Returns the <dialog>; close() removes it. */
export function dialog(title, body, actions) {
  const d = h('dialog', { class: 'modal' },
    h('form', { method: 'dialog', class: 'modal-inner' },
      h('header', {}, h('h2', {}, title), h('button', { class: 'icon', value: 'cancel', 'aria-label': 'Close' }, '×')),
      h('div', { class: 'modal-body' }, body),
      h('footer', {}, actions),
    ));
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}
