// Apps: every synced app with its URL, SDK, function count, last sync and error; add
// an app by URL; re-sync.
import { h, mount, empty, relative, fullTime, toast } from '../dom.js';
import { api } from '../api.js';
import { debounce } from '../live.js';

export function render(main) {
  const tbody = h('tbody');
  const url = h('input', { type: 'url', id: 'app-url', required: true, placeholder: 'http://localhost:3000/api/inngest', 'data-search': true });
  const add = async (e) => {
    e.preventDefault();
    if (!url.value.trim()) return;
    const btn = e.submitter;
    if (btn) btn.disabled = true;
    try {
      await api.addApp(url.value.trim());
      toast(`Synced ${url.value.trim()}`);
      url.value = '';
    } catch (err) {
      toast(`Sync failed: ${err.message}`, 'error');
    } finally {
      if (btn) btn.disabled = false;
      load();
    }
  };
  mount(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Apps')),
    h('section', { class: 'panel' },
      h('form', { class: 'filters', onsubmit: add }, url, h('button', { class: 'primary', type: 'submit' }, 'Add app')),
      h('table', { id: 'apps-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'App'), h('th', {}, 'SDK'), h('th', { class: 'num' }, 'Functions'), h('th', {}, 'Last sync'), h('th', {}, ''))),
        tbody)));

  async function load() {
    try {
      const apps = await api.apps();
      if (!apps.length) {
        mount(tbody, h('tr', {}, h('td', { colspan: 5 }, empty('No apps yet. Add one by its serve URL, or start Sluice with `sluice dev -u URL`.'))));
        return;
      }
      mount(tbody, apps.map((a) => h('tr', { class: 'row', 'data-app': a.name },
        h('td', {}, h('div', {}, h('b', {}, a.name)), h('div', { class: 'muted mono ellipsis', title: a.url }, a.url),
          a.sync_error ? h('div', { class: 'error-text' }, `⚠ ${a.sync_error}`) : null),
        h('td', {}, a.sdk ?? h('span', { class: 'muted' }, '—'), a.framework ? h('div', { class: 'muted' }, a.framework) : null),
        h('td', { class: 'num' }, h('a', { href: '#/functions' }, String(a.function_count ?? 0))),
        h('td', { title: a.last_synced_at ? fullTime(a.last_synced_at) : '' }, a.last_synced_at ? relative(a.last_synced_at) : h('span', { class: 'muted' }, 'never')),
        h('td', { class: 'num' }, h('button', {
          type: 'button',
          onclick: async (e) => {
            e.stopPropagation();
            e.currentTarget.disabled = true;
            try {
              await api.syncApp(a.id);
              toast(`Re-synced ${a.name}`);
            } catch (err) {
              toast(`Re-sync failed: ${err.message}`, 'error');
            }
            load();
          },
        }, 'Re-sync')))));
    } catch (e) {
      mount(tbody, h('tr', {}, h('td', { colspan: 5 }, empty(`Could not load apps: ${e.message}`))));
    }
  }

  const reload = debounce(load, 300);
  load();
  return { onNotice(n) { if (n.kind === 'apps' || n.kind === 'resync') reload(); }, dispose() { reload.cancel(); } };
}
