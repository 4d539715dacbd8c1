// Starts the real `sluice` binary, the TS SDK test app and headless Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const shots = path.join(root, 'test-output/screenshots');
mkdirSync(shots, { recursive: true });

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Spawns a child, keeping its output for failure messages. */
export function start(cmd, args, env = {}) {
  // The server reads every SLUICE_* variable as configuration: pass on none of ours.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')));
  const child = spawn(cmd, args, { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  const keep = (d) => {
    child.output = (child.output + d).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (e) => keep(`\ncannot start ${cmd}: ${e.message}\n`));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export async function stop(child) {
  if (!child || child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

export async function waitFor(what, f, { timeout = 30_000, every = 200 } = {}) {
  const until = Date.now() + timeout;
  let last;
  while (Date.now() < until) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

export const sluiceBin = process.env.SLUICE_BIN || path.join(root, 'target/debug/sluice');

/** `sluice <mode> …` on a free port with a fresh data dir; resolves once /health answers. */
export async function sluice(mode, extra = []) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-browser-'));
  const args = mode === 'dev'
    ? ['dev', '--port', String(port), '--data-dir', dir, ...extra]
    : ['start', '--port', String(port), '--database-url', `sqlite://${dir}/sluice.db`, ...extra];
  const child = start(sluiceBin, args, { RUST_LOG: 'info' });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('sluice /health', async () => (await fetch(`${url}/health`)).ok, { timeout: 20_000 });
  } catch (e) {
    throw new Error(`${e.message}\n${child.output}`);
  }
  return {
    url,
    child,
    async stop() {
      await stop(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The TS SDK test app (tests/sdk/ts, inngest 4.x from examples/typescript). */
export async function sdkApp(sluiceUrl, appId) {
  const port = await freePort();
  const child = start('node', [path.join(root, 'tests/sdk/ts/app.js'), path.join(root, 'examples/typescript')], {
    PORT: String(port),
    APP_ID: appId,
    INNGEST_DEV: '1',
    INNGEST_BASE_URL: sluiceUrl,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('the SDK app', async () => (await fetch(`${url}/ready`)).ok, { timeout: 20_000 });
  } catch (e) {
    throw new Error(`${e.message}\n${child.output}`);
  }
  return { url, serveUrl: `${url}/api/inngest`, child, stop: () => stop(child) };
}

export async function browser() {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'sluice-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1360, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  ctx.on('weberror', (e) => errors.push(String(e.error())));
  return {
    ctx,
    errors,
    async page() {
      const p = await ctx.newPage();
      p.on('pageerror', (e) => errors.push(String(e)));
      return p;
    },
    async close() {
      await ctx.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
