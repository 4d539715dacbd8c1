// Run detail: header, what it waits for, the step timeline, output, cancel / rerun.
import { h, mount, statusBadge, timeCell, duration, jsonView, toast, ms, empty, shortId } from '../dom.js';
import { api, functionsIndex, runFunction } from '../api.js';
import { debounce } from '../live.js';
import { timeline, waitingLine, errorMessage } from '../timeline.js';

const ENDED = ['completed', 'failed', 'cancelled'];

export function render(main, [id]) {
  const state = { run: null, steps: [], pending: null, events: [], expanded: new Set() };
  mount(main, h('div', { class: 'skeleton' }, 'Loading run…'));
  let ticker = null;

  async function load() {
    try {
      const [run, steps, pending] = await Promise.all([
        api.run(id),
        api.steps(id).catch(() => null),
        api.pending(id).catch(() => null),
      ]);
      await functionsIndex();
      state.run = run?.run ?? run;
      state.steps = steps ?? run?.steps ?? state.run?.steps ?? [];
      state.pending = pending;
      const evIds = state.run.event_ids || [];
      if (run?.events?.length) state.events = run.events;
      else if (evIds.length && !state.events.length) {
        state.events = (await Promise.all(evIds.slice(0, 5).map((e) => api.event(e).catch(() => null))))
          .filter(Boolean).map((e) => e.event ?? e);
      }
      draw();
    } catch (e) {
      mount(main, empty(e.status === 404 ? 'No such run.' : `Could not load the run: ${e.message}`, h('a', { href: '#/runs' }, 'Back to runs')));
    }
  }

  function draw() {
    const run = state.run;
    const fn = runFunction(run);
    const created = ms(run.created_at);
    const started = ms(run.started_at);
    const ended = ms(run.ended_at);
    const ev = state.events[0];
    // Keep open steps open across live redraws.
    for (const el of main.querySelectorAll('.tl-step[data-step]')) {
      const open = !el.querySelector('.tl-body').hidden;
      if (open) state.expanded.add(el.dataset.step);
      else state.expanded.delete(el.dataset.step);
    }
    const line = waitingLine(run, state.steps, state.pending);
    const active = !ENDED.includes(run.status);
    const field = (k, ...v) => h('div', {}, h('div', { class: 'k' }, k), h('div', { class: 'v' }, ...v));
    const tl = timeline(run, state.steps, { maxAttempts: state.pending?.waiting_for?.max_attempts });
    for (const el of tl.querySelectorAll('.tl-step[data-step]')) {
      if (state.expanded.has(el.dataset.step)) {
        el.querySelector('.tl-body').hidden = false;
        el.querySelector('.tl-row').setAttribute('aria-expanded', 'true');
      }
    }
    mount(main,
      h('div', { class: 'page-head' },
        h('a', { href: '#/runs', class: 'muted' }, 'Runs'), h('span', { class: 'muted' }, '/'),
        h('h1', { class: 'mono', title: run.id }, shortId(run.id)), statusBadge(run.status),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'danger', id: 'cancel-run', disabled: !active, onclick: cancel }, 'Cancel'),
          h('button', { type: 'button', id: 'rerun-run', onclick: rerun }, 'Rerun'))),
      h('section', { class: 'panel', id: 'run-header' },
        h('div', { class: 'run-head' },
          field('Function', h('a', { href: `#/functions/${encodeURIComponent(fn.slug)}` }, fn.name)),
          field('Triggered by', ev ? h('a', { href: `#/events/${ev.id}`, class: 'mono' }, ev.name)
            : h('span', { class: 'muted' }, run.correlation_id ? 'step.invoke' : 'direct invoke')),
          run.rerun_of
            ? field('Rerun', ['rerun of ', h('a', { href: `#/runs/${run.rerun_of}`, class: 'mono' }, shortId(run.rerun_of))])
            : null,
          field('Created', timeCell(created)),
          field('Duration', started ? duration((ended ?? Date.now()) - started) : '—',
            started && started - created > 5 ? h('span', { class: 'muted' }, ` (+${duration(started - created)} queued)`) : null),
          field('Run ID', h('span', { class: 'mono', title: run.id }, run.id))),
        line ? h('div', { class: `waiting ${line.kind}`, id: 'waiting-for', role: 'status' }, h('span', {}, line.parts)) : null),
      h('section', { class: 'panel' },
        h('div', { class: 'section-title' }, 'Timeline', h('span', { class: 'right muted' }, `${state.steps.length} step${state.steps.length === 1 ? '' : 's'} · click a step for details`)),
        tl),
      outputPanel(run),
      state.events.length ? h('section', { class: 'panel' },
        h('div', { class: 'section-title' }, state.events.length > 1 ? `Triggering events (${state.events.length})` : 'Triggering event'),
        h('div', { class: 'panel-pad' }, state.events.map((e) => jsonView({ name: e.name, data: e.data, id: e.external_id ?? e.id, ts: e.ts }, { label: e.name, open: false })))) : null);
    clearInterval(ticker);
    if (active) ticker = setInterval(() => {
      // Keep relative times ("in 12s") and running bars fresh between notices.
      const w = main.querySelector('#waiting-for');
      const fresh = waitingLine(state.run, state.steps, state.pending);
      if (w && fresh) mount(w, h('span', {}, fresh.parts));
    }, 1000);
  }

  function outputPanel(run) {
    if (run.status === 'completed') {
      return h('section', { class: 'panel', id: 'run-output' }, h('div', { class: 'section-title' }, 'Output'),
        h('div', { class: 'panel-pad' }, jsonView(run.output ?? null, { label: 'function output' })));
    }
    if (run.status === 'failed' || (run.status === 'cancelled' && run.error)) {
      return h('section', { class: 'panel', id: 'run-output' }, h('div', { class: 'section-title' }, run.status === 'failed' ? 'Error' : 'Cancelled'),
        h('div', { class: 'panel-pad' }, h('p', { class: 'error-text' }, errorMessage(run.error)), jsonView(run.error ?? null, { label: 'error', open: false })));
    }
    return null;
  }

  async function cancel() {
    try {
      await api.cancel(id);
      toast('Run cancelled');
      load();
    } catch (e) {
      toast(`Cancel failed: ${e.message}`, 'error');
    }
  }

  async function rerun() {
    try {
      const resp = await api.rerun(id);
      const newId = resp?.id ?? resp?.run_id ?? resp?.run?.id ?? resp?.data?.id;
      toast('Rerun started');
      if (newId) location.hash = `#/runs/${newId}`;
    } catch (e) {
      toast(`Rerun failed: ${e.message}`, 'error');
    }
  }

  const reload = debounce(load, 200);
  load();
  return {
    onNotice(n) {
      if ((n.kind === 'run' && n.id === id) || (n.kind === 'steps' && n.run_id === id) || n.kind === 'resync') reload();
    },
    onKey(key) {
      if (key === 'c' && state.run && !ENDED.includes(state.run.status)) { cancel(); return true; }
      if (key === 'r') { rerun(); return true; }
      if (key === 'u') { location.hash = '#/runs'; return true; }
      return false;
    },
    dispose() {
      reload.cancel();
      clearInterval(ticker);
    },
  };
}
