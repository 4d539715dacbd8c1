// Events: a live feed, newest first; expand one for its payload and the runs it
// triggered; send a new event; replay one.
import { h, mount, timeCell, shortId, empty, jsonView, jsonEditor, dialog, toast, statusBadge } from '../dom.js';
import { api, rememberEvents, functionsIndex, runFunction } from '../api.js';
import { debounce } from '../live.js';

const recentNames = () => JSON.parse(localStorage.getItem('sluice-event-names') || '[]');

function rememberName(name) {
  const names = [name, ...recentNames().filter((n) => n !== name)].slice(0, 20);
  localStorage.setItem('sluice-event-names', JSON.stringify(names));
}

export function render(main, [focusId]) {
  const state = { events: [], next: null, open: new Set(focusId ? [focusId] : []), q: '', internal: false, seen: null };
  const tbody = h('tbody');
  const more = h('div', { class: 'more', hidden: true }, h('button', { type: 'button', onclick: () => load(true) }, 'Load more'));
  const search = h('input', {
    type: 'search', placeholder: 'Filter by name or id…', 'data-search': true,
    oninput: (e) => { state.q = e.target.value.trim().toLowerCase(); draw(); },
  });
  const internal = h('label', { class: 'muted' },
    h('input', { type: 'checkbox', onchange: (e) => { state.internal = e.target.checked; load(); } }), ' show inngest/* events');

  mount(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Events'),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'send-event', onclick: () => sendDialog() }, 'Send event ', h('kbd', {}, 's')))),
    h('section', { class: 'panel' },
      h('div', { class: 'filters' }, search, internal),
      h('table', { id: 'events-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'ID'), h('th', {}, 'Received'), h('th', {}, ''))),
        tbody),
      more));

  async function load(append = false) {
    try {
      const resp = await api.events({ cursor: append ? state.next : undefined, internal: state.internal || undefined });
      rememberEvents(resp.items);
      state.events = append ? [...state.events, ...resp.items] : keepOlder(resp.items);
      state.next = resp.next;
      if (focusId && !state.events.some((e) => e.id === focusId)) {
        const ev = await api.event(focusId).catch(() => null);
        if (ev) state.events.unshift(ev.event ?? ev);
      }
      draw();
    } catch (e) {
      mount(tbody, h('tr', {}, h('td', { colspan: 4 }, empty(`Could not load events: ${e.message}`))));
    }
  }

  function keepOlder(items) {
    if (state.events.length <= items.length) return items;
    const ids = new Set(items.map((e) => e.id));
    return [...items, ...state.events.slice(items.length).filter((e) => !ids.has(e.id))];
  }

  function visible() {
    return state.events.filter((e) => (state.internal || !e.name.startsWith('inngest/'))
      && (!state.q || `${e.name} ${e.id} ${e.external_id ?? ''}`.toLowerCase().includes(state.q)));
  }

  function draw() {
    const rows = visible();
    const fresh = state.seen ? new Set(rows.filter((e) => !state.seen.has(e.id)).map((e) => e.id)) : new Set();
    state.seen = new Set([...(state.seen || []), ...rows.map((e) => e.id)]);
    const cursorId = tbody.querySelector('.row.cursor')?.dataset.id;
    more.hidden = !state.next;
    if (!rows.length) {
      mount(tbody, h('tr', {}, h('td', { colspan: 4 }, empty(state.events.length ? 'No events match.' : 'No events yet.',
        h('button', { type: 'button', class: 'primary', onclick: () => sendDialog() }, 'Send an event')))));
      return;
    }
    mount(tbody, rows.flatMap((e) => {
      const open = state.open.has(e.id);
      const tr = h('tr', {
        class: `row${fresh.has(e.id) ? ' fresh' : ''}${e.id === cursorId ? ' cursor' : ''}`, 'data-id': e.id, 'data-event-name': e.name,
        'aria-expanded': String(open),
        onclick: () => {
          open ? state.open.delete(e.id) : state.open.add(e.id);
          draw();
        },
      },
      h('td', { class: 'mono' }, e.name),
      h('td', { class: 'mono', title: e.id }, shortId(e.external_id ?? e.id)),
      h('td', {}, timeCell(e.received_at ?? e.ts)),
      h('td', { class: 'num muted' }, open ? '▾' : '▸'));
      return open ? [tr, detailRow(e)] : [tr];
    }));
  }

  function detailRow(e) {
    const runsBox = h('div', {}, h('span', { class: 'muted' }, 'Loading runs…'));
    (async () => {
      await functionsIndex();
      const runs = await api.eventRuns(e.id).catch(() => e.runs ?? []);
      mount(runsBox, runs.length
        ? h('table', { class: 'event-runs' }, h('tbody', {}, runs.map((r) => h('tr', {},
          h('td', {}, statusBadge(r.status)),
          h('td', {}, runFunction(r).name),
          h('td', {}, h('a', { href: `#/runs/${r.id}`, class: 'mono' }, r.id))))))
        : h('span', { class: 'muted' }, 'This event triggered no runs.'));
    })();
    const payload = { name: e.name, data: e.data, ...(e.user && Object.keys(e.user).length ? { user: e.user } : {}), id: e.external_id ?? e.id, ts: e.ts, ...(e.version ? { v: e.version } : {}) };
    return h('tr', { class: 'detail' }, h('td', { colspan: 4 },
      h('div', { class: 'grid' },
        h('div', {}, h('h2', {}, 'Payload'), jsonView(payload, { label: 'event' })),
        h('div', {}, h('h2', {}, 'Runs'), runsBox,
          h('p', {}, h('button', { type: 'button', 'data-action': 'replay', onclick: () => replay(e) }, 'Replay'), ' ',
            h('button', { type: 'button', class: 'link', onclick: () => sendDialog(e) }, 'Edit and send…'))))));
  }

  async function replay(e) {
    try {
      const body = { name: e.name, data: e.data ?? {} };
      if (e.user && Object.keys(e.user).length) body.user = e.user;
      await api.sendEvent(body);
      toast(`Replayed ${e.name}`);
      load();
    } catch (err) {
      toast(`Replay failed: ${err.message}`, 'error');
    }
  }

  function sendDialog(from) {
    const names = [...new Set([...recentNames(), ...state.events.filter((e) => !e.name.startsWith('inngest/')).map((e) => e.name)])];
    const name = h('input', { id: 'event-name', list: 'event-names', required: true, placeholder: 'app/user.signed_up', value: from?.name ?? names[0] ?? '' });
    const editor = jsonEditor(from?.data ?? {}, { rows: 12, label: 'Event data' });
    editor.area.id = 'event-data';
    const submit = async (ev) => {
      ev.preventDefault();
      let data;
      try {
        data = editor.value();
      } catch (err) {
        toast(err.message, 'error');
        return;
      }
      if (!name.value.trim()) {
        name.focus();
        return;
      }
      try {
        const resp = await api.sendEvent({ name: name.value.trim(), data });
        rememberName(name.value.trim());
        d.close();
        toast(`Sent ${name.value.trim()}${resp?.ids?.[0] ? ` (${shortId(resp.ids[0])})` : ''}`);
        load();
      } catch (err) {
        toast(`Send failed: ${err.message}`, 'error');
      }
    };
    const d = dialog('Send event',
      [h('label', { class: 'field' }, 'Name', name, h('datalist', { id: 'event-names' }, names.map((n) => h('option', { value: n })))),
        h('label', { class: 'field' }, 'Data (JSON)', editor.el)],
      [h('button', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Cancel'),
        h('button', { class: 'primary', type: 'button', id: 'send-event-submit', onclick: submit }, 'Send')]);
    editor.area.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) submit(e); });
    (from ? editor.area : name).focus();
  }

  const reload = debounce(() => load(), 250);
  load();
  return {
    onNotice(n) {
      if (n.kind === 'event' || n.kind === 'resync' || n.kind === 'hello') reload();
      // Runs an open event triggered may have changed status.
      if (n.kind === 'run' && state.open.size) reload();
    },
    onKey(key) {
      if (key === 's') { sendDialog(); return true; }
      return false;
    },
    dispose() { reload.cancel(); },
  };
}
