// lib.mjs - shared helpers of the server tests: start `lumadb serve` on a free loopback
// port in a fresh directory, HTTP helpers, frame collection, a clean stop that checks the
// exit status and the sanitizer report.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB = join(ROOT, 'assets', 'web');
const require = createRequire(join(WEB, 'package.json'));

// Exits 77 (ctest: skipped) when the node packages are not installed.
export function requireModule(name) {
  try {
    return require(name);
  } catch {
    console.log(`SKIP: ${name} is not installed (run tools/setup.sh, or npm ci in assets/web)`);
    process.exit(77);
  }
}

export const BIN = process.env.LUMADB_BIN || join(ROOT, 'build', 'asan', 'lumadb');
export const TOKEN = 'test-token-0123456789';

let failures = 0, passes = 0;
export function check(cond, what) {
  if (cond) { passes++; console.log(`ok - ${what}`); } else { failures++; console.log(`not ok - ${what}`); }
  return cond;
}
export function done() {
  console.log(`${passes} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls cond() every 20 ms until true or timeout; returns its last value.
export async function until(cond, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v || Date.now() > end) return v;
    await sleep(20);
  }
}

export async function startServer(args = [], { quietLog = true } = {}) {
  if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN}`);
  const dir = mkdtempSync(join(tmpdir(), 'lumadb-net-'));
  const proc = spawn(BIN, ['serve', join(dir, 'db'), '--port', '0', '--token', TOKEN, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { proc, dir, log: '' };
  proc.stdout.on('data', (d) => { srv.log += d; });
  proc.stderr.on('data', (d) => { srv.log += d; if (!quietLog) process.stderr.write(d); });
  srv.exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const m = await until(() => /listening on http:\/\/([\d.]+):(\d+)/.exec(srv.log), 120000);
  if (!m) { proc.kill('SIGKILL'); throw new Error(`server did not start:\n${srv.log}`); }
  srv.port = Number(m[2]);
  srv.http = `http://127.0.0.1:${srv.port}`;
  srv.ws = `ws://127.0.0.1:${srv.port}/`;
  return srv;
}

// SIGTERM, then checks a clean exit and an empty sanitizer report.
export async function stopServer(srv, what = 'server') {
  srv.proc.kill('SIGTERM');
  const t = setTimeout(() => srv.proc.kill('SIGKILL'), 20000);
  const { code, sig } = await srv.exited;
  clearTimeout(t);
  const bad = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(srv.log);
  check(code === 0 && !sig && !bad, `${what} stops cleanly on SIGTERM (exit ${code}${sig ? ' ' + sig : ''})`);
  if (code !== 0 || bad) console.log(srv.log.slice(-4000));
  rmSync(srv.dir, { recursive: true, force: true });
}

export async function http(srv, method, path, body, { token } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(srv.http + path, {
    method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

// Deterministic pseudo-random numbers.
export function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
}
