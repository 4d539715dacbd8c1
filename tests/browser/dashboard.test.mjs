// The dashboard end to end: the real `sluice dev`, the official TS SDK app, headless
// Chromium. Screenshots go to test-output/screenshots/ (and, with UPDATE_DOCS=1,
// docs/timeline.png).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { browser, root, sdkApp, shot, shots, sluice } from './harness.mjs';

const APP = 'dash-e2e';

describe('dashboard on sluice dev', () => {
  let server;
  let app;
  let b;
  let page;

  before(async () => {
    server = await sluice('dev');
    app = await sdkApp(server.url, APP);
    b = await browser();
    page = await b.page();
    page.setDefaultTimeout(20_000);
  });

  after(async () => {
    await b?.close();
    await app?.stop();
    await server?.stop();
  });

  /** Sends an event through the "Send event" dialog. */
  async function sendEvent(name, data) {
    await page.goto(`${server.url}/#/events`);
    await page.click('#send-event');
    await page.fill('#event-name', name);
    await page.fill('#event-data', JSON.stringify(data));
    await page.click('#send-event-submit');
    await page.locator(`#events-table tr[data-event-name="${name}"]`).first().waitFor();
  }

  /** Opens the newest run of function `fnId` from the runs table, live. */
  async function openNewestRun(fnId, status) {
    await page.goto(`${server.url}/#/runs`);
    const row = page.locator('#runs-table tr.row', { hasText: fnId }).first();
    await row.waitFor();
    if (status) await page.locator(`#runs-table tr.row[data-run-status="${status}"]`, { hasText: fnId }).first().waitFor();
    await row.click();
    await page.locator('#timeline').waitFor();
  }

  test('adds the app by URL and lists its functions', async () => {
    await page.goto(`${server.url}/#/apps`);
    await page.fill('#app-url', app.serveUrl);
    await page.click('button:has-text("Add app")');
    const row = page.locator(`#apps-table tr[data-app="${APP}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /js:|inngest|express/i);
    await shot(page, 'apps');

    await page.goto(`${server.url}/#/functions`);
    await page.locator(`#functions-table tr[data-slug="${APP}-chain"]`).waitFor();
    assert.match(await page.locator('#functions-table').innerText(), /e2e\/chain/);
    await shot(page, 'functions');
  });

  test('an event sent from the UI shows live, and its run completes with step outputs', async () => {
    // Keep a runs page open: the run must appear without a reload.
    await page.goto(`${server.url}/#/runs`);
    await page.locator('#runs-table').waitFor();
    const sender = await b.page();
    await sender.goto(`${server.url}/#/events`);
    await sender.click('#send-event');
    await sender.fill('#event-name', 'e2e/chain');
    await sender.fill('#event-data', '{"n": 1}');
    await sender.click('#send-event-submit');
    await sender.locator('#events-table tr[data-event-name="e2e/chain"]').first().waitFor();
    await shot(sender, 'events');
    await sender.close();

    const done = page.locator('#runs-table tr.row[data-run-status="completed"]', { hasText: 'chain' }).first();
    await done.waitFor({ timeout: 30_000 });
    await shot(page, 'runs');
    await done.click();
    await page.locator('#timeline .tl-step[data-step="a"]').waitFor();
    await page.locator('#timeline .tl-step[data-step="b"]').waitFor();
    await page.click('#timeline .tl-step[data-step="a"] .tl-row');
    await page.locator('#timeline .tl-step[data-step="a"] .tl-body pre', { hasText: '"v": 2' }).waitFor();
    await page.locator('#run-output pre', { hasText: '"b": 4' }).waitFor();
    await shot(page, 'run-timeline');
    if (process.env.UPDATE_DOCS) {
      // `UPDATE_DOCS=1 scripts/browser-test` refreshes the README's screenshot.
      mkdirSync(path.join(root, 'docs'), { recursive: true });
      copyFileSync(path.join(shots, 'run-timeline.png'), path.join(root, 'docs/timeline.png'));
    }

    await page.goto(`${server.url}/#/functions/${APP}-chain`);
    await page.locator('#fn-stats').waitFor();
    assert.match(await page.locator('#fn-stats').innerText(), /1\s+completed/i);
    await page.locator('svg.chart rect.c-ok').first().waitFor();
    await shot(page, 'function-detail');
  });

  test('a sleeping run says so and can be cancelled', async () => {
    const until = new Date(Date.now() + 3600_000).toISOString();
    await sendEvent('e2e/sleep', { until });
    await openNewestRun('sleeper');
    const line = page.locator('#waiting-for', { hasText: /Sleeping until/ });
    await line.waitFor({ timeout: 30_000 });
    await shot(page, 'run-sleeping');
    await page.click('#cancel-run');
    await page.locator('#run-header .badge[data-status="cancelled"], .page-head .badge[data-status="cancelled"]').first().waitFor();
    assert.equal(await page.locator('#waiting-for').count(), 0);
  });

  test('a failed run can be rerun', async () => {
    await sendEvent('e2e/nonretriable', {});
    await openNewestRun('non-retriable', 'failed');
    await page.locator('#run-output', { hasText: /not retrying this/ }).waitFor();
    await shot(page, 'run-failed');
    const failedUrl = page.url();
    await page.click('#rerun-run');
    await page.waitForURL((u) => u.toString() !== failedUrl);
    await page.locator('#run-header', { hasText: 'rerun of' }).waitFor();
  });

  test('runs filter by status and bulk-cancel selected rows', async () => {
    const until = new Date(Date.now() + 3600_000).toISOString();
    await sendEvent('e2e/sleep', { until });
    await page.goto(`${server.url}/#/runs`);
    await page.click('[data-status-filter="running"]');
    const row = page.locator('#runs-table tr.row', { hasText: 'sleeper' }).first();
    await row.waitFor({ timeout: 30_000 });
    for (const s of await page.locator('#runs-table tr.row').evaluateAll((rows) => rows.map((r) => r.dataset.runStatus))) {
      assert.equal(s, 'running');
    }
    await row.locator('input[type="checkbox"]').check();
    await page.click('[data-action="bulk-cancel"]');
    await page.click('[data-status-filter="running"]');
    await page.click('[data-status-filter="cancelled"]');
    await page.locator('#runs-table tr.row[data-run-status="cancelled"]', { hasText: 'sleeper' }).nth(1).waitFor();
  });

  test('search runs server-side and cancel everything matching the filter', async () => {
    const until = new Date(Date.now() + 3600_000).toISOString();
    const events = Array.from({ length: 55 }, (_, i) => ({ name: 'e2e/sleep', data: { until, i } }));
    const sent = await fetch(`${server.url}/e/any-key`, { method: 'POST', body: JSON.stringify(events) });
    assert.equal(sent.status, 200);
    const running = async () => (await (await fetch(`${server.url}/v1/runs?status=running&q=e2e/sleep&limit=200`)).json()).items.length;
    for (let i = 0; i < 100 && (await running()) < 55; i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok((await running()) >= 55, 'the sleepers are running');

    await page.goto(`${server.url}/#/runs?status=running`);
    await page.fill('[data-search]', 'e2e/sleep');
    await page.locator('.more:not([hidden])').waitFor();
    // Live reloads redraw the table (and the select-all box): select until it holds.
    const cancelAll = page.locator('[data-action="cancel-matching"]');
    for (let i = 0; i < 20 && !(await cancelAll.isVisible()); i++) {
      await page.locator('#runs-table th.check input[type="checkbox"]').click();
      await page.waitForTimeout(250);
    }
    await cancelAll.click();
    await page.locator('.toast', { hasText: /Cancelled \d+ of \d+ matching/ }).waitFor();
    assert.equal(await running(), 0, 'every matching run was cancelled, not only the loaded page');
    await page.locator('#runs-table', { hasText: 'No runs match' }).waitFor();
    await shot(page, 'runs-bulk-matching');
  });

  test('a step that failed then succeeded shows each failed attempt', async () => {
    await sendEvent('e2e/flaky', {});
    await openNewestRun('flaky', 'completed');
    await page.click('#timeline .tl-step[data-step="flaky"] .tl-row');
    await page.locator('#timeline .tl-attempts li', { hasText: 'first attempt fails' }).waitFor();
    await shot(page, 'run-retried-step');
  });

  test('a large payload is truncated with show-all and download', async () => {
    const big = { name: 'e2e/big', data: { blob: 'x'.repeat(30_000) } };
    const sent = await fetch(`${server.url}/e/any-key`, { method: 'POST', body: JSON.stringify(big) });
    assert.equal(sent.status, 200);
    await page.goto(`${server.url}/#/events`);
    await page.locator('#events-table tr[data-event-name="e2e/big"]').first().click();
    const button = page.locator('[data-download]').first();
    await button.waitFor();
    const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
    assert.match(file.suggestedFilename(), /\.json$/);
    const body = JSON.parse(readFileSync(await file.path(), 'utf8'));
    assert.equal(body.data.blob.length, 30_000, 'the whole value, not the truncated view');
  });

  test('keyboard: g e goes to events, ? shows help, t toggles the theme', async () => {
    await page.goto(`${server.url}/#/runs`);
    await page.locator('#runs-table').waitFor();
    await page.keyboard.press('g');
    await page.keyboard.press('e');
    await page.waitForURL(/#\/events/);
    await page.keyboard.press('?');
    await page.locator('dialog.modal', { hasText: 'Keyboard shortcuts' }).waitFor();
    await page.keyboard.press('Escape');
    const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.keyboard.press('t');
    const afterBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(before, afterBg);
    await shot(page, 'events-theme-toggled');
    assert.deepEqual(b.errors, []);
  });
});

describe('dashboard on sluice start', () => {
  const key = `signkey-test-${'ab'.repeat(32)}`;
  let server;
  let b;

  before(async () => {
    server = await sluice('start', ['--signing-key', key, '--event-key', 'test-event-key']);
    b = await browser();
  });

  after(async () => {
    await b?.close();
    await server?.stop();
  });

  test('refuses an unauthenticated visitor and lets the token in', async () => {
    const api = await fetch(`${server.url}/v1/runs`);
    assert.equal(api.status, 401);
    const page = await b.page();
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/login$/);
    await shot(page, 'login');
    await page.fill('#token', 'wrong');
    await page.click('button[type="submit"]');
    await page.waitForURL(/error=1/);
    await page.locator('#error').waitFor();
    await page.fill('#token', key);
    await page.click('button[type="submit"]');
    await page.locator('#runs-table').waitFor();
    const cookies = await b.ctx.cookies(server.url);
    const session = cookies.find((c) => c.name === 'sluice_session');
    assert.ok(session?.httpOnly, 'session cookie is HTTP-only');
    const bearer = await fetch(`${server.url}/v1/runs`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(bearer.status, 200);
  });
});
