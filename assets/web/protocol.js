// protocol.js - the lumadb.v1 WebSocket protocol for browsers and node: frame encoders,
// the frame decoder (with an LZ4 block decoder) and a small promise-based client.
// Byte tables: docs/PROTOCOL.md (and net/wire.c on the server). Little-endian throughout.

export const PROTOCOL = 'lumadb.v1';
export const VERSION = 1;
export const T = {
  HELLO: 0x01, SUBSCRIBE: 0x02, UNSUBSCRIBE: 0x03, QUERY: 0x04, INSERT: 0x05,
  WELCOME: 0x80, CHUNK: 0x81, VOXELS: 0x82, SUBSCRIBED: 0x83, SYNCED: 0x84, RESULT: 0x85,
  ACK: 0x86, BYE: 0x8e, ERROR: 0x8f,
};
export const COL = { POS: 0x01, DIR: 0x02, RGB: 0x04, INTENSITY: 0x08, T: 0x10, USER: (i) => 0x100 << i };
export const LOD = { AUTO: 255, SAMPLES: 254 };
export const ERR = {
  MALFORMED: 1, VERSION: 2, TOOLARGE: 3, HELLO: 4, UNAUTHORIZED: 5, RATE: 6, NOFIELD: 7,
  REQUEST: 8, TYPE: 9, LIMIT: 10, NOSUB: 11, INTERNAL: 12, UNAVAILABLE: 13,
};
const REGION = { all: [0, 0], box: [1, 6], sphere: [2, 4], camera: [3, 13] };
const enc = new TextEncoder();
const dec = new TextDecoder();

function header(type, id, payload) {
  const b = new Uint8Array(8 + payload);
  const v = new DataView(b.buffer);
  b[0] = type;
  v.setUint32(4, id >>> 0, true);
  return [b, v];
}

export function encodeHello(token = '', version = VERSION) {
  const t = enc.encode(token);
  const [b, v] = header(T.HELLO, 0, 4 + t.length);
  v.setUint16(8, version, true);
  v.setUint16(10, t.length, true);
  b.set(t, 12);
  return b;
}

// region: {kind:'all'} | {kind:'box', min, max} | {kind:'sphere', center, radius} |
// {kind:'camera', eye, target, up, fov, aspect, near, far}
export function encodeSubscribe(id, field, { region = { kind: 'all' }, lod = LOD.AUTO, budget = 0, columns = 0 } = {}) {
  const name = enc.encode(field);
  const [kind, nf] = REGION[region.kind];
  const [b, v] = header(T.SUBSCRIBE, id, 12 + name.length + 4 * nf);
  b[8] = kind; b[9] = lod; b[10] = name.length;
  v.setUint32(12, budget, true);
  v.setUint32(16, columns, true);
  b.set(name, 20);
  const f = region.kind === 'box' ? [...region.min, ...region.max]
    : region.kind === 'sphere' ? [...region.center, region.radius]
      : region.kind === 'camera' ? [...region.eye, ...region.target, ...(region.up || [0, 0, 1]),
        region.fov, region.aspect, region.near, region.far] : [];
  f.forEach((x, i) => v.setFloat32(20 + name.length + 4 * i, x, true));
  return b;
}

export function encodeUnsubscribe(id) { return header(T.UNSUBSCRIBE, id, 0)[0]; }

// linearizable: on a replicated server, read only after a fence (see PROTOCOL.md).
export function encodeQuery(id, query, { linearizable = false } = {}) {
  const q = enc.encode(typeof query === 'string' ? query : JSON.stringify(query));
  const [b] = header(T.QUERY, id, q.length);
  b[1] = linearizable ? 1 : 0;
  b.set(q, 8);
  return b;
}

export function encodeInsert(id, field, batch) {
  const name = enc.encode(field);
  const j = enc.encode(typeof batch === 'string' ? batch : JSON.stringify(batch));
  const [b] = header(T.INSERT, id, 1 + name.length + j.length);
  b[8] = name.length;
  b.set(name, 9);
  b.set(j, 9 + name.length);
  return b;
}

// Decodes an LZ4 block (no frame header) of known decoded size.
export function lz4DecodeBlock(src, size) {
  const out = new Uint8Array(size);
  let s = 0, d = 0;
  while (s < src.length) {
    const tok = src[s++];
    let lit = tok >> 4;
    if (lit === 15) { let x; do { x = src[s++]; lit += x; } while (x === 255); }
    if (s + lit > src.length || d + lit > size) throw new Error('lz4: literal overrun');
    out.set(src.subarray(s, s + lit), d);
    s += lit; d += lit;
    if (s >= src.length) break;
    const off = src[s] | (src[s + 1] << 8);
    s += 2;
    let len = tok & 15;
    if (len === 15) { let x; do { x = src[s++]; len += x; } while (x === 255); }
    len += 4;
    let m = d - off;
    if (off === 0 || m < 0 || d + len > size) throw new Error('lz4: bad match');
    while (len--) out[d++] = out[m++];
  }
  if (d !== size) throw new Error(`lz4: decoded ${d} of ${size} bytes`);
  return out;
}

function payload(u8, v, at) {
  const raw = v.getUint32(at, true), comp = v.getUint32(at + 4, true);
  const data = u8.subarray(at + 8);
  if (!comp) return data.slice(0, raw);
  return lz4DecodeBlock(data.subarray(0, comp), raw);
}

// Splits a CHUNK frame's raw columns into typed arrays (copies: aligned).
function chunkColumns(raw, n, columns, userTypes) {
  const c = {};
  let at = 0;
  const take = (Ctor, count) => {
    const bytes = count * Ctor.BYTES_PER_ELEMENT;
    const a = new Ctor(raw.slice(at, at + bytes).buffer);
    at += bytes;
    return a;
  };
  if (columns & COL.T) c.t = take(BigInt64Array, n);
  if (columns & COL.POS) { c.x = take(Float32Array, n); c.y = take(Float32Array, n); c.z = take(Float32Array, n); }
  if (columns & COL.INTENSITY) c.intensity = take(Float32Array, n);
  userTypes.forEach((u, i) => {
    if (columns & COL.USER(i) && u.type !== 'u8') c[u.name] = take(u.type === 'i32' ? Int32Array : Float32Array, n);
  });
  if (columns & COL.DIR) c.dir = take(Uint16Array, 2 * n);
  if (columns & COL.RGB) { c.r = take(Uint8Array, n); c.g = take(Uint8Array, n); c.b = take(Uint8Array, n); }
  userTypes.forEach((u, i) => { if (columns & COL.USER(i) && u.type === 'u8') c[u.name] = take(Uint8Array, n); });
  if (at !== raw.length) throw new Error(`chunk columns: ${at} of ${raw.length} bytes used`);
  return c;
}

// Decodes any server frame. userTypes: [{name, type}] of the field's user columns (for
// chunks that carry them).
export function decodeFrame(buf, userTypes = []) {
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  const v = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const f = { type: u8[0], flags: u8[1], id: v.getUint32(4, true), bytes: u8.length };
  const text = (at) => dec.decode(u8.subarray(at));
  const u64 = (at) => Number(v.getBigUint64(at, true));
  const vec = (at) => [0, 1, 2].map((k) => v.getFloat32(at + 4 * k, true));
  switch (f.type) {
    case T.WELCOME:
      Object.assign(f, { version: v.getUint16(8, true), welcomeFlags: v.getUint16(10, true),
        maxFrame: v.getUint32(12, true), lsn: u64(16) });
      f.canWrite = !!(f.welcomeFlags & 1);
      break;
    case T.ERROR:
      Object.assign(f, { code: v.getUint16(8, true), lmCode: v.getInt32(12, true), message: text(16) });
      break;
    case T.RESULT: f.json = JSON.parse(text(8)); break;
    case T.ACK: Object.assign(f, { lsn: u64(8), n: v.getUint32(16, true) }); break;
    case T.BYE: Object.assign(f, { code: v.getUint16(8, true), message: text(10) }); break;
    case T.SUBSCRIBED:
      Object.assign(f, { mode: u8[8] ? 'voxels' : 'samples', level: u8[9], chunks: v.getUint32(12, true),
        samples: u64(16), items: u64(24), lsn: u64(32), voxelSize: v.getFloat32(40, true),
        chunkEdge: v.getUint32(44, true), boundsMin: vec(48), boundsMax: vec(60) });
      break;
    case T.SYNCED:
      Object.assign(f, { chunks: v.getUint32(8, true), items: u64(16), lsn: u64(24) });
      break;
    case T.CHUNK:
    case T.VOXELS: {
      Object.assign(f, { coord: [0, 1, 2].map((k) => v.getInt32(8 + 4 * k, true)), lsn: u64(20),
        total: v.getUint32(28, true), first: v.getUint32(32, true), n: v.getUint32(36, true),
        delta: !!(f.flags & 1) });
      if (f.type === T.CHUNK) {
        f.columns = v.getUint32(40, true);
        f.boundsMin = vec(44); f.boundsMax = vec(56);
        f.cols = chunkColumns(payload(u8, v, 68), f.n, f.columns, userTypes);
      } else {
        f.level = u8[40];
        f.cellSize = v.getFloat32(44, true);
        const raw = payload(u8, v, 48), n = f.n;
        const i32 = new Int32Array(raw.buffer, 0, 4 * n), f32 = new Float32Array(raw.buffer, 16 * n, 12 * n);
        f.cx = i32.subarray(0, n); f.cy = i32.subarray(n, 2 * n); f.cz = i32.subarray(2 * n, 3 * n);
        f.count = new Uint32Array(raw.buffer, 12 * n, n);
        f.sh = f32; // sh[(channel*4+coef)*n + i]
      }
      break;
    }
    default: break;
  }
  return f;
}

// SH radiance toward unit direction d of voxel i of a VOXELS frame (engine/sh.h).
export function voxelRadiance(f, i, d) {
  const n = f.n, N = f.count[i], C0 = 0.28209479177387814, C1 = 0.4886025119029199;
  const y = [C0, C1 * d[1], C1 * d[2], C1 * d[0]];
  const out = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let s = f.sh[(c * 4) * n + i] * y[0];
    for (let k = 1; k < 4; k++) s += f.sh[(c * 4 + k) * n + i] * y[k] / 3;
    out[c] = N ? (4 * Math.PI / N) * s : 0;
  }
  return out;
}

// A small client: hello on open, requests matched to replies by id.
export class LumaClient {
  constructor(url, { WebSocket: WS = globalThis.WebSocket, token = '', onFrame = null } = {}) {
    this.url = url; this.WS = WS; this.token = token; this.onFrame = onFrame;
    this.nextId = 1; this.pending = new Map(); this.bytes = 0; this.frames = 0;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new this.WS(this.url, PROTOCOL);
      this.ws = ws;
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => ws.send(encodeHello(this.token));
      ws.onerror = (e) => reject(new Error(`websocket error ${e.message || ''}`));
      ws.onclose = (e) => { for (const p of this.pending.values()) p.reject(new Error(`closed ${e.code}`)); this.pending.clear(); };
      ws.onmessage = (e) => {
        this.bytes += e.data.byteLength; this.frames++;
        const f = decodeFrame(e.data, this.userTypes || []);
        if (f.type === T.WELCOME) { this.welcome = f; resolve(f); }
        else if (f.type === T.ERROR && f.code === ERR.UNAUTHORIZED && !this.welcome) reject(new Error(f.message));
        const p = (f.type === T.RESULT || f.type === T.ACK || f.type === T.ERROR) && this.pending.get(f.id);
        if (p) {
          this.pending.delete(f.id);
          if (f.type === T.ERROR) p.reject(Object.assign(new Error(f.message), { frame: f }));
          else p.resolve(f);
        }
        if (this.onFrame) this.onFrame(f);
      };
    });
  }

  request(frame, id) {
    return new Promise((resolve, reject) => { this.pending.set(id, { resolve, reject }); this.ws.send(frame); });
  }

  query(q) { const id = this.nextId++; return this.request(encodeQuery(id, q), id).then((f) => f.json); }
  insert(field, batch) { const id = this.nextId++; return this.request(encodeInsert(id, field, batch), id); }
  subscribe(id, field, opts) { this.ws.send(encodeSubscribe(id, field, opts)); }
  close() { this.ws.close(); }
}

// Octahedral 2 x u16 direction (as stored by the engine) to a unit vector.
export function octDecode(u, v) {
  let x = u * (2 / 65535) - 1, y = v * (2 / 65535) - 1;
  const z = 1 - Math.abs(x) - Math.abs(y);
  if (z < 0) {
    const fx = (1 - Math.abs(y)) * (x >= 0 ? 1 : -1), fy = (1 - Math.abs(x)) * (y >= 0 ? 1 : -1);
    x = fx; y = fy;
  }
  const l = Math.hypot(x, y, z);
  return [x / l, y / l, z / l];
}
