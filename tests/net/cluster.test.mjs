// cluster.test.mjs - `lumadb serve --node-id --peers`: three server processes on
// 127.0.0.1 form a Raft cluster. Checked with real HTTP and WebSocket clients:
// - a field created and samples written through any node (followers forward to the
//   leader), over HTTP and WebSocket;
// - subscribers on every node, followers included, receive the writes as deltas;
// - all nodes converge to identical per-chunk digests;
// - a linearizable read on one follower sees a write just acknowledged by another;
// - kill -9 of the leader while a client writes through a follower: a new leader, every
//   acknowledged write present exactly once (forwarded retries are deduplicated), no
//   phantom; the killed node restarts and catches up to the same digests;
// - clean SIGTERM shutdown with an empty sanitizer report.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  requireModule, BIN, TOKEN, WEB, check, done, until, sleep,
} from './lib.mjs';

const WebSocket = requireModule('ws');
const P = await import(`${WEB}/protocol.js`);
const { T, COL, LOD } = P;

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

// Raft needs fsync; tmpfs keeps the test fast where it exists.
const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'lumadb-serve-cluster-'));
const nodes = [];
for (let id = 1; id <= 3; id++) {
  nodes.push({ id, raft: await freePort(), client: await freePort(), http: await freePort(), dir: join(root, `n${id}`) });
}
const peers = nodes.map((n) => `${n.id}=127.0.0.1:${n.raft}/${n.client}`).join(',');

function start(n) {
  n.log = '';
  n.proc = spawn(BIN, ['serve', n.dir, '--port', String(n.http), '--token', TOKEN, '--rate', '0',
    '--node-id', String(n.id), '--peers', peers,
    // small snapshot intervals: the restarted node catches up through a snapshot
    '--snapshot-threshold', '32', '--snapshot-trailing', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  n.proc.stdout.on('data', (d) => { n.log += d; });
  n.proc.stderr.on('data', (d) => { n.log += d; });
  n.exited = new Promise((r) => n.proc.on('exit', (code, sig) => r({ code, sig })));
  n.url = `http://127.0.0.1:${n.http}`;
  n.alive = true;
}

async function req(n, method, path, body, { token, timeout = 30000, headers: extra = {} } = {}) {
  const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
  try {
    const r = await fetch(n.url + path, {
      method, headers, signal: AbortSignal.timeout(timeout),
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text };
  } catch (e) {
    return { status: 0, json: null, text: String(e) };
  }
}

const status = async (n) => (await req(n, 'GET', '/v1/cluster', undefined, { timeout: 2000 })).json;

// The ready leader among the live nodes, as they report it.
async function leader(except = 0) {
  for (const n of nodes.filter((x) => x.alive && x.id !== except)) {
    const s = await status(n);
    if (s && s.role === 'leader' && s.ready) return n;
  }
  return null;
}

// Per-node digests of the live nodes, once they agree (or the last ones seen).
async function converged(ms = 20000) {
  let last = null;
  const ok = await until(async () => {
    const ds = [];
    for (const n of nodes.filter((x) => x.alive)) {
      const r = await req(n, 'GET', '/v1/cluster/digest', undefined, { timeout: 5000 });
      if (r.status !== 200) return false;
      ds.push(r.json);
    }
    last = ds;
    // chunk contents and their lsns; not db_index: a node restored from a snapshot taken
    // at a barrier entry counts that entry, the others only the last write before it
    const f0 = JSON.stringify(ds[0].fields);
    return ds.every((d) => JSON.stringify(d.fields) === f0);
  }, ms);
  if (!ok && last) console.log('digests that differ:', JSON.stringify(last).slice(0, 2000));
  return { ok: !!ok, digests: last };
}

// A subscriber that keeps, per chunk, the samples' k values of the newest version seen.
class Subscriber {
  constructor(n) {
    this.chunks = new Map();
    this.deltas = 0;
    this.ws = new WebSocket(`ws://127.0.0.1:${n.http}/`, P.PROTOCOL);
    this.ws.binaryType = 'arraybuffer';
    this.frames = [];
    this.ws.on('message', (d, bin) => {
      if (!bin) return;
      const f = P.decodeFrame(new Uint8Array(d), [{ name: 'k', type: 'i32' }]);
      this.frames.push(f);
      if (f.type !== T.CHUNK) return;
      if (f.delta) this.deltas++;
      const key = f.coord.join(',');
      let c = this.chunks.get(key);
      if (!c || c.lsn < f.lsn) this.chunks.set(key, c = { lsn: f.lsn, ks: [] });
      if (c.lsn === f.lsn) c.ks.push(...f.cols.k);
    });
    this.open = new Promise((r, j) => { this.ws.on('open', r); this.ws.on('error', j); });
  }
  has(f) { return this.frames.some(f); }
  keys() { const all = new Set(); for (const c of this.chunks.values()) c.ks.forEach((k) => all.add(k)); return all; }
}

let nextK = 1;
const acked = new Set(), tried = new Set();
const batch = (n) => {
  const b = { x: [], y: [], z: [], k: [] };
  for (let i = 0; i < n; i++) {
    const k = nextK++;
    tried.add(k);
    b.x.push((k * 7) % 64 + 0.5); b.y.push((k * 13) % 64 + 0.5); b.z.push((k * 3) % 16 + 0.5); b.k.push(k);
  }
  return b;
};
async function write(n, size) {
  const b = batch(size);
  const r = await req(n, 'POST', '/v1/fields/rays/samples', b, { token: TOKEN });
  if (r.status === 200 && r.json.inserted === size) b.k.forEach((k) => acked.add(k));
  return r;
}
async function keysOn(n) {
  const r = await req(n, 'POST', '/v1/query?consistency=linearizable', 'SELECT k FROM rays LIMIT 1000000');
  return r.status === 200 ? r.json.rows.map((row) => row[0]) : null;
}

nodes.forEach(start);
try {
  const up = await until(() => nodes.every((n) => /listening on http/.test(n.log)), 120000);
  check(up, 'three `lumadb serve --node-id --peers` processes listen');
  let L = await until(() => leader(), 15000);
  check(L, `a leader is elected (node ${L && L.id})`);
  const [F1, F2] = nodes.filter((n) => n !== L);

  // ---------------------------------------------------------------- writes through any node
  let r = await req(F1, 'PUT', '/v1/fields/rays', { voxel_size: 1, chunk_edge: 8, user_columns: [{ name: 'k', type: 'i32' }] }, { token: TOKEN });
  check(r.status === 201 && r.json.created === 'rays', `a field created through a follower (node ${F1.id}) is acknowledged (${r.status})`);
  r = await req(F2, 'PUT', '/v1/fields/rays', { voxel_size: 1 }, { token: TOKEN });
  check(r.status === 409, `creating it again through the other follower is refused: it exists (${r.status})`);

  // reads are local: each node serves the field once it has applied its creation
  const seen = await until(async () => {
    for (const n of nodes) {
      const f = await req(n, 'GET', '/v1/fields');
      if (!f.json || !f.json.fields.some((x) => x.name === 'rays')) return false;
    }
    return true;
  }, 10000);
  check(seen, 'every node lists the new field');
  const subs = nodes.map((n) => new Subscriber(n));
  await Promise.all(subs.map((s) => s.open));
  for (const s of subs) {
    s.ws.send(P.encodeHello(''));
    s.ws.send(P.encodeSubscribe(1, 'rays', { lod: LOD.SAMPLES, columns: COL.POS | COL.USER(0) }));
  }
  const synced = await until(() => subs.every((s) => s.has((f) => f.type === T.SYNCED)), 10000);
  check(synced, 'a subscriber on every node is synced');
  if (!synced) subs.forEach((s, i) => console.log(`node ${nodes[i].id}:`, s.frames.map((f) => f.message || f.type)));

  let allOk = true;
  for (let i = 0; i < 9; i++) {
    r = await write(nodes[i % 3], 40);
    allOk = allOk && r.status === 200;
  }
  check(allOk, 'HTTP inserts through each of the three nodes are acknowledged');
  r = await write(F2, 1); // right after, from a node that may not have applied the field
  check(r.status === 200, 'an insert through a follower is acknowledged with the log index');

  const wsw = new WebSocket(`ws://127.0.0.1:${F2.http}/`, P.PROTOCOL);
  wsw.binaryType = 'arraybuffer';
  const wframes = [];
  wsw.on('message', (d) => wframes.push(P.decodeFrame(new Uint8Array(d))));
  await new Promise((res, rej) => { wsw.on('open', res); wsw.on('error', rej); });
  wsw.send(P.encodeHello(TOKEN));
  const wb = batch(25);
  wsw.send(P.encodeInsert(77, 'rays', wb));
  const ack = await until(() => wframes.find((f) => f.type === T.ACK && f.id === 77), 15000);
  check(ack && ack.n === 25 && ack.lsn > 0, `a WebSocket insert through follower ${F2.id} is acknowledged`);
  if (ack) wb.k.forEach((k) => acked.add(k));

  // ---------------------------------------------------------------- deltas on every node
  const want = [...acked];
  const got = await until(() => subs.every((s) => want.every((k) => s.keys().has(k))), 15000);
  check(got, `subscribers on all three nodes receive all ${want.length} written samples as deltas`);
  check(subs.every((s) => s.deltas > 0 && s.keys().size === want.length), 'each subscriber holds exactly the written samples');

  // ---------------------------------------------------------------- convergence
  let c = await converged();
  const total = c.digests && c.digests[0].fields[0] ? c.digests[0].fields[0].samples : -1;
  check(c.ok && total === acked.size, `all nodes converge to identical chunk digests (${total} samples, ${c.digests ? c.digests[0].fields[0].chunks.length : 0} chunks)`);

  // many writers at once through the followers: more than the forwarding threads
  const burst = await Promise.all(Array.from({ length: 48 }, (_, i) => write([F1, F2][i % 2], 10)));
  check(burst.every((x) => x.status === 200), `48 concurrent writes through the followers are all acknowledged (${burst.filter((x) => x.status === 200).length})`);

  // a write retried with the same Idempotency-Key, through another node, applies once
  const idem = batch(5);
  const key = { 'idempotency-key': `test-${Date.now()}` };
  const first = await req(F1, 'POST', '/v1/fields/rays/samples', idem, { token: TOKEN, headers: key });
  const again = await req(F2, 'POST', '/v1/fields/rays/samples', idem, { token: TOKEN, headers: key });
  if (first.status === 200) idem.k.forEach((k) => acked.add(k));
  const idemCount = await req(F2, 'POST', '/v1/query?consistency=linearizable', 'SELECT count(*) FROM rays');
  check(first.status === 200 && again.status === 200 && again.json.lsn === first.json.lsn &&
    idemCount.json.rows[0][0] === acked.size,
  `a write retried with its Idempotency-Key through another node gets the first answer (lsn ${first.json && first.json.lsn}) and applies once`);
  const long = await req(F1, 'POST', '/v1/fields/rays/samples', batch(1), { token: TOKEN, headers: { 'idempotency-key': 'x'.repeat(200) } });
  check(long.status === 400 && /Idempotency-Key/.test(long.json.error.message), 'an Idempotency-Key over 128 bytes is refused');

  // ---------------------------------------------------------------- linearizable reads
  let linOk = true;
  for (let i = 0; i < 5; i++) {
    r = await write(F1, 3);
    const q = await req(F2, 'POST', '/v1/query?consistency=linearizable', 'SELECT count(*) FROM rays');
    linOk = linOk && r.status === 200 && q.status === 200 && q.json.rows[0][0] === acked.size;
  }
  check(linOk, 'a linearizable read on one follower sees the write another follower just acknowledged');
  const rs = new WebSocket(`ws://127.0.0.1:${F1.http}/`, P.PROTOCOL);
  rs.binaryType = 'arraybuffer';
  const rframes = [];
  rs.on('message', (d) => rframes.push(P.decodeFrame(new Uint8Array(d))));
  await new Promise((res, rej) => { rs.on('open', res); rs.on('error', rej); });
  rs.send(P.encodeHello(''));
  await write(F2, 2);
  rs.send(P.encodeQuery(5, 'SELECT count(*) FROM rays', { linearizable: true }));
  const res = await until(() => rframes.find((f) => f.type === T.RESULT && f.id === 5), 10000);
  check(res && res.json.rows[0][0] === acked.size, 'a linearizable WebSocket query on a follower sees it too');
  r = await req(F1, 'POST', '/v1/query?consistency=sometimes', 'SELECT count(*) FROM rays');
  check(r.status === 400 && /linearizable/.test(r.json.error.message), 'an unknown consistency level is refused with a message');
  rs.close(); wsw.close();
  subs.forEach((s) => s.ws.close());

  // ---------------------------------------------------------------- leader killed mid-stream
  L = await leader();
  const via = nodes.find((n) => n !== L && n.alive);
  let stop = false, acks = 0, failures = 0;
  const stream = (async () => {
    while (!stop) {
      const w = await write(via, 20);
      if (w.status === 200) acks++; else failures++;
    }
  })();
  await until(() => acks >= 10, 15000);
  const t0 = Date.now();
  L.proc.kill('SIGKILL');
  L.alive = false;
  await L.exited;
  const L2 = await until(() => leader(L.id), 10000);
  const failover = Date.now() - t0;
  check(L2 && L2 !== L, `a new leader (node ${L2 && L2.id}) after the leader was killed (${failover} ms, polled over HTTP)`);
  const acksBefore = acks;
  await until(() => acks >= acksBefore + 10, 20000);
  stop = true;
  await stream;
  check(acks >= acksBefore + 10, `writes through follower ${via.id} go on after the failover (${acks} acknowledged, ${failures} failed)`);

  for (const n of nodes.filter((x) => x.alive)) {
    const ks = await keysOn(n);
    const set = new Set(ks || []);
    const missing = [...acked].filter((k) => !set.has(k));
    const phantom = [...set].filter((k) => !tried.has(k));
    check(ks && ks.length === set.size && missing.length === 0 && phantom.length === 0,
      `node ${n.id} holds every acknowledged write exactly once, no phantom (${ks && ks.length} samples, ` +
      `${missing.length} missing, ${ks ? ks.length - set.size : '?'} duplicated)`);
  }

  // ---------------------------------------------------------------- the killed node comes back
  start(L);
  await until(() => /listening on http/.test(L.log), 60000);
  c = await converged(30000);
  const st = await status(L);
  check(c.ok && c.digests.length === 3 && st && st.snapshots_restored >= 1,
    `the restarted node ${L.id} catches up to identical digests (${st && st.snapshots_restored} snapshot(s) restored)`);
} finally {
  for (const n of nodes.filter((x) => x.alive)) n.proc.kill('SIGTERM');
  for (const n of nodes.filter((x) => x.alive)) {
    const t = setTimeout(() => n.proc.kill('SIGKILL'), 20000);
    const { code, sig } = await n.exited;
    clearTimeout(t);
    const bad = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(n.log);
    check(code === 0 && !sig && !bad, `node ${n.id} stops cleanly on SIGTERM (exit ${code}${sig ? ' ' + sig : ''})`);
    if (code !== 0 || bad) console.log(n.log.slice(-4000));
  }
  rmSync(root, { recursive: true, force: true });
}
done();
