// The dashboard shell: hash routing, the live feed, keyboard shortcuts and theme.
import { $, $$, h, mount, dialog, toast } from './dom.js';
import { api } from './api.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';
import * as events from './pages/events.js';
import * as functions from './pages/functions.js';
import * as apps from './pages/apps.js';

const ROUTES = [
  [/^\/runs\/([^/]+)$/, run, 'runs'],
  [/^\/runs\/?$/, runs, 'runs'],
  [/^\/events(?:\/([^/]+))?\/?$/, events, 'events'],
  [/^\/functions\/(.+)$/, functions, 'functions'],
  [/^\/functions\/?$/, functions, 'functions'],
  [/^\/apps\/?$/, apps, 'apps'],
];

let current = null; // { page, view, nav }

function route() {
  const raw = location.hash.replace(/^#/, '') || '/runs';
  const [path, query = ''] = raw.split('?');
  let match = null;
  for (const [re, page, nav] of ROUTES) {
    const m = path.match(re);
    if (m) {
      match = { page, nav, params: m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p))) };
      break;
    }
  }
  current?.view?.dispose?.();
  const main = $('#main');
  if (!match) {
    mount(main, h('div', { class: 'empty' }, h('p', {}, 'Nothing here.'), h('a', { href: '#/runs' }, 'Go to runs')));
    current = null;
    return;
  }
  for (const a of $$('[data-nav]')) a.classList.toggle('active', a.dataset.nav === match.nav);
  // Each page renders into its own root: a page's late async redraw (a load that
  // finishes after the user moved on) lands in a detached element, not over the
  // next page.
  const root = h('div', { class: 'page' });
  mount(main, root);
  const view = match.page.render(root, match.params, new URLSearchParams(query));
  current = { page: match.page, view, nav: match.nav };
  document.title = `${match.nav[0].toUpperCase()}${match.nav.slice(1)} · Sluice`;
  main.focus({ preventScroll: true });
}

// ---- live feed ------------------------------------------------------------------

function connect() {
  const live = $('#live');
  const es = new EventSource('/v1/stream');
  es.onopen = () => {
    live.textContent = 'live';
    live.className = 'live on';
  };
  es.onerror = () => {
    live.textContent = 'reconnecting…';
    live.className = 'live off';
  };
  es.onmessage = (msg) => {
    let notice;
    try {
      notice = JSON.parse(msg.data);
    } catch {
      return;
    }
    current?.view?.onNotice?.(notice);
  };
}

// ---- theme ------------------------------------------------------------------------

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  const next = dark ? 'light' : 'dark';
  localStorage.setItem('sluice-theme', next);
  applyTheme(next);
}

// ---- keyboard ------------------------------------------------------------------------

const SHORTCUTS = [
  ['j / k', 'next / previous row'],
  ['Enter or o', 'open the selected row'],
  ['x', 'select the row (runs)'],
  ['/', 'search or filter'],
  ['g r', 'go to runs'],
  ['g e', 'go to events'],
  ['g f', 'go to functions'],
  ['g a', 'go to apps'],
  ['s', 'send an event (events page)'],
  ['c / r', 'cancel / rerun (run page)'],
  ['u', 'back to the list'],
  ['t', 'toggle the theme'],
  ['?', 'this help'],
];

function showHelp() {
  if ($('dialog.modal')) return;
  dialog('Keyboard shortcuts',
    h('div', { class: 'shortcuts' }, SHORTCUTS.flatMap(([k, what]) => [h('kbd', {}, k), h('span', {}, what)])),
    h('button', { value: 'ok', class: 'primary' }, 'Close'));
}

function moveCursor(delta) {
  const rows = $$('#main .row');
  if (!rows.length) return;
  let i = rows.findIndex((r) => r.classList.contains('cursor'));
  rows[i]?.classList.remove('cursor');
  i = i < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, i + delta));
  rows[i].classList.add('cursor');
  rows[i].scrollIntoView({ block: 'nearest' });
}

let pendingG = 0;

function onKey(e) {
  if (e.defaultPrevented || e.metaKey || e.ctrlKey || e.altKey) return;
  const t = e.target;
  const typing = t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
  if (e.key === 'Escape' && typing) {
    t.blur();
    return;
  }
  if (typing || $('dialog[open]')) return;
  const go = { r: '#/runs', e: '#/events', f: '#/functions', a: '#/apps' };
  if (Date.now() - pendingG < 1200 && go[e.key]) {
    pendingG = 0;
    location.hash = go[e.key];
    e.preventDefault();
    return;
  }
  pendingG = 0;
  const cursor = $('#main .row.cursor');
  switch (e.key) {
    case 'g': pendingG = Date.now(); break;
    case 'j': case 'ArrowDown': moveCursor(1); break;
    case 'k': case 'ArrowUp': moveCursor(-1); break;
    case 'Enter': case 'o':
      if (!cursor) return;
      if (cursor.dataset.href) location.hash = cursor.dataset.href;
      else cursor.click();
      break;
    case 'x': {
      const box = cursor?.querySelector('input[type="checkbox"]');
      if (!box) return;
      box.click();
      break;
    }
    case '/': {
      const search = $('#main [data-search]');
      if (!search) return;
      search.focus();
      search.select?.();
      break;
    }
    case 't': toggleTheme(); break;
    case '?': showHelp(); break;
    default:
      if (!current?.view?.onKey?.(e.key)) return;
  }
  e.preventDefault();
}

// ---- start ---------------------------------------------------------------------------

applyTheme(localStorage.getItem('sluice-theme'));
$('#theme').addEventListener('click', toggleTheme);
$('#help').addEventListener('click', showHelp);
document.addEventListener('keydown', onKey);
window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (e) => toast(e.reason?.message || String(e.reason), 'error'));
api.session().then((s) => { $('#logout').hidden = s?.auth !== 'token'; }).catch(() => {});
route();
connect();
