// Functions: the list with triggers and flow control; one function's runs, counts,
// throughput chart and Invoke.
import { h, mount, empty, statusBadge, timeCell, duration, shortId, jsonView, jsonEditor, dialog, toast, ms } from '../dom.js';
import { api, functionsIndex } from '../api.js';
import { debounce } from '../live.js';
import { throughputChart } from '../chart.js';

const FLOW = [
  ['concurrency', 'concurrency'], ['throttle', 'throttle'], ['rateLimit', 'rate limit'], ['debounce', 'debounce'],
  ['batchEvents', 'batch'], ['priority', 'priority'], ['idempotency', 'idempotency'], ['singleton', 'singleton'],
  ['cancel', 'cancel on'], ['timeouts', 'timeouts'],
];

function triggers(f) {
  return (f.triggers || []).map((t) => (t.cron
    ? h('span', { class: 'tag cron', title: 'cron' }, `⏱ ${t.cron}`)
    : h('span', { class: 'tag', title: t.expression ? `if ${t.expression}` : 'event' }, t.event, t.expression ? ' ⋯' : '')));
}

function flowSummary(config) {
  const out = [];
  for (const [k, label] of FLOW) {
    const v = config?.[k];
    if (v === undefined || v === null) continue;
    out.push(h('span', { class: 'tag', title: JSON.stringify(v) }, `${label}${summary(k, v)}`));
  }
  const retries = config?.steps?.step?.retries?.attempts;
  if (retries !== undefined) out.push(h('span', { class: 'tag' }, `retries ${retries}`));
  return out.length ? out : h('span', { class: 'muted' }, '—');
}

function summary(k, v) {
  if (k === 'concurrency') {
    const list = Array.isArray(v) ? v : [v];
    return ` ${list.map((c) => (typeof c === 'number' ? c : c.limit)).join(', ')}`;
  }
  if (k === 'throttle' || k === 'rateLimit') return ` ${v.limit}/${v.period}`;
  if (k === 'debounce') return ` ${v.period}`;
  if (k === 'batchEvents') return ` ${v.maxSize}/${v.timeout}`;
  return '';
}

export function render(main, [slug]) {
  return slug ? detail(main, slug) : list(main);
}

function list(main) {
  const tbody = h('tbody');
  const search = h('input', { type: 'search', placeholder: 'Filter functions…', 'data-search': true, oninput: () => draw() });
  let fns = [];
  let apps = new Map();
  mount(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Functions')),
    h('section', { class: 'panel' },
      h('div', { class: 'filters' }, search),
      h('table', { id: 'functions-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Function'), h('th', {}, 'App'), h('th', {}, 'Triggers'), h('th', {}, 'Flow control'))),
        tbody)));

  async function load() {
    try {
      const [idx, appList] = await Promise.all([functionsIndex(true), api.apps().catch(() => [])]);
      fns = [...idx.byId.values()].sort((a, b) => a.slug.localeCompare(b.slug));
      apps = new Map(appList.map((a) => [a.id, a]));
      draw();
    } catch (e) {
      mount(tbody, h('tr', {}, h('td', { colspan: 4 }, empty(`Could not load functions: ${e.message}`))));
    }
  }

  function draw() {
    const q = search.value.trim().toLowerCase();
    const rows = fns.filter((f) => !q || `${f.slug} ${f.name} ${(f.triggers || []).map((t) => t.event ?? t.cron).join(' ')}`.toLowerCase().includes(q));
    if (!rows.length) {
      mount(tbody, h('tr', {}, h('td', { colspan: 4 }, empty(fns.length ? 'No functions match.' : 'No functions yet: add an app to sync its functions.', h('a', { href: '#/apps' }, 'Go to apps')))));
      return;
    }
    mount(tbody, rows.map((f) => h('tr', {
      class: 'row', 'data-href': `#/functions/${encodeURIComponent(f.slug)}`, 'data-slug': f.slug,
      onclick: () => { location.hash = `#/functions/${encodeURIComponent(f.slug)}`; },
    },
    h('td', {}, h('div', {}, h('b', {}, f.name || f.slug)), h('div', { class: 'muted mono' }, f.slug)),
    h('td', {}, apps.get(f.app_id)?.name ?? h('span', { class: 'muted' }, shortId(f.app_id))),
    h('td', {}, triggers(f)),
    h('td', {}, flowSummary(f.config)))));
  }

  const reload = debounce(load, 300);
  load();
  return { onNotice(n) { if (n.kind === 'apps' || n.kind === 'resync') reload(); }, dispose() { reload.cancel(); } };
}

const WINDOWS = [['1h', 3600e3, 30], ['24h', 86400e3, 24], ['7d', 7 * 86400e3, 28]];

function detail(main, slug) {
  const state = { fn: null, runs: [], window: '24h', capped: false };
  mount(main, h('div', { class: 'skeleton' }, 'Loading function…'));

  async function load() {
    try {
      const idx = await functionsIndex();
      state.fn = idx.bySlug.get(slug) ?? (await api.fn(slug));
      if (!state.fn) throw Object.assign(new Error('No such function.'), { status: 404 });
      const [, span] = WINDOWS.find(([k]) => k === state.window);
      const after = Date.now() - span;
      const runs = [];
      let cursor;
      for (let i = 0; i < 10; i++) {
        const page = await api.runs({ function: state.fn.id, after, limit: 200, cursor });
        const mine = page.items.filter((r) => r.function_id === state.fn.id);
        runs.push(...mine);
        cursor = page.next;
        // Stop at the window's start (the server may ignore `after`), or the last page.
        if (!cursor || page.items.some((r) => ms(r.created_at) < after)) break;
      }
      state.capped = !!cursor;
      state.runs = runs.filter((r) => ms(r.created_at) >= after);
      draw();
    } catch (e) {
      mount(main, empty(e.status === 404 ? `No function ${slug}.` : `Could not load the function: ${e.message}`, h('a', { href: '#/functions' }, 'Back to functions')));
    }
  }

  function draw() {
    const f = state.fn;
    const [, span, buckets] = WINDOWS.find(([k]) => k === state.window);
    const now = Date.now();
    const counts = { completed: 0, failed: 0, cancelled: 0, running: 0, queued: 0 };
    for (const r of state.runs) counts[r.status] = (counts[r.status] ?? 0) + 1;
    const ended = counts.completed + counts.failed;
    const stat = (label, n, cls) => h('div', { class: 'panel stat' }, h('div', { class: `n ${cls || ''}` }, String(n)), h('div', { class: 'l' }, label));
    mount(main,
      h('div', { class: 'page-head' },
        h('a', { href: '#/functions', class: 'muted' }, 'Functions'), h('span', { class: 'muted' }, '/'),
        h('h1', {}, f.name || f.slug),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'invoke', onclick: invokeDialog }, 'Invoke'))),
      h('section', { class: 'panel panel-pad' },
        h('dl', { class: 'kv' },
          h('dt', {}, 'Slug'), h('dd', { class: 'mono' }, f.slug),
          h('dt', {}, 'Triggers'), h('dd', {}, triggers(f)),
          h('dt', {}, 'Flow control'), h('dd', {}, flowSummary(f.config)),
          h('dt', {}, 'Config'), h('dd', {}, jsonView(f.config ?? {}, { label: 'as registered', open: false })))),
      h('div', { class: 'grid', id: 'fn-stats' },
        stat(`runs, last ${state.window}${state.capped ? ' (first 2000)' : ''}`, state.runs.length),
        stat('completed', counts.completed, 'status-completed'),
        stat('failed', counts.failed, 'status-failed'),
        stat('success rate', ended ? `${Math.round((counts.completed / ended) * 100)}%` : '—'),
        stat('in progress', counts.running + counts.queued)),
      h('section', { class: 'panel' },
        h('div', { class: 'section-title' }, 'Throughput',
          h('span', { class: 'right' }, h('select', {
            'aria-label': 'Window', onchange: (e) => { state.window = e.target.value; load(); },
          }, WINDOWS.map(([k]) => h('option', { value: k, selected: k === state.window }, `Last ${k}`))))),
        h('div', { class: 'panel-pad' }, throughputChart(state.runs, { from: now - span, to: now, buckets }))),
      h('section', { class: 'panel' },
        h('div', { class: 'section-title' }, 'Recent runs', h('a', { class: 'right', href: `#/runs?function=${f.id}` }, 'All runs →')),
        state.runs.length
          ? h('table', {}, h('tbody', {}, state.runs.slice(0, 15).map((r) => h('tr', {
            class: 'row', 'data-href': `#/runs/${r.id}`, onclick: () => { location.hash = `#/runs/${r.id}`; },
          },
          h('td', {}, statusBadge(r.status)), h('td', { class: 'mono' }, shortId(r.id)), h('td', {}, timeCell(r.created_at)),
          h('td', { class: 'num' }, r.ended_at && r.started_at ? duration(ms(r.ended_at) - ms(r.started_at)) : '—')))))
          : empty(`No runs in the last ${state.window}.`)));
  }

  function invokeDialog() {
    const editor = jsonEditor({ data: {} }, { rows: 12, label: 'Invoke payload' });
    editor.area.id = 'invoke-payload';
    const submit = async (ev) => {
      ev.preventDefault();
      let body;
      try {
        body = editor.value();
      } catch (err) {
        toast(err.message, 'error');
        return;
      }
      try {
        const resp = await api.invoke(slug, body);
        d.close();
        const id = resp?.run_id ?? resp?.id ?? resp?.run?.id ?? resp?.ids?.[0];
        toast('Invoked');
        if (id) location.hash = `#/runs/${id}`;
        else load();
      } catch (err) {
        toast(`Invoke failed: ${err.message}`, 'error');
      }
    };
    const d = dialog(`Invoke ${state.fn.name || slug}`,
      [h('p', { class: 'muted' }, 'The payload becomes the triggering event: ', h('code', {}, '{"data": {…}}'), '.'), editor.el],
      [h('button', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Cancel'),
        h('button', { class: 'primary', type: 'button', id: 'invoke-submit', onclick: submit }, 'Invoke')]);
    editor.area.focus();
  }

  const reload = debounce(load, 1000);
  load();
  return {
    onNotice(n) {
      if ((n.kind === 'run' && n.function_id === state.fn?.id) || n.kind === 'apps' || n.kind === 'resync') reload();
    },
    onKey(key) {
      if (key === 'i') { invokeDialog(); return true; }
      if (key === 'u') { location.hash = '#/functions'; return true; }
      return false;
    },
    dispose() { reload.cancel(); },
  };
}
