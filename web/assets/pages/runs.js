// Runs: a filterable table with live updates and bulk cancel / rerun.
import { h, mount, statusBadge, timeCell, duration, shortId, empty, toast, ms } from '../dom.js';
import { api, each, functionsIndex, rememberEvents, eventCache, runFunction, runEventName } from '../api.js';
import { debounce } from '../live.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const RANGES = [['15m', 15 * 60e3], ['1h', 3600e3], ['24h', 86400e3], ['7d', 7 * 86400e3], ['all', 0]];

export function render(main, _params, query) {
  const state = {
    statuses: new Set((query.get('status') || '').split(',').filter(Boolean)),
    fn: query.get('function') || '',
    range: query.get('range') || 'all',
    q: query.get('q') || '',
    runs: [],
    next: null,
    selected: new Set(),
    seen: null,
  };

  const tbody = h('tbody');
  const more = h('div', { class: 'more', hidden: true },
    h('button', { type: 'button', onclick: () => load(true) }, 'Load more'));
  const count = h('span', { class: 'muted' });
  const bulkCount = h('b');
  // Shown when every loaded row is selected and more pages match: act server-side on
  // everything matching the filter, not just the loaded rows.
  const matching = h('span', { class: 'bulk-matching', hidden: true },
    h('span', { class: 'muted' }, ' · all runs matching the filter: '),
    h('button', { type: 'button', class: 'danger', 'data-action': 'cancel-matching', onclick: () => actMatching('cancel') }, 'Cancel all'),
    h('button', { type: 'button', 'data-action': 'rerun-matching', onclick: () => actMatching('rerun') }, 'Rerun all'));
  const bulk = h('div', { class: 'bulk', hidden: true },
    bulkCount, ' selected',
    h('button', { type: 'button', class: 'danger', 'data-action': 'bulk-cancel', onclick: () => bulkAct('cancel') }, 'Cancel'),
    h('button', { type: 'button', 'data-action': 'bulk-rerun', onclick: () => bulkAct('rerun') }, 'Rerun'),
    h('button', { type: 'button', class: 'link', onclick: () => { state.selected.clear(); draw(); } }, 'Clear'),
    matching);
  const fnSelect = h('select', { 'aria-label': 'Function', onchange: (e) => { state.fn = e.target.value; sync(); load(); } },
    h('option', { value: '' }, 'All functions'));
  const search = h('input', {
    type: 'search', placeholder: 'Search event name, run or event id…', 'data-search': true, value: state.q,
    oninput: (e) => { state.q = e.target.value; sync(); draw(); searchLater(); },
  });
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Status' },
    STATUSES.map((s) => h('button', {
      type: 'button', class: 'chip', 'data-status-filter': s, 'aria-pressed': String(state.statuses.has(s)),
      onclick: (e) => {
        if (state.statuses.has(s)) state.statuses.delete(s);
        else state.statuses.add(s);
        e.currentTarget.setAttribute('aria-pressed', String(state.statuses.has(s)));
        sync();
        load();
      },
    }, s)));
  const range = h('select', { 'aria-label': 'Time range', onchange: (e) => { state.range = e.target.value; sync(); load(); } },
    RANGES.map(([k]) => h('option', { value: k, selected: k === state.range }, k === 'all' ? 'Any time' : `Last ${k}`)));
  const allBox = h('input', {
    type: 'checkbox', 'aria-label': 'Select all',
    onchange: (e) => {
      for (const r of visible()) e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id);
      draw();
    },
  });

  mount(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Runs'), count),
    h('section', { class: 'panel' },
      h('div', { class: 'filters' }, search, chips, fnSelect, range),
      bulk,
      h('table', { id: 'runs-table' },
        h('thead', {}, h('tr', {},
          h('th', { class: 'check' }, allBox), h('th', {}, 'Status'), h('th', {}, 'Function'),
          h('th', {}, 'Event'), h('th', {}, 'Run'), h('th', {}, 'Started'), h('th', { class: 'num' }, 'Duration'))),
        tbody),
      more));

  function sync() {
    const q = new URLSearchParams();
    if (state.statuses.size) q.set('status', [...state.statuses].join(','));
    if (state.fn) q.set('function', state.fn);
    if (state.range !== 'all') q.set('range', state.range);
    if (state.q) q.set('q', state.q);
    const s = q.toString();
    history.replaceState(null, '', `#/runs${s ? `?${s}` : ''}`);
  }

  function filters(cursor) {
    const span = RANGES.find(([k]) => k === state.range)?.[1];
    const f = { status: [...state.statuses], cursor };
    if (state.fn) f.function = state.fn;
    if (span) f.after = Date.now() - span;
    if (state.q.trim()) f.q = state.q.trim();
    return f;
  }

  /** Server filters may be partial: apply every filter here too. */
  function visible() {
    const span = RANGES.find(([k]) => k === state.range)?.[1];
    const q = state.q.trim().toLowerCase();
    return state.runs.filter((r) => {
      if (state.statuses.size && !state.statuses.has(r.status)) return false;
      if (state.fn && r.function_id !== state.fn) return false;
      if (span && ms(r.created_at) < Date.now() - span) return false;
      if (!q) return true;
      const hay = [r.id, ...(r.event_ids || []), runEventName(r), runFunction(r).slug].join(' ').toLowerCase();
      return hay.includes(q);
    });
  }

  let loading = 0;
  async function load(append = false) {
    const ticket = ++loading;
    try {
      const idx = await functionsIndex();
      if (fnSelect.options.length === 1) {
        for (const f of [...idx.byId.values()].sort((a, b) => a.slug.localeCompare(b.slug))) {
          fnSelect.append(h('option', { value: f.id, selected: f.id === state.fn }, f.name || f.slug));
        }
      }
      const pageResp = await api.runs(filters(append ? state.next : undefined));
      if (ticket !== loading) return;
      state.runs = append ? [...state.runs, ...pageResp.items] : mergeFresh(pageResp.items);
      state.next = pageResp.next;
      draw();
      names();
    } catch (e) {
      if (ticket === loading) mount(tbody, h('tr', {}, h('td', { colspan: 7 }, empty(`Could not load runs: ${e.message}`))));
    }
  }

  /** On a live reload, keep rows already loaded past the first page. */
  function mergeFresh(items) {
    if (state.runs.length <= items.length) return items;
    const ids = new Set(items.map((r) => r.id));
    return [...items, ...state.runs.slice(items.length).filter((r) => !ids.has(r.id))];
  }

  /** Fills in event names the cache does not know yet. */
  async function names() {
    const unknown = [...new Set(state.runs.map((r) => r.event_ids?.[0]).filter((id) => id && !eventCache.has(id)))];
    if (!unknown.length) return;
    if (unknown.length > 8) {
      const recent = await api.events({ limit: 200 }).catch(() => ({ items: [] }));
      rememberEvents(recent.items);
    }
    await each(unknown.filter((id) => !eventCache.has(id)).slice(0, 30), 4, async (id) => {
      const ev = await api.event(id);
      if (ev) rememberEvents([ev.event ?? ev]);
    });
    draw();
  }

  function draw() {
    const rows = visible();
    const cursorId = tbody.querySelector('.row.cursor')?.dataset.id;
    const fresh = state.seen ? rows.filter((r) => !state.seen.has(r.id)).map((r) => r.id) : [];
    state.seen = new Set([...(state.seen || []), ...rows.map((r) => r.id)]);
    count.textContent = `${rows.length}${state.next ? '+' : ''} run${rows.length === 1 ? '' : 's'}`;
    if (!rows.length) {
      const filtered = state.runs.length || state.statuses.size || state.fn || state.range !== 'all' || state.q.trim();
      mount(tbody, h('tr', {}, h('td', { colspan: 7 }, empty(filtered ? 'No runs match these filters.' : 'No runs yet. Send an event to start one.',
        h('a', { href: '#/events' }, 'Go to events')))));
    } else {
      mount(tbody, rows.map((r) => row(r, fresh.includes(r.id), r.id === cursorId)));
    }
    more.hidden = !state.next;
    state.selected = new Set([...state.selected].filter((id) => state.runs.some((r) => r.id === id)));
    bulk.hidden = state.selected.size === 0;
    matching.hidden = !(state.next && rows.length > 0 && rows.every((r) => state.selected.has(r.id)));
    bulkCount.textContent = String(state.selected.size);
    allBox.checked = rows.length > 0 && rows.every((r) => state.selected.has(r.id));
  }

  function row(r, fresh, cursor) {
    const fn = runFunction(r);
    const ev = runEventName(r);
    const started = ms(r.started_at) ?? ms(r.created_at);
    const end = ms(r.ended_at) ?? Date.now();
    const box = h('input', {
      type: 'checkbox', 'aria-label': `Select run ${r.id}`, checked: state.selected.has(r.id),
      onclick: (e) => e.stopPropagation(),
      onchange: (e) => {
        e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id);
        draw();
      },
    });
    return h('tr', {
      class: `row${fresh ? ' fresh' : ''}${cursor ? ' cursor' : ''}`, 'data-id': r.id, 'data-href': `#/runs/${r.id}`,
      'data-run-status': r.status,
      onclick: () => { location.hash = `#/runs/${r.id}`; },
    },
    h('td', { class: 'check' }, box),
    h('td', {}, statusBadge(r.status)),
    h('td', { class: 'ellipsis' }, h('a', { href: `#/functions/${encodeURIComponent(fn.slug)}`, onclick: (e) => e.stopPropagation() }, fn.name)),
    h('td', { class: 'ellipsis mono' }, ev ?? (r.event_ids?.length ? shortId(r.event_ids[0]) : h('span', { class: 'muted' }, r.rerun_of ? 'rerun' : 'invoke'))),
    h('td', { class: 'mono', title: r.id }, shortId(r.id)),
    h('td', {}, timeCell(r.created_at)),
    h('td', { class: 'num' }, r.started_at || r.ended_at ? duration(end - started) : '—'));
  }

  async function bulkAct(action) {
    const ids = [...state.selected];
    const targets = action === 'cancel'
      ? ids.filter((id) => !['completed', 'failed', 'cancelled'].includes(state.runs.find((r) => r.id === id)?.status))
      : ids;
    if (!targets.length) {
      toast('None of the selected runs can be cancelled: they have ended.');
      return;
    }
    const results = await each(targets, 4, (id) => (action === 'cancel' ? api.cancel(id) : api.rerun(id)));
    const failed = results.filter((r) => !r.ok);
    const verb = action === 'cancel' ? 'Cancelled' : 'Reran';
    toast(`${verb} ${targets.length - failed.length} of ${targets.length} run${targets.length === 1 ? '' : 's'}${failed.length ? `: ${failed[0].error.message}` : ''}`,
      failed.length ? 'error' : 'info');
    state.selected.clear();
    // A fresh first page: rows kept from later pages would show their old status.
    state.runs = [];
    load();
  }

  async function actMatching(action) {
    const f = filters(undefined);
    delete f.cursor;
    try {
      const resp = await (action === 'cancel' ? api.cancelMatching(f) : api.rerunMatching(f));
      const n = action === 'cancel' ? resp.cancelled : resp.rerun;
      toast(`${action === 'cancel' ? 'Cancelled' : 'Reran'} ${n} of ${resp.matched} matching run${resp.matched === 1 ? '' : 's'}${resp.truncated ? ' (the first 10,000; run it again for more)' : ''}`);
    } catch (e) {
      toast(`Could not ${action} the matching runs: ${e.message}`, 'error');
    }
    state.selected.clear();
    // A fresh first page: rows kept from later pages would show their old status.
    state.runs = [];
    load();
  }

  const reload = debounce(() => load(), 300);
  const searchLater = debounce(() => load(), 250);
  load();
  return {
    onNotice(n) {
      if (n.kind === 'run' || n.kind === 'resync' || n.kind === 'hello') reload();
    },
    dispose() {
      reload.cancel();
      searchLater.cancel();
    },
  };
}
