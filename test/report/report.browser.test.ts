/**
 * The report in a real browser: Debian's `chromium`, headless, driven by
 * playwright-core. The page of a known log (test/report/known.ts) must load
 * with no console error and no page error, ask for nothing but itself, and
 * draw the expected bars, markers, top rows and policy nodes; a screenshot
 * is kept in test-artifacts/. A page full of hostile names must run nothing.
 *
 * Without /usr/bin/chromium the tests are skipped, except under CI=true,
 * where they fail (scripts/setup.sh --test installs it).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { reportCommand } from '../../src/cli/commands/report.js';
import { captureIo } from '../helpers.js';
import { ROOT } from '../paths.js';
import { EXPECTED, hostileCase, knownDir, STATUS } from './known.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
const run = present || process.env.CI === 'true' ? describe : describe.skip;
if (!present) console.warn(`${CHROMIUM} is missing (apt-get install chromium): the browser tests ${process.env.CI === 'true' ? 'fail' : 'are skipped'}`);

/** A page loaded from `file`, with what it logged, threw and asked for. */
interface Loaded {
  page: Page;
  errors: string[];
  requests: string[];
  aborted: number;
  dialogs: number;
}

async function open(browser: Browser, file: string): Promise<Loaded> {
  const url = pathToFileURL(file).href;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const out: Loaded = { page: await context.newPage(), errors: [], requests: [], aborted: 0, dialogs: 0 };
  // Anything but the page itself is refused and counted (none is expected: the CSP forbids it, and the page names nothing to load).
  await context.route('**/*', (route) => {
    if (route.request().url() === url) return route.continue();
    out.aborted++;
    return route.abort();
  });
  out.page.on('request', (r) => out.requests.push(r.url()));
  out.page.on('console', (m) => m.type() === 'error' && out.errors.push(`console: ${m.text()}`));
  out.page.on('pageerror', (e) => out.errors.push(`page error: ${e.message}`));
  out.page.on('dialog', (d) => {
    out.dialogs++;
    void d.dismiss();
  });
  await out.page.goto(url, { waitUntil: 'load' });
  return out;
}

run('egress report in headless Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  test('the known log: loads clean, fetches nothing, draws the expected marks; screenshot kept', async () => {
    const { dir, env } = knownDir();
    const io = captureIo(dir, env);
    expect(await reportCommand(io, 'policy.yaml', ['kern.log'], { output: 'report.html' }, { status: async () => STATUS })).toBe(0);
    const { page, errors, requests, aborted } = await open(browser, join(dir, 'report.html'));
    expect(errors).toEqual([]);
    expect({ requests, aborted }).toEqual({ requests: [pathToFileURL(join(dir, 'report.html')).href], aborted: 0 });

    const count = (sel: string) => page.locator(sel).count();
    expect(await count('svg[data-chart="timeline"] g[data-bucket]')).toBe(EXPECTED.buckets);
    expect(await count('svg[data-chart="timeline"] rect[data-bar="denied"]')).toBe(EXPECTED.deniedBars);
    expect(await count('svg[data-chart="timeline"] rect[data-bar="would-deny"]')).toBe(EXPECTED.wouldDenyBars);
    for (const [k, n] of Object.entries(EXPECTED.markers)) expect(await count(`svg[data-chart="timeline"] [data-marker="${k}"]`), k).toBe(n);
    // Drawn, not only present: every bar has a height, and the markers sit inside the plot.
    const heights = await page.locator('svg[data-chart="timeline"] rect[data-bar]').evaluateAll((rs) => rs.map((r) => (r as unknown as { getBBox(): { height: number } }).getBBox().height));
    expect(heights.every((h) => h > 0)).toBe(true);
    const rows = (chart: string) => page.locator(`svg[data-chart="${chart}"] [data-row]`).evaluateAll((gs) => gs.map((g) => [g.getAttribute('data-label'), Number(g.getAttribute('data-count'))]));
    for (const v of ['denied', 'would-deny'] as const) {
      expect(await rows(`destinations-${v}`)).toEqual(EXPECTED.destinations[v]);
      expect(await rows(`users-${v}`)).toEqual(EXPECTED.users[v]);
      expect(await rows(`rules-${v}`)).toEqual(EXPECTED.rules[v]);
    }
    expect(await page.locator('svg[data-chart="policy"] [data-node="rule"]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-rule')))).toEqual(EXPECTED.policyRules);
    expect(await count('svg[data-chart="policy"] path[data-link]')).toBe(6);
    expect(await count('table[data-table="stale"] tr[data-stale="stale"]')).toBe(EXPECTED.stale.length);
    // The tooltip of a bar says when and how many, in the one time format.
    expect(await page.locator('svg[data-chart="timeline"] g[data-bucket="0"] rect title').textContent()).toBe('2026-05-31T10:00:00Z – 2026-05-31T10:05:00Z: 2 would deny (audit)');
    // The embedded data parses, and says what was drawn.
    const data = JSON.parse((await page.locator('#egress-report-data').textContent())!) as { denied: { connections: number }; wouldDeny: { connections: number } };
    expect([data.denied.connections, data.wouldDeny.connections]).toEqual([EXPECTED.denied.connections, EXPECTED.wouldDeny.connections]);

    const artifacts = join(ROOT, 'test-artifacts');
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    console.log(`screenshot of the report: ${shot}`);
  });

  test('hostile names (history, accounts, file name) run nothing and show as text', async () => {
    const h = `</script><img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`;
    const name = `x'"><img src=x onerror=alert(1)>.yaml`;
    const { dir, io } = hostileCase(h, name);
    expect(await reportCommand(io, name, ['kern.log'], { output: 'hostile.html' }, { status: async () => STATUS })).toBe(0);
    const { page, errors, aborted, dialogs } = await open(browser, join(dir, 'hostile.html'));
    expect({ errors, aborted, dialogs }).toEqual({ errors: [], aborted: 0, dialogs: 0 });
    expect(await page.title()).toBe(`egress report: ${name}`);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1);
    expect(await page.locator('table[data-table="changes"] tr[data-change] td').nth(4).textContent()).toBe(h);
    expect(await page.locator('svg[data-chart="users-denied"] [data-row]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-label')))).toContain(`${h} (33)`);
  });
});
