// bench_net.mjs - network benchmark: chunk streaming to 1 and 100 clients from the real
// server beside a raw libwebsockets sender of the same frames (bench_net, same process and
// loop), time to the first complete frame of the demo scene in headless Chromium, and HTTP
// query latency. Loopback only; prints a markdown table.
//   node bench/bench_net.mjs [--bin build/release/bench_net] [--side 1024] [--clients 100]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WEB = join(ROOT, 'assets', 'web');
const require = createRequire(join(WEB, 'package.json'));
const WebSocket = require('ws');
const { chromium } = require('playwright-core');
const P = await import(join(WEB, 'protocol.js'));

const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const BIN = arg('--bin', join(ROOT, 'build', 'release', 'bench_net'));
const SIDE = Number(arg('--side', 1024));
const CLIENTS = Number(arg('--clients', 100));

const proc = spawn(BIN, ['--side', String(SIDE)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LUMADB_WEB: WEB } });
const ready = await new Promise((resolve, reject) => {
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
    const m = /ports (\d+) (\d+) samples (\d+) bytes (\d+) frames (\d+)/.exec(out);
    if (m) resolve(m.slice(1).map(Number));
  });
  proc.on('exit', (c) => reject(new Error(`bench_net exited ${c}`)));
});
const [API, RAW, SAMPLES, BYTES, FRAMES] = ready;

// One streaming client: header parsing only (no decompression), like a raw consumer.
function streamClient(port, protocol, onOpen, isDone) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, protocol);
    const st = { bytes: 0, samples: 0, t0: 0 };
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => { st.t0 = performance.now(); onOpen(ws); });
    ws.on('message', (d) => {
      st.bytes += d.length;
      if (d[0] === P.T.CHUNK) st.samples += d.readUInt32LE(36);
      if (isDone(d, st)) { st.ms = performance.now() - st.t0; ws.close(); resolve(st); }
    });
    ws.on('error', reject);
  });
}
const apiClient = () => streamClient(API, P.PROTOCOL, (ws) => {
  ws.send(P.encodeHello(''));
  ws.send(P.encodeSubscribe(1, 'terrain', { lod: P.LOD.SAMPLES }));
}, (d) => d[0] === P.T.SYNCED);
const rawClient = () => streamClient(RAW, 'raw.v1', () => {}, (d) => d[0] === 0xff);

async function run(n, make) {
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, make));
  const ms = performance.now() - t0;
  const bytes = res.reduce((s, r) => s + r.bytes, 0), samples = res.reduce((s, r) => s + r.samples, 0);
  const per = res.map((r) => r.ms).sort((a, b) => a - b);
  return { n, ms, mbps: bytes / 1048576 / (ms / 1000), sps: samples / (ms / 1000), bytes, samples,
    slowest: per[per.length - 1], fastest: per[0] };
}

const rows = [];
const row = (what, r) => rows.push([what, r.n, (r.bytes / 1048576).toFixed(1), (r.ms / 1000).toFixed(2),
  r.mbps.toFixed(0), (r.sps / 1e6).toFixed(2), `${(r.fastest / 1000).toFixed(2)}–${(r.slowest / 1000).toFixed(2)}`]);
row('lumadb.v1, cold frame cache', await run(1, apiClient));
row('lumadb.v1, warm', await run(1, apiClient));
row('raw lws, same frames', await run(1, rawClient));
row('lumadb.v1, warm', await run(CLIENTS, apiClient));
row('raw lws, same frames', await run(CLIENTS, rawClient));

// HTTP query latency: nearest, small box aggregate, sphere select, one at a time.
const lat = { nearest: [], aggregate: [], sphere: [] };
let seed = 1;
const rnd = () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 4294967296 * 240 - 120; };
for (let i = 0; i < 300; i++) {
  for (const kind of Object.keys(lat)) {
    const x = rnd(), y = rnd();
    const q = kind === 'nearest' ? { field: 'terrain', nearest: { p: [x, y, 0], k: 10 } }
      : kind === 'aggregate' ? { field: 'terrain', aggregate: { column: 'intensity' }, box: { min: [x, y, -60], max: [x + 20, y + 20, 60] } }
        : { field: 'terrain', sphere: { center: [x, y, 0], radius: 3 }, limit: 10000 };
    const t0 = performance.now();
    const r = await fetch(`http://127.0.0.1:${API}/v1/query`, { method: 'POST', body: JSON.stringify(q) });
    await r.text();
    if (r.status !== 200) throw new Error(`query ${r.status}`);
    lat[kind].push(performance.now() - t0);
  }
}
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

// Chromium: the demo page with its default point budget, time to the first frame drawn
// with the whole subscription received.
const userDir = mkdtempSync(join(tmpdir(), 'lumadb-bench-chromium-'));
const ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: process.env.LUMADB_CHROMIUM || '/usr/bin/chromium', headless: true, viewport: { width: 1280, height: 720 },
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
const browser = [];
for (const [label, query] of [['auto LOD (budget 300k)', ''], ['all samples', '?lod=samples']]) {
  const page = await ctx.newPage();
  await page.goto(`http://127.0.0.1:${API}/${query}`);
  await page.waitForFunction(() => window.lumadb && window.lumadb.firstCompleteFrameMs !== null, null, { polling: 100, timeout: 120000 });
  await page.waitForTimeout(3000);
  const st = await page.evaluate(() => ({ ...window.lumadb }));
  await page.screenshot({ path: join(tmpdir(), `lumadb-bench-${query ? 'samples' : 'auto'}.png`) });
  browser.push({ label, ...st });
  await page.close();
}
await ctx.close();
rmSync(userDir, { recursive: true, force: true });
proc.kill('SIGTERM');
await new Promise((r) => proc.on('exit', r));

console.log(`\nDemo terrain: ${SAMPLES.toLocaleString()} samples in ${FRAMES} chunk frames, ${(BYTES / 1048576).toFixed(1)} MiB on the wire (LZ4, x/y/z/direction/rgb/intensity)\n`);
console.log('| stream | clients | MiB | seconds | MiB/s | M samples/s | per client s |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log('\n| HTTP POST /v1/query (one at a time, node fetch) | n | p50 ms | p99 ms |');
console.log('| --- | --- | --- | --- |');
for (const [k, a] of Object.entries(lat)) console.log(`| ${k} | ${a.length} | ${pct(a, 0.5).toFixed(2)} | ${pct(a, 0.99).toFixed(2)} |`);
console.log('\n| Chromium (SwiftShader, 1280x720) | mode | points | MiB received | first complete frame ms | fps after |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const b of browser) {
  console.log(`| ${b.label} | ${b.mode === 'voxels' ? `voxels L${b.level}` : b.mode} | ${b.points.toLocaleString()} | ${(b.bytesReceived / 1048576).toFixed(1)} | ${b.firstCompleteFrameMs.toFixed(0)} | ${b.fps.toFixed(1)} |`);
}
