// app.js - the LumaDB WebGL client: subscribes to a field over lumadb.v1, draws samples
// (or LOD voxels coloured by their spherical-harmonic radiance toward the camera), applies
// live deltas, and runs queries whose rows are highlighted. window.lumadb exposes counters
// and helpers for tests.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { LumaClient, T, LOD } from './protocol.js';

const params = new URLSearchParams(location.search);
const state = {
  connected: false, synced: false, mode: null, level: 0, field: null, lsn: 0,
  samplesReceived: 0, voxelsReceived: 0, points: 0, chunks: 0, frames: 0, bytesReceived: 0, deltas: 0,
  fps: 0, renderedFrames: 0, firstCompleteFrameMs: null, errors: [], queryRows: 0, closed: null,
};
window.lumadb = state;

// ---------------------------------------------------------------- scene
const canvas = document.getElementById('view');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(1);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x0b0d12);
const camera = new THREE.PerspectiveCamera(50, 1, 0.1, 10000);
camera.up.set(0, 0, 1);
camera.position.set(0, -200, 150);
const controls = new OrbitControls(camera, canvas);
controls.enableDamping = false;

const uniforms = { pxScale: { value: 1 }, exposure: { value: 1 }, size: { value: 1 } };
const sampleMaterial = new THREE.ShaderMaterial({
  uniforms,
  vertexShader: `
    attribute vec3 rgb;
    attribute float intensity;
    uniform float pxScale, exposure, size;
    varying vec3 vColor;
    void main() {
      vec4 mv = modelViewMatrix * vec4(position, 1.0);
      gl_Position = projectionMatrix * mv;
      gl_PointSize = max(2.0, size * pxScale / -mv.z);
      vColor = clamp(rgb * intensity * exposure, 0.0, 1.0);
    }`,
  fragmentShader: `
    varying vec3 vColor;
    void main() { gl_FragColor = vec4(vColor, 1.0); }`,
});
// Radiance of a voxel toward the eye from its L1 SH sums (engine/sh.h, invariant 2):
// L(d) = (4 pi / N) (s0 Y0 + 1/3 sum_k sk Yk(d)).
const voxelMaterial = new THREE.ShaderMaterial({
  uniforms: { ...uniforms, cell: { value: 1 } },
  vertexShader: `
    attribute vec4 shr, shg, shb;
    attribute float count;
    uniform float pxScale, exposure, cell;
    varying vec3 vColor;
    const float C0 = 0.28209479177387814, C1 = 0.4886025119029199;
    float ev(vec4 s, vec3 d) { return s.x * C0 + C1 * (s.y * d.y + s.z * d.z + s.w * d.x) / 3.0; }
    void main() {
      vec4 world = modelMatrix * vec4(position, 1.0);
      vec3 d = normalize(cameraPosition - world.xyz);
      vec3 L = 12.566370614359172 / max(count, 1.0) * vec3(ev(shr, d), ev(shg, d), ev(shb, d));
      vColor = clamp(L * exposure, 0.0, 1.0);
      vec4 mv = viewMatrix * world;
      gl_Position = projectionMatrix * mv;
      gl_PointSize = max(1.5, 1.2 * cell * pxScale / -mv.z);
    }`,
  fragmentShader: `
    varying vec3 vColor;
    void main() { gl_FragColor = vec4(vColor, 1.0); }`,
});
const highlightMaterial = new THREE.PointsMaterial({ color: 0xffee22, size: 6, sizeAttenuation: false, depthTest: false });

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
  uniforms.pxScale.value = h / (2 * Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2));
}
window.addEventListener('resize', resize);
resize();

// ---------------------------------------------------------------- chunks
const held = new Map(); // chunk key -> [{ first, n, obj }]

function dropChunk(key) {
  for (const p of held.get(key) || []) {
    scene.remove(p.obj);
    p.obj.geometry.dispose();
    if (state.mode === 'voxels') state.voxelsReceived -= p.n; else state.samplesReceived -= p.n;
    state.points -= p.n;
  }
  held.delete(key);
}

function samplePoints(f) {
  const n = f.n, c = f.cols;
  const pos = new Float32Array(3 * n), rgb = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    pos[3 * i] = c.x[i]; pos[3 * i + 1] = c.y[i]; pos[3 * i + 2] = c.z[i];
    rgb[3 * i] = c.r[i]; rgb[3 * i + 1] = c.g[i]; rgb[3 * i + 2] = c.b[i];
  }
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(pos, 3));
  g.setAttribute('rgb', new THREE.BufferAttribute(rgb, 3, true));
  g.setAttribute('intensity', new THREE.BufferAttribute(c.intensity, 1));
  return new THREE.Points(g, sampleMaterial);
}

function voxelPoints(f) {
  const n = f.n, s = f.cellSize;
  const pos = new Float32Array(3 * n), sh = [new Float32Array(4 * n), new Float32Array(4 * n), new Float32Array(4 * n)];
  for (let i = 0; i < n; i++) {
    pos[3 * i] = (f.cx[i] + 0.5) * s; pos[3 * i + 1] = (f.cy[i] + 0.5) * s; pos[3 * i + 2] = (f.cz[i] + 0.5) * s;
    for (let ch = 0; ch < 3; ch++) for (let k = 0; k < 4; k++) sh[ch][4 * i + k] = f.sh[(ch * 4 + k) * n + i];
  }
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(pos, 3));
  g.setAttribute('shr', new THREE.BufferAttribute(sh[0], 4));
  g.setAttribute('shg', new THREE.BufferAttribute(sh[1], 4));
  g.setAttribute('shb', new THREE.BufferAttribute(sh[2], 4));
  g.setAttribute('count', new THREE.BufferAttribute(new Float32Array(f.count), 1));
  voxelMaterial.uniforms.cell.value = s;
  return new THREE.Points(g, voxelMaterial);
}

function onChunk(f) {
  const key = f.coord.join(',');
  if (f.first === 0) dropChunk(key);
  if (f.delta) state.deltas++;
  if (f.n === 0) return;
  const obj = f.type === T.CHUNK ? samplePoints(f) : voxelPoints(f);
  obj.frustumCulled = true;
  scene.add(obj);
  if (!held.has(key)) held.set(key, []);
  held.get(key).push({ first: f.first, n: f.n, obj });
  if (f.type === T.CHUNK) state.samplesReceived += f.n; else state.voxelsReceived += f.n;
  state.points += f.n;
  state.chunks = held.size;
  state.lsn = Math.max(state.lsn, f.lsn);
}

let framed = false;
function frameBounds(min, max) {
  if (framed) return;
  framed = true;
  const c = new THREE.Vector3().addVectors(new THREE.Vector3(...min), new THREE.Vector3(...max)).multiplyScalar(0.5);
  const r = Math.max(1, new THREE.Vector3(...max).sub(new THREE.Vector3(...min)).length() / 2);
  controls.target.copy(c);
  camera.position.set(c.x, c.y - 1.3 * r, c.z + 0.9 * r);
  camera.near = r / 500; camera.far = r * 20;
  camera.updateProjectionMatrix();
  controls.update();
}

// ---------------------------------------------------------------- connection
const client = new LumaClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`,
  { token: params.get('token') || '', onFrame });

function onFrame(f) {
  state.frames++;
  state.bytesReceived += f.bytes;
  switch (f.type) {
    case T.SUBSCRIBED:
      // a new kind of frames (samples <-> voxels, or another level) replaces what is held
      if (state.mode && (f.mode !== state.mode || f.level !== state.level)) for (const k of [...held.keys()]) dropChunk(k);
      state.mode = f.mode; state.level = f.level; state.expected = f.items; state.lsn = f.lsn;
      uniforms.size.value = f.voxelSize;
      frameBounds(f.boundsMin, f.boundsMax);
      break;
    case T.CHUNK: case T.VOXELS: onChunk(f); break;
    case T.SYNCED:
      state.lsn = Math.max(state.lsn, f.lsn);
      if (!state.synced) { state.synced = true; state.syncedAtMs = performance.now(); }
      state.syncs = (state.syncs || 0) + 1;
      break;
    case T.ERROR: state.errors.push(`${f.code}: ${f.message}`); break;
    case T.BYE: state.closed = f.message; break;
    default: break;
  }
}

async function start() {
  const fields = (await (await fetch('/v1/fields')).json()).fields || [];
  const name = params.get('field') || (fields.find((f) => f.name === 'terrain') || fields[0] || {}).name;
  if (!name) { state.errors.push('no fields in this database'); return; }
  state.field = name;
  document.getElementById('field').textContent = `· ${name}`;
  await client.connect();
  state.connected = true;
  client.ws.addEventListener('close', () => { state.connected = false; });
  const agg = await client.query({ field: name, aggregate: { column: 'intensity' } });
  uniforms.exposure.value = agg.avg > 0 ? Math.min(8, Math.max(1, 0.7 / agg.avg)) : 1;
  client.subscribe(1, name, subscription);
  document.getElementById('q').value = JSON.stringify(
    { field: name, sphere: { center: [0, 0, 0], radius: 10 }, limit: 5000 });
}

// The first subscription covers the field; after the camera moves (?follow=0 turns this
// off) it follows the view frustum, so the point budget buys detail where one looks. The
// server then sends only chunks this page does not hold yet.
const lodParam = params.get('lod');
const subscription = {
  lod: lodParam === 'samples' ? LOD.SAMPLES : lodParam && lodParam !== 'auto' ? Number(lodParam) : LOD.AUTO,
  budget: params.has('budget') ? Number(params.get('budget')) : 300000,
};
state.resubscribes = 0;
state.subscribeView = () => {
  client.subscribe(1, state.field, { ...subscription, region: {
    kind: 'camera', eye: camera.position.toArray(), target: controls.target.toArray(), up: [0, 0, 1],
    fov: camera.fov, aspect: camera.aspect, near: camera.near, far: camera.far } });
  state.resubscribes++;
};
let resubscribeTimer = null;
controls.addEventListener('end', () => {
  if (params.get('follow') === '0' || !state.connected) return;
  clearTimeout(resubscribeTimer);
  resubscribeTimer = setTimeout(state.subscribeView, 250);
});

// ---------------------------------------------------------------- queries
let highlight = null;
function setHighlight(rows) {
  if (highlight) { scene.remove(highlight); highlight.geometry.dispose(); highlight = null; }
  state.queryRows = rows ? rows.n : 0;
  if (!rows || !rows.n) return;
  const pos = new Float32Array(3 * rows.n);
  for (let i = 0; i < rows.n; i++) { pos[3 * i] = rows.x[i]; pos[3 * i + 1] = rows.y[i]; pos[3 * i + 2] = rows.z[i]; }
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(pos, 3));
  highlight = new THREE.Points(g, highlightMaterial);
  highlight.renderOrder = 10;
  scene.add(highlight);
}

async function runQuery(text) {
  const out = document.getElementById('qresult');
  out.className = '';
  const t0 = performance.now();
  try {
    let q = text;
    try { q = JSON.parse(text); } catch { /* not JSON: sent as query text */ }
    const res = await client.query(q);
    const ms = (performance.now() - t0).toFixed(1);
    if (res.x) { setHighlight(res); out.textContent = `${res.n} rows in ${ms} ms (highlighted)`; }
    else { setHighlight(null); out.textContent = `${JSON.stringify(res).slice(0, 600)}\n(${ms} ms)`; }
    return res;
  } catch (e) {
    let msg = e.message;
    try { const j = JSON.parse(msg).error; msg = `${j.message}${j.line && !/line/.test(j.message) ? ` (line ${j.line}, column ${j.column})` : ''}`; } catch { /* plain */ }
    out.className = 'error';
    out.textContent = msg;
    return { error: msg };
  }
}
document.getElementById('query').addEventListener('submit', (e) => { e.preventDefault(); runQuery(document.getElementById('q').value); });
document.getElementById('clear').addEventListener('click', () => { setHighlight(null); document.getElementById('qresult').textContent = ''; });

// ---------------------------------------------------------------- helpers for tests
state.runQuery = runQuery;
state.project = (x, y, z) => {
  const v = new THREE.Vector3(x, y, z).project(camera);
  return { x: (v.x + 1) / 2 * canvas.clientWidth, y: (1 - v.y) / 2 * canvas.clientHeight, z: v.z };
};
state.setCamera = (eye, target) => {
  camera.position.set(...eye);
  controls.target.set(...target);
  controls.update();
};

// ---------------------------------------------------------------- loop
const stats = document.getElementById('stats');
let fpsFrames = 0, fpsT0 = performance.now();
function tick() {
  requestAnimationFrame(tick);
  controls.update();
  renderer.render(scene, camera);
  state.renderedFrames++;
  if (state.synced && state.firstCompleteFrameMs === null) state.firstCompleteFrameMs = performance.now();
  fpsFrames++;
  const now = performance.now();
  if (now - fpsT0 >= 500) {
    state.fps = (fpsFrames * 1000) / (now - fpsT0);
    fpsFrames = 0; fpsT0 = now;
    const mode = state.mode === 'voxels' ? `voxels L${state.level}` : state.mode || '-';
    stats.textContent = `${state.fps.toFixed(1)} fps   ${mode}\n` +
      `points   ${state.points.toLocaleString()}\n` +
      `chunks   ${state.chunks.toLocaleString()}\n` +
      `received ${(state.bytesReceived / 1048576).toFixed(2)} MiB in ${state.frames} frames\n` +
      `deltas   ${state.deltas}   lsn ${state.lsn}\n` +
      `${state.connected ? (state.synced ? 'live' : 'loading…') : state.closed ? `closed: ${state.closed}` : 'offline'}` +
      `${state.errors.length ? `\nerror ${state.errors[state.errors.length - 1]}` : ''}`;
  }
}
tick();
start().catch((e) => { state.errors.push(String(e)); });
