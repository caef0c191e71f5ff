// browser.test.mjs - the WebGL client in headless Chromium (SwiftShader) against a real
// server: the page receives every sample the server holds, draws known coloured patches
// where the camera projects them, shows samples inserted over HTTP as they are written,
// and highlights the rows of a query. Screenshots are kept for people to look at.
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireModule, startServer, stopServer, http, check, done, until, TOKEN } from './lib.mjs';

const { chromium } = requireModule('playwright-core');
const CHROMIUM = process.env.LUMADB_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no Chromium at ${CHROMIUM} (tools/setup.sh installs Debian's chromium)`);
  process.exit(77);
}
const OUT = process.env.LUMADB_TEST_OUT || mkdtempSync(join(tmpdir(), 'lumadb-browser-'));

// A flat square patch of one colour: side x side samples spaced `step`, centred at c.
function patch(c, side, step, rgb) {
  const b = { x: [], y: [], z: [], r: [], g: [], b: [], intensity: [] };
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      b.x.push(c[0] + (i - side / 2) * step); b.y.push(c[1] + (j - side / 2) * step); b.z.push(c[2]);
      b.r.push(rgb[0]); b.g.push(rgb[1]); b.b.push(rgb[2]); b.intensity.push(1);
    }
  }
  return b;
}

const PATCHES = [
  { name: 'red', c: [-14, 0, 0], rgb: [1, 0, 0] },
  { name: 'green', c: [0, 0, 0], rgb: [0, 1, 0] },
  { name: 'blue', c: [14, 0, 0], rgb: [0, 0, 1] },
];
const LATE = { name: 'magenta', c: [0, 14, 0], rgb: [1, 0, 1] };

const srv = await startServer(['--rate', '0']);
const userDir = mkdtempSync(join(tmpdir(), 'lumadb-chromium-'));
let ctx;
try {
  let r = await http(srv, 'PUT', '/v1/fields/scene', { voxel_size: 1, chunk_edge: 16 }, { token: TOKEN });
  check(r.status === 201, 'test field created');
  for (const p of PATCHES) {
    r = await http(srv, 'POST', '/v1/fields/scene/samples', patch(p.c, 40, 0.25, p.rgb), { token: TOKEN });
    check(r.status === 200, `${p.name} patch inserted`);
  }
  const serverCount = async () => (await http(srv, 'GET', '/v1/fields')).json.fields.find((f) => f.name === 'scene').samples;

  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 800, height: 600 },
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--disable-quic', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  await page.goto(`${srv.http}/?field=scene&lod=samples`);
  await page.waitForFunction(() => window.lumadb && window.lumadb.synced, null, { polling: 500, timeout: 60000 });
  const expected = await serverCount();
  let st = await page.evaluate(() => ({ ...window.lumadb }));
  check(st.samplesReceived === expected && st.mode === 'samples',
    `the page received all ${expected} samples of the field (${st.samplesReceived})`);

  await page.evaluate(() => window.lumadb.setCamera([0, -30, 34], [0, 3, 0]));
  const frames0 = await page.evaluate(() => window.lumadb.renderedFrames);
  await page.waitForFunction((n) => window.lumadb.renderedFrames > n + 2, frames0, { polling: 100, timeout: 30000 });

  // Pixel colours at the projected centres, read back from a real screenshot.
  async function shoot(name, points) {
    const png = await page.screenshot();
    writeFileSync(join(OUT, `${name}.png`), png);
    const where = await page.evaluate((pts) => pts.map((p) => window.lumadb.project(...p)), points);
    const px = await page.evaluate(async ({ b64, where }) => {
      const img = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
      const c = new OffscreenCanvas(img.width, img.height);
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      return where.map((w) => Array.from(g.getImageData(Math.round(w.x), Math.round(w.y), 1, 1).data.slice(0, 3)));
    }, { b64: png.toString('base64'), where });
    return { where, px };
  }
  const near = (px, rgb) => px.every((v, k) => Math.abs(v - 255 * rgb[k]) <= 40);

  let shot = await shoot('patches', [...PATCHES.map((p) => p.c), [0, -8, 0], LATE.c]);
  PATCHES.forEach((p, i) => check(near(shot.px[i], p.rgb),
    `${p.name} patch drawn at its projected position (${shot.where[i].x.toFixed(0)},${shot.where[i].y.toFixed(0)}) = ${shot.px[i]}`));
  check(near(shot.px[3], [11 / 255, 13 / 255, 18 / 255]), `empty space stays background (${shot.px[3]})`);
  check(!near(shot.px[4], LATE.rgb), 'nothing magenta yet where the late patch will go');

  // Live update: insert over HTTP, the page shows it without reloading.
  r = await http(srv, 'POST', '/v1/fields/scene/samples', patch(LATE.c, 40, 0.25, LATE.rgb), { token: TOKEN });
  check(r.status === 200, 'late patch inserted over HTTP');
  const expected2 = await serverCount();
  await page.waitForFunction((n) => window.lumadb.samplesReceived === n, expected2, { polling: 200, timeout: 30000 });
  st = await page.evaluate(() => ({ ...window.lumadb }));
  check(st.samplesReceived === expected2 && st.deltas > 0, `the page shows the written samples live (${st.samplesReceived}, ${st.deltas} delta frames)`);
  const f1 = await page.evaluate(() => window.lumadb.renderedFrames);
  await page.waitForFunction((n) => window.lumadb.renderedFrames > n + 2, f1, { polling: 100, timeout: 30000 });
  shot = await shoot('live-update', [LATE.c, PATCHES[1].c]);
  check(near(shot.px[0], LATE.rgb), `the new patch is drawn (${shot.px[0]})`);
  check(near(shot.px[1], PATCHES[1].rgb), 'the old patches are still drawn');

  // Query box: run a query, its rows are highlighted.
  const res = await page.evaluate(() => window.lumadb.runQuery(JSON.stringify(
    { field: 'scene', sphere: { center: [0, 0, 0], radius: 2 }, limit: 10000 })));
  check(res.n > 100 && (await page.evaluate(() => window.lumadb.queryRows)) === res.n, `query rows highlighted (${res.n})`);
  const f2 = await page.evaluate(() => window.lumadb.renderedFrames);
  await page.waitForFunction((n) => window.lumadb.renderedFrames > n + 2, f2, { polling: 100, timeout: 30000 });
  shot = await shoot('query', [[0, 0, 0], PATCHES[0].c]);
  check(shot.px[0][0] > 200 && shot.px[0][1] > 200 && shot.px[0][2] < 80, `highlight colour at the query centre (${shot.px[0]})`);
  check(near(shot.px[1], PATCHES[0].rgb), 'rows outside the query keep their colour');
  const bad = await page.evaluate(() => window.lumadb.runQuery('{"field": "scene", "sphere": {"radius": }}'));
  check(/line 1,? column/.test(bad.error || ''), `a bad query shows its error position (${bad.error})`);
  // following the camera: the subscription becomes the view frustum; nothing is lost
  const [syncs, errs] = await page.evaluate(() => [window.lumadb.syncs, window.lumadb.errors.length]);
  await page.evaluate(() => window.lumadb.subscribeView());
  await page.waitForFunction((n) => window.lumadb.syncs > n, syncs, { polling: 100, timeout: 30000 });
  st = await page.evaluate(() => ({ ...window.lumadb }));
  check(st.samplesReceived === expected2 && st.errors.length === errs,
    `re-subscribing to the view frustum keeps every sample held (${st.samplesReceived})`);
  const text = await page.textContent('#stats');
  check(/fps/.test(text) && /points\s+[\d,]+/.test(text) && /received/.test(text), 'the overlay shows fps, points and bytes');
  check(pageErrors.length === 0, `no page errors (${pageErrors.join('; ')})`);
  console.log(`screenshots: ${OUT}`);
} catch (err) {
  check(false, `unexpected: ${err.stack}`);
} finally {
  if (ctx) await ctx.close();
  rmSync(userDir, { recursive: true, force: true });
}
await stopServer(srv);
done();
