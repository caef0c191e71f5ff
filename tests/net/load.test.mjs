// load.test.mjs - 100 concurrent WebSocket clients subscribe to a field on loopback while
// writes arrive; every client must receive the whole field and every delta (none starves),
// and a client that stops reading must not grow the server's memory or stall the others.
// Bounded: fixed client count, fixed writes, every wait has a deadline.
import { readFileSync } from 'node:fs';
import { requireModule, startServer, stopServer, http, check, done, until, sleep, rng, TOKEN, WEB } from './lib.mjs';

const WebSocket = requireModule('ws');
const P = await import(`${WEB}/protocol.js`);
const { T, LOD } = P;
const CLIENTS = Number(process.env.LUMADB_LOAD_CLIENTS || 100);
const SEND_QUEUE = 1 << 20, MAX_FRAME = 1 << 20;

// Tracks what a client holds per chunk from frame headers alone (no decompression).
class Client {
  constructor(url, slow = false, subs = 1) {
    this.held = new Map(); this.samples = 0; this.bytes = 0; this.frames = 0; this.syncs = [];
    this.t0 = Date.now(); this.errors = [];
    this.ws = new WebSocket(url, P.PROTOCOL);
    this.ws.on('open', () => {
      this.ws.send(P.encodeHello(''));
      for (let id = 1; id <= subs; id++) this.ws.send(P.encodeSubscribe(id, 'terrain', { lod: LOD.SAMPLES }));
      if (slow) this.ws._socket.pause();
    });
    this.ws.on('message', (d) => this.onFrame(new Uint8Array(d)));
    this.ws.on('error', (e) => this.errors.push(e.message));
  }
  onFrame(u8) {
    this.bytes += u8.length; this.frames++;
    const v = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    if (u8[0] === T.CHUNK) {
      const key = `${v.getUint32(4, true)}:${v.getInt32(8, true)},${v.getInt32(12, true)},${v.getInt32(16, true)}`;
      const first = v.getUint32(32, true), n = v.getUint32(36, true);
      const had = first === 0 ? this.held.get(key) || 0 : 0;
      this.samples += n - had;
      this.held.set(key, (first === 0 ? 0 : this.held.get(key) || 0) + n);
      if (u8[1] & 1) this.deltas = (this.deltas || 0) + 1;
    } else if (u8[0] === T.SYNCED) {
      const f = P.decodeFrame(u8);
      this.syncs.push({ lsn: f.lsn, at: Date.now() - this.t0 });
    } else if (u8[0] === T.ERROR) {
      this.errors.push(P.decodeFrame(u8).message);
    }
  }
  get lastLsn() { return this.syncs.length ? this.syncs[this.syncs.length - 1].lsn : -1; }
}

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
async function metric(srv, name) {
  const r = await http(srv, 'GET', '/metrics');
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(r.text);
  return m ? Number(m[1]) : NaN;
}

const srv = await startServer(['--demo-side', '300', '--rate', '0', '--send-queue', String(SEND_QUEUE),
  '--max-frame', String(MAX_FRAME)]);
try {
  const count = async () => (await http(srv, 'GET', '/v1/fields')).json.fields[0].samples;
  const rss0 = rssMiB(srv.proc.pid);
  let rssMax = rss0, queueMax = 0;
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssMiB(srv.proc.pid)); }, 100);

  // the slow client subscribes 8 times over (about 23 MB): more than socket buffers hold
  const slow = new Client(srv.ws, true, 8);
  const clients = Array.from({ length: CLIENTS }, () => new Client(srv.ws));
  // writes while the snapshot streams: 20 batches of 500 samples over the terrain
  const rand = rng(3);
  let lastLsn = 0;
  for (let k = 0; k < 20; k++) {
    const b = { x: [], y: [], z: [] };
    for (let i = 0; i < 500; i++) { b.x.push(rand() * 250 - 125); b.y.push(rand() * 250 - 125); b.z.push(rand() * 40 - 20); }
    const r = await http(srv, 'POST', '/v1/fields/terrain/samples', b, { token: TOKEN });
    lastLsn = Math.max(lastLsn, r.json.lsn);
    queueMax = Math.max(queueMax, await metric(srv, 'lumadb_send_queue_bytes'));
    await sleep(50);
  }
  const total = await count();
  const t0 = Date.now();
  const all = await until(() => clients.every((c) => c.lastLsn >= lastLsn && c.samples === total), 120000);
  const times = clients.map((c) => c.syncs.find((s) => s.lsn >= lastLsn)?.at ?? Infinity).sort((a, b) => a - b);
  const first = clients.map((c) => c.syncs[0]?.at ?? Infinity).sort((a, b) => a - b);
  check(all, `all ${CLIENTS} clients hold all ${total} samples after every write (in ${Date.now() - t0} ms after the last write)`);
  check(clients.every((c) => c.errors.length === 0), 'no client saw an error');
  const med = first[Math.floor(first.length / 2)], worst = first[first.length - 1];
  console.log(`snapshot complete: fastest ${first[0]} ms, median ${med} ms, slowest ${worst} ms; up to date: median ${times[Math.floor(times.length / 2)]} ms, slowest ${times[times.length - 1]} ms`);
  check(worst <= Math.max(3 * med, med + 5000), `no client starves: slowest snapshot ${worst} ms vs median ${med} ms`);
  const perClient = clients.map((c) => c.bytes);
  console.log(`bytes per client: min ${Math.min(...perClient)}, max ${Math.max(...perClient)}; deltas per client: ${Math.min(...clients.map((c) => c.deltas || 0))}..${Math.max(...clients.map((c) => c.deltas || 0))}`);

  // the slow client never read: its queue is bounded, and the server stayed healthy
  queueMax = Math.max(queueMax, await metric(srv, 'lumadb_send_queue_bytes'));
  const queueNow = await metric(srv, 'lumadb_send_queue_bytes');
  console.log(`slow client so far: ${slow.samples} samples, ${slow.bytes} bytes; paused ${slow.ws._socket.isPaused()}`);
  check(queueNow <= SEND_QUEUE + MAX_FRAME, `a client that stops reading holds at most one queue + one frame (${queueNow} bytes queued)`);
  check(queueMax <= (CLIENTS + 1) * (SEND_QUEUE + MAX_FRAME), `queued bytes over all clients stayed bounded (peak ${queueMax})`);
  clearInterval(sampler);
  rssMax = Math.max(rssMax, rssMiB(srv.proc.pid));
  console.log(`server RSS: ${rss0.toFixed(0)} MiB at start, peak ${rssMax.toFixed(0)} MiB`);
  check(rssMax - rss0 < 768, `server memory stayed bounded (+${(rssMax - rss0).toFixed(0)} MiB with ${CLIENTS + 1} clients)`);
  const h = await http(srv, 'GET', '/healthz');
  check(h.status === 200, 'the server answers HTTP while a client is stuck');

  // more writes while the slow client is stuck: its pending chunks coalesce
  for (let k = 0; k < 10; k++) {
    const r = await http(srv, 'POST', '/v1/fields/terrain/samples', { x: [1 + k * 0.01], y: [1], z: [lastLsn % 7] }, { token: TOKEN });
    lastLsn = r.json.lsn;
  }
  const total2 = await count();
  slow.ws._socket.resume();
  const caught = await until(() => slow.lastLsn >= lastLsn && slow.samples === 8 * total2, 90000);
  check(caught, `the slow client catches up once it reads (${slow.samples} of 8 x ${total2} samples)`);
  check((slow.deltas || 0) <= 8 * 11, `its deltas were coalesced (${slow.deltas || 0} delta frames over 8 subscriptions for 30 writes)`);
  for (const c of [...clients, slow]) c.ws.close();
  await until(async () => (await metric(srv, 'lumadb_ws_clients')) === 0, 10000);
  check((await metric(srv, 'lumadb_send_queue_bytes')) === 0, 'queues are empty once the clients are gone');
} catch (err) {
  check(false, `unexpected: ${err.stack}`);
}
await stopServer(srv);
done();
