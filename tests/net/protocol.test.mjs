// protocol.test.mjs - the lumadb.v1 protocol and the HTTP API against a real server with
// a real WebSocket client (node `ws`): snapshot contents checked against what was
// inserted, deltas after HTTP and WebSocket writes, bad frames answered with ERROR frames
// while the connection and others stay healthy, tokens, rate limits, metrics, shutdown.
import {
  requireModule, startServer, stopServer, http, check, done, until, rng, TOKEN, WEB,
} from './lib.mjs';

const WebSocket = requireModule('ws');
const P = await import(`${WEB}/protocol.js`);
const { T, COL, LOD, ERR } = P;

// A WebSocket connection that records every decoded frame.
class Conn {
  constructor(url, userTypes = []) {
    this.frames = [];
    this.userTypes = userTypes;
    this.ws = new WebSocket(url, P.PROTOCOL);
    this.ws.binaryType = 'arraybuffer';
    this.ws.on('message', (d, isBinary) => {
      if (isBinary) this.frames.push(P.decodeFrame(new Uint8Array(d), this.userTypes));
    });
    this.closed = new Promise((r) => this.ws.on('close', (code) => r(code)));
    this.open = new Promise((r, j) => { this.ws.on('open', r); this.ws.on('error', j); });
  }
  send(b, opts) { this.ws.send(b, opts); }
  async wait(pred, ms = 10000) {
    const f = await until(() => this.frames.find(pred), ms);
    return f;
  }
  async next(type, id, ms) {
    const f = await this.wait((x) => x.type === type && (id === undefined || x.id === id) && !x.seen, ms);
    if (f) f.seen = true;
    return f;
  }
}

const srv = await startServer(['--max-frame', '65536', '--rate', '0']);
try {
  // ---------------------------------------------------------------- field + data over HTTP
  const fieldDef = { voxel_size: 1, chunk_edge: 8, user_columns: [{ name: 'tag', type: 'i32' }] };
  let r = await http(srv, 'PUT', '/v1/fields/grid', fieldDef);
  check(r.status === 401 && r.headers.get('www-authenticate') === 'Bearer', 'creating a field without a token is refused (401)');
  r = await http(srv, 'PUT', '/v1/fields/grid', fieldDef, { token: TOKEN });
  check(r.status === 201, 'PUT /v1/fields/grid with the token creates the field');

  const rand = rng(7), N = 6000;
  const data = { x: [], y: [], z: [], r: [], g: [], b: [], intensity: [], t: [], tag: [] };
  for (let i = 0; i < N; i++) {
    data.x.push(-20 + rand() * 52); data.y.push(-4 + rand() * 28); data.z.push(rand() * 20);
    data.r.push(rand()); data.g.push(rand()); data.b.push(rand());
    data.intensity.push(rand() * 4); data.t.push(1000 * i); data.tag.push(i);
  }
  r = await http(srv, 'POST', '/v1/fields/grid/samples', data);
  check(r.status === 401, 'an insert without a token is refused (401)');
  r = await http(srv, 'POST', '/v1/fields/grid/samples', data, { token: 'wrong-token-xxxxxxxx' });
  check(r.status === 401, 'an insert with a wrong token is refused (401)');
  r = await http(srv, 'POST', '/v1/fields/grid/samples', data, { token: TOKEN });
  check(r.status === 200 && r.json.inserted === N && r.json.lsn > 0, `HTTP insert of ${N} samples acknowledged with an lsn`);
  r = await http(srv, 'GET', '/v1/fields');
  const info = r.json.fields.find((f) => f.name === 'grid');
  check(info && info.samples === N && info.user_columns[0].name === 'tag', 'GET /v1/fields lists the field with its count');

  // ---------------------------------------------------------------- subscribe + snapshot
  const userTypes = [{ name: 'tag', type: 'i32' }];
  const a = new Conn(srv.ws, userTypes);
  await a.open;
  a.send(P.encodeSubscribe(1, 'grid'));
  let e = await a.next(T.ERROR);
  check(e && e.code === ERR.HELLO, 'a subscribe before hello gets a HELLO error frame');
  a.send(P.encodeHello(''));
  const w = await a.next(T.WELCOME);
  check(w && w.version === 1 && !w.canWrite && w.maxFrame === 65536, 'hello without a token is welcomed read-only');

  const box = { kind: 'box', min: [0, 0, 0], max: [15.5, 15.5, 15.5] };
  const cols = COL.POS | COL.DIR | COL.RGB | COL.INTENSITY | COL.T | COL.USER(0);
  a.send(P.encodeSubscribe(7, 'grid', { region: box, lod: LOD.SAMPLES, columns: cols }));
  const sub = await a.next(T.SUBSCRIBED, 7);
  const synced = await a.next(T.SYNCED, 7);
  check(sub && sub.mode === 'samples' && synced, 'subscription is announced and its snapshot ends with SYNCED');
  const chunkKey = (c) => c.join(',');
  const inBox = (i) => [data.x[i], data.y[i], data.z[i]].every((v) => Math.floor(v / 8) >= 0 && Math.floor(v / 8) <= 1);
  const expected = [];
  for (let i = 0; i < N; i++) if (inBox(i)) expected.push(i);
  const chunks = new Map();
  for (const f of a.frames.filter((x) => x.type === T.CHUNK && x.id === 7)) {
    if (f.first === 0) chunks.set(chunkKey(f.coord), []);
    chunks.get(chunkKey(f.coord)).push(f);
  }
  check(chunks.size === sub.chunks && synced.chunks === sub.chunks, `all ${sub.chunks} chunks of the region arrived`);
  const got = new Map();
  let shapeOk = true;
  for (const [key, parts] of chunks) {
    const total = parts.reduce((s, f) => s + f.n, 0);
    shapeOk &&= total === parts[0].total;
    for (const f of parts) {
      for (let k = 0; k < f.n; k++) {
        const c = f.cols;
        shapeOk &&= chunkKey([c.x[k], c.y[k], c.z[k]].map((v) => Math.floor(v / 8))) === key;
        got.set(c.tag[k], { x: c.x[k], y: c.y[k], z: c.z[k], r: c.r[k], g: c.g[k], b: c.b[k],
          intensity: c.intensity[k], t: Number(c.t[k]), dir: P.octDecode(c.dir[2 * k], c.dir[2 * k + 1]) });
      }
    }
  }
  check(shapeOk, 'each chunk holds only its own samples and its parts add up to its total');
  check(got.size === expected.length && sub.samples === expected.length,
    `the snapshot holds exactly the ${expected.length} inserted samples of those chunks`);
  let same = true;
  for (const i of expected) {
    const s = got.get(data.tag[i]);
    same &&= !!s && s.x === Math.fround(data.x[i]) && s.y === Math.fround(data.y[i]) && s.z === Math.fround(data.z[i]) &&
      Math.abs(s.r - Math.round(data.r[i] * 255)) <= 1 && Math.abs(s.g - Math.round(data.g[i] * 255)) <= 1 &&
      Math.abs(s.b - Math.round(data.b[i] * 255)) <= 1 && s.intensity === Math.fround(data.intensity[i]) &&
      s.t === data.t[i] && Math.abs(s.dir[2] - 1) < 1e-3;
  }
  check(same, 'positions, colours, intensity, time, user column and direction match the inserted values');

  // compressed frames really are compressed and the bytes add up
  check(a.frames.some((f) => f.type === T.CHUNK), 'chunk frames decode (LZ4 columns)');

  // ---------------------------------------------------------------- deltas after HTTP writes
  const before = a.frames.length;
  r = await http(srv, 'POST', '/v1/fields/grid/samples',
    { x: [1.5, 2.5], y: [1.5, 1.5], z: [1.5, 1.5], tag: [100001, 100002] }, { token: TOKEN });
  const lsn1 = r.json.lsn;
  r = await http(srv, 'POST', '/v1/fields/grid/samples', { x: [40.5], y: [40.5], z: [40.5], tag: [100003] }, { token: TOKEN });
  const lsn2 = r.json.lsn;
  const s2 = await a.wait((f) => f.type === T.SYNCED && f.id === 7 && f.lsn >= lsn2);
  const deltas = a.frames.slice(before).filter((f) => f.type === T.CHUNK);
  const d0 = deltas.find((f) => chunkKey(f.coord) === '0,0,0');
  check(s2 && d0 && d0.delta && d0.lsn === lsn1 && d0.total === chunks.get('0,0,0').reduce((s, f) => s + f.n, 0) + 2,
    'an HTTP insert sends the changed chunk as a delta in its newest version');
  check(d0 && Array.from(d0.cols.tag).includes(100001) && Array.from(d0.cols.tag).includes(100002), 'the delta holds the new samples');
  check(!deltas.some((f) => chunkKey(f.coord) === '5,5,5'), 'a write outside the region sends nothing');

  // ---------------------------------------------------------------- writes over WebSocket
  a.send(P.encodeInsert(9, 'grid', { x: [3], y: [3], z: [3] }));
  e = await a.next(T.ERROR, 9);
  check(e && e.code === ERR.UNAUTHORIZED, 'a WebSocket insert without a token gets UNAUTHORIZED');
  const b = new Conn(srv.ws);
  await b.open;
  b.send(P.encodeHello('not-the-token'));
  e = await b.next(T.ERROR);
  check(e && e.code === ERR.UNAUTHORIZED, 'hello with a wrong token gets UNAUTHORIZED');
  b.send(P.encodeHello(TOKEN));
  const wb = await b.next(T.WELCOME);
  check(wb && wb.canWrite, 'hello with the token may write');
  const mark = a.frames.length;
  b.send(P.encodeInsert(10, 'grid', { rows: [{ x: 9.5, y: 9.5, z: 9.5, tag: 100004 }, { x: 9.6, y: 9.5, z: 9.5, tag: 100005 }] }));
  const ack = await b.next(T.ACK, 10);
  check(ack && ack.n === 2 && ack.lsn > lsn2, 'a WebSocket insert (rows) is acknowledged with its lsn');
  const d1 = await a.wait((f, i) => f.type === T.CHUNK && chunkKey(f.coord) === '1,1,1' && f.lsn === ack.lsn);
  check(d1 && d1.delta && a.frames.indexOf(d1) >= mark, 'the WebSocket insert reaches the other subscriber as a delta');

  // ---------------------------------------------------------------- queries
  a.send(P.encodeQuery(11, { field: 'grid', nearest: { p: [1.5, 1.5, 1.5], k: 2 } }));
  let res = await a.next(T.RESULT, 11);
  check(res && res.json.n === 2 && res.json.distance[0] === 0 && [100001, 100002].includes(res.json.tag[0]),
    'a WebSocket query returns rows with distances');
  a.send(P.encodeQuery(12, '{"field": "grid",\n  "box": {"min": [0,0], "max": [1,1,1]}}'));
  e = await a.next(T.ERROR, 12);
  check(e && e.code === ERR.REQUEST && /box\.min/.test(JSON.parse(e.message).error.message), 'a bad query gets a REQUEST error with the reason');
  r = await http(srv, 'POST', '/v1/query', '{"field": "grid",\n  "box": {"min": [0,0,0] "max": [1,1,1]}}');
  check(r.status === 400 && r.json.error.line === 2 && r.json.error.column === 26, 'HTTP query syntax errors carry line:column');
  r = await http(srv, 'POST', '/v1/query', { field: 'grid', aggregate: { column: 'intensity' }, box });
  const inside = (x, y, z) => [x, y, z].every((v) => v >= 0 && v <= 15.5);
  const boxCount = data.x.filter((x, i) => inside(x, data.y[i], data.z[i])).length + 4;
  check(r.status === 200 && r.json.count === boxCount, `HTTP aggregate over a box counts its ${boxCount} samples`);
  r = await http(srv, 'POST', '/v1/query', { field: 'grid', sphere: { center: [1.5, 1.5, 1.5], radius: 0.01 } });
  check(r.status === 200 && r.json.n === 1 && r.json.tag[0] === 100001, 'HTTP sphere query returns the sample');
  r = await http(srv, 'POST', '/v1/query', { field: 'grid', voxels: { level: 0 }, box: { min: [1.1, 1.1, 1.1], max: [1.9, 1.9, 1.9] } });
  const vox111 = data.x.filter((x, i) => [x, data.y[i], data.z[i]].every((v) => Math.floor(v) === 1)).length + 1;
  check(r.status === 200 && r.json.n === 1 && r.json.voxels[0].count === vox111, `HTTP voxel query returns the aggregated voxel (${r.text.slice(0, 200)} vs ${vox111})`);
  r = await http(srv, 'POST', '/v1/query', 'SELECT count(*) FROM grid WHERE INSIDE BOX (0,0,0) TO (15.5,15.5,15.5)');
  check(r.status === 200 && r.json.rows[0][0] === boxCount, `LQL over HTTP counts the box's ${boxCount} samples (${r.text.slice(0, 120)})`);
  r = await http(srv, 'POST', '/v1/query', 'DELETE FROM grid WHERE TRUE');
  check(r.status >= 400 && r.json.error.code === 'LM_EREADONLY', 'LQL writes are refused on the read endpoint');
  r = await http(srv, 'POST', '/v1/query', 'SELECT count(*)\n FROM gird');
  check(r.status === 404 && r.json.error.line === 2 && /did you mean 'grid'/.test(r.json.error.message), 'LQL errors carry line:column and a suggestion');
  r = await http(srv, 'POST', '/v1/query', { field: 'nope' });
  check(r.status === 404 && r.json.error.code === 'LM_ENOFIELD', 'an unknown field is 404');

  // ---------------------------------------------------------------- bad frames
  const c = new Conn(srv.ws);
  await c.open;
  c.send(new Uint8Array([1, 2, 3]));
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.MALFORMED, 'a 3-byte frame gets MALFORMED');
  c.send('hello as text');
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.MALFORMED, 'a text frame gets MALFORMED');
  c.send(P.encodeHello('', 9));
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.VERSION, 'hello with version 9 gets VERSION');
  c.send(new Uint8Array(100000));
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.TOOLARGE, 'a 100 kB frame (limit 64 kB) gets TOOLARGE');
  const big = new Uint8Array(200000); big[0] = T.HELLO;
  c.send(big, { fin: true, compress: false });
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.TOOLARGE, 'a second oversized frame gets TOOLARGE too');
  c.send(P.encodeHello(''));
  check(await c.next(T.WELCOME), 'after the errors the same connection says hello');
  c.send(new Uint8Array([0x7f, 0, 0, 0, 5, 0, 0, 0]));
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.TYPE && e.id === 5, 'an unknown frame type gets TYPE with its id');
  const badSub = P.encodeSubscribe(3, 'grid', { region: box });
  c.send(badSub.subarray(0, badSub.length - 4));
  e = await c.next(T.ERROR);
  check(e && e.code === ERR.MALFORMED, 'a truncated subscribe gets MALFORMED');
  c.send(P.encodeSubscribe(4, 'nosuchfield'));
  e = await c.next(T.ERROR, 4);
  check(e && e.code === ERR.NOFIELD, 'subscribing to an unknown field gets NOFIELD');
  c.send(P.encodeUnsubscribe(99));
  e = await c.next(T.ERROR, 99);
  check(e && e.code === ERR.NOSUB, 'unsubscribing an unknown id gets NOSUB');
  c.send(P.encodeQuery(13, { field: 'grid', aggregate: {} }));
  res = await c.next(T.RESULT, 13);
  check(res && res.json.count > 0, 'the connection still answers queries after the bad frames');
  a.send(P.encodeQuery(14, { field: 'grid', aggregate: {} }));
  res = await a.next(T.RESULT, 14);
  check(res && res.json.count === res.json.count, 'other connections were not affected');

  // ---------------------------------------------------------------- voxel subscriptions
  c.send(P.encodeSubscribe(20, 'grid', { lod: 1 }));
  const vs = await c.next(T.SUBSCRIBED, 20);
  const vsync = await c.next(T.SYNCED, 20);
  const vframes = c.frames.filter((f) => f.type === T.VOXELS && f.id === 20);
  const vcount = vframes.reduce((s, f) => s + Array.from(f.count).reduce((x, y) => x + y, 0), 0);
  r = await http(srv, 'GET', '/v1/fields');
  const total = r.json.fields.find((f) => f.name === 'grid').samples;
  check(vs && vs.mode === 'voxels' && vs.level === 1 && vsync && vcount === total,
    `a level-1 voxel subscription covers every sample once (${vcount} of ${total})`);
  const cam = { kind: 'camera', eye: [-30, 4, 10], target: [0, 4, 10], up: [0, 0, 1], fov: 60, aspect: 1, near: 0.5, far: 20 };
  c.send(P.encodeSubscribe(22, 'grid', { region: cam, lod: LOD.SAMPLES }));
  const cs = await c.next(T.SUBSCRIBED, 22);
  await c.next(T.SYNCED, 22);
  const camChunks = c.frames.filter((f) => f.type === T.CHUNK && f.id === 22);
  check(cs && cs.chunks > 0 && camChunks.length >= cs.chunks && camChunks.every((f) => f.coord[0] <= -2),
    `a camera-frustum subscription gets only the chunks in view (${cs && cs.chunks}, x chunk <= -2)`);
  // replacing a subscription sends only what the client does not hold yet
  const boxA = { kind: 'box', min: [0, 0, 0], max: [15.5, 15.5, 15.5] };
  const boxB = { kind: 'box', min: [8.5, 0, 0], max: [23.5, 15.5, 15.5] };
  c.send(P.encodeSubscribe(30, 'grid', { region: boxA, lod: LOD.SAMPLES }));
  await c.next(T.SUBSCRIBED, 30);
  await c.next(T.SYNCED, 30);
  r = await http(srv, 'POST', '/v1/fields/grid/samples', { x: [9.5], y: [1.5], z: [1.5] }, { token: TOKEN });
  await c.wait((f) => f.type === T.SYNCED && f.id === 30 && f.lsn >= r.json.lsn);
  const mark30 = c.frames.length;
  c.send(P.encodeSubscribe(30, 'grid', { region: boxB, lod: LOD.SAMPLES }));
  const rb = await c.next(T.SUBSCRIBED, 30);
  await c.next(T.SYNCED, 30);
  const moved = c.frames.slice(mark30).filter((f) => f.type === T.CHUNK && f.id === 30);
  check(rb && rb.chunks > moved.length && moved.length > 0 && moved.every((f) => f.coord[0] === 2),
    `moving a subscription's box sends only the chunks new to it (${moved.length} of ${rb && rb.chunks})`);
  const budget = new Conn(srv.ws);
  await budget.open;
  budget.send(P.encodeHello(''));
  budget.send(P.encodeSubscribe(21, 'grid', { budget: 500 }));
  const bs = await budget.next(T.SUBSCRIBED, 21);
  check(bs && bs.mode === 'voxels' && bs.level >= 1, `a point budget of 500 picks voxels at level ${bs && bs.level}`);
  budget.ws.close();

  // ---------------------------------------------------------------- metrics + health
  r = await http(srv, 'GET', '/metrics');
  check(r.status === 200 && /lumadb_ws_clients \d+/.test(r.text) && /lumadb_request_duration_seconds_bucket\{route="query",le="\+Inf"\}/.test(r.text) &&
    /lumadb_field_samples\{field="grid"\} \d+/.test(r.text) && /lumadb_bytes_streamed_total [1-9]/.test(r.text),
  '/metrics has clients, latency histograms, field sizes and bytes streamed');
  r = await http(srv, 'GET', '/healthz');
  check(r.status === 200 && r.json.status === 'ok', '/healthz answers ok');

  // ---------------------------------------------------------------- shutdown tells clients
  b.ws.close();
  c.ws.close();
  const byeWait = a.wait((f) => f.type === T.BYE, 15000);
  const stopped = stopServer(srv);
  const bye = await byeWait;
  const code = await a.closed;
  check(bye && bye.code === 1001 && code === 1001, 'on SIGTERM a client gets BYE and a 1001 close');
  await stopped;
} catch (err) {
  check(false, `unexpected: ${err.stack}`);
  srv.proc.kill('SIGKILL');
  console.log(srv.log.slice(-3000));
}

// ---------------------------------------------------------------- rate limit + read token
const rl = await startServer(['--rate', '2', '--burst', '2', '--read-token', '--ping', '1']);
try {
  let r = await http(rl, 'GET', '/v1/fields');
  check(r.status === 401, 'with --read-token, reads without the token are refused');
  r = await http(rl, 'GET', '/healthz');
  check(r.status === 200, '/healthz stays open');
  const q = { field: 'none' };
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((r = await http(rl, 'POST', '/v1/query', q, { token: TOKEN })).status);
  check(codes[0] === 404 && codes[1] === 404 && codes[2] === 429 && Number(r.headers.get('retry-after')) >= 1 &&
    /rate limit/.test(r.json.error.message), `queries past the burst get 429 with Retry-After (${codes})`);
  const c = new Conn(rl.ws);
  let pinged = false;
  c.ws.on('ping', () => { pinged = true; });
  await c.open;
  c.send(P.encodeHello(''));
  const e = await c.next(T.ERROR);
  check(e && e.code === ERR.UNAUTHORIZED, 'with --read-token, hello without a token is refused');
  c.send(P.encodeHello(TOKEN));
  await c.next(T.WELCOME);
  c.send(P.encodeQuery(1, q));
  const e2 = await c.next(T.ERROR, 1);
  check(e2 && e2.code === ERR.RATE, 'a WebSocket query past the limit gets RATE');
  check(await until(() => pinged, 5000), 'an idle client is pinged (--ping 1)');
  c.ws.close();
} catch (err) {
  check(false, `unexpected: ${err.stack}`);
}
await stopServer(rl, 'rate-limited server');
done();
