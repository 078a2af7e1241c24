// End to end through Debian's Chromium against the real API, stage nodes and database: sign
// in, create a tenant and a key, stream a generation in the playground, find its usage and
// cost on the tenant's page, revoke the key and see the next request refused. Every page is
// saved as a screenshot under test-artifacts/dashboard/.
import { jest } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pw from 'playwright-core';
import {
  decodingLabel,
  HIT_RATE_DEFINITION,
  speculativeStatsSchema,
  TIME_SPLIT_DEFINITION,
} from '@pipedec/contracts';
import { formatMicros } from '../lib/format.js';
import { ARTIFACTS, launchChromium, screenshot } from './browser.js';
import { ADMIN, MODEL_NAME, startStack, type Stack } from './stack.js';

jest.setTimeout(15 * 60_000);

let stack: Stack;
let browser: pw.Browser;
let context: pw.BrowserContext;
let page: pw.Page;

const TENANT = `acme-${Date.now().toString(36)}`;

beforeAll(async () => {
  stack = await startStack();
  browser = await launchChromium();
  context = await browser.newContext({
    viewport: { width: 1366, height: 900 },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  page = await context.newPage();
  page.on('dialog', (d) => void d.accept());
}, 12 * 60_000);

afterAll(async () => {
  await browser?.close();
  // The processes' output, for reading after a failure.
  if (stack) await writeFile(path.join(ARTIFACTS, 'service.log'), stack.logs());
  await stack?.stop();
});

const url = (p: string) => stack.dashboardUrl + p;

async function gotoOk(path: string, on: pw.Page = page): Promise<void> {
  const res = await on.goto(url(path), { waitUntil: 'networkidle' });
  expect(res?.status()).toBeLessThan(400);
}

/** How far the page scrolls sideways (0: it fits the window). */
function horizontalOverflow(on: pw.Page = page): Promise<number> {
  return on.evaluate(() => document.scrollingElement!.scrollWidth - window.innerWidth);
}

/** Waits until `loc` reads `text` (the page fills it in after a fetch). */
async function waitForText(loc: pw.Locator, text: string): Promise<void> {
  await loc
    .filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) })
    .waitFor();
}

/** The elements reaching furthest past the window's right edge (to read an overflow). */
function widest(on: pw.Page = page): Promise<string[]> {
  return on.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .map((el) => ({ el, right: el.getBoundingClientRect().right }))
      .filter((e) => e.right > window.innerWidth + 1)
      .sort((a, b) => b.right - a.right)
      .slice(0, 5)
      .map((e) => `${e.el.tagName.toLowerCase()}.${e.el.className} ${Math.round(e.right)}`),
  );
}

/** Runs `fn` with an API admin session, ended afterwards (the sign-out test counts them). */
async function apiAsAdmin(fn: (token: string) => Promise<unknown>): Promise<void> {
  const login = await fetch(`${stack.apiUrl}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(ADMIN),
  });
  const { token } = (await login.json()) as { token: string };
  try {
    await fn(token);
  } finally {
    await fetch(`${stack.apiUrl}/admin/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
  }
}

/**
 * The names of the controls Tab reaches from the top of the page, in order (at most `max`):
 * a control's aria-label, else its label's text (form fields), else its text.
 */
async function tabStops(max = 80): Promise<string[]> {
  await page.evaluate(() => {
    (document.activeElement as HTMLElement | null)?.blur();
    window.scrollTo(0, 0);
  });
  const names: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const name = await page.evaluate(() => {
      const el = document.activeElement as HTMLInputElement | null;
      if (!el || el === document.body) return null;
      const label = el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent ?? el.textContent;
      return (label ?? '').replace(/\s+/g, ' ').trim();
    });
    if (name === null || (names.length > 0 && name === names[0] && i > 1)) break; // wrapped
    names.push(name);
  }
  return names;
}

describe('dashboard end to end', () => {
  let tenantId: string;
  let secret: string;
  let keyPrefix: string;
  let keyId: string;

  it('refuses a wrong password and signs in an admin from the API', async () => {
    await page.goto(url('/'));
    await page.waitForURL(/\/login/);
    await screenshot(page, '01-login');
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Wrong email or password.').waitFor();

    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByLabel('Password').press('Enter'); // by keyboard
    await page.waitForURL(url('/'));
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // The session token lives in an httpOnly cookie the page's scripts cannot read.
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'pd_dashboard_session');
    expect(session?.httpOnly).toBe(true);
    expect(await page.evaluate(() => document.cookie)).not.toContain('pds_');
    await page.getByTestId('no-traffic').waitFor();
    await screenshot(page, '02-overview-empty');
  });

  it('works by keyboard: a skip link first, then the navigation', async () => {
    const focused = () => page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
    await gotoOk('/');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');

    await gotoOk('/');
    const names: string[] = [];
    for (let i = 0; i < 7; i++) {
      await page.keyboard.press('Tab');
      names.push(await focused());
    }
    expect(names).toEqual([
      'Skip to content',
      'Overview',
      'Tenants',
      'API keys',
      'Billing',
      'Pipelines',
      'Playground',
    ]);
    await gotoOk('/');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(url('/tenants'));
  });

  it('creates a plan and edits its price (POST and PATCH /admin/plans)', async () => {
    const name = `e2e-plan-${Date.now().toString(36)}`;
    await gotoOk('/tenants');
    const create = page.locator('details').filter({
      has: page.locator('summary', { hasText: /^New plan$/ }),
    });
    await create.locator('summary').click();
    await create.getByLabel('Name').fill(name);
    await create.getByLabel('Queue priority').fill('3');
    await create.getByLabel('Input price').fill('0.25');
    await create.getByLabel('Output price').fill('0.5');
    const limits: [string, string][] = [
      ['Requests / minute', '60'],
      ['Tokens / minute', '10000'],
      ['Tokens / month (quota)', '1000000'],
      ['Concurrent requests', '2'],
      ['Max prompt tokens', '512'],
      ['Max output tokens', '256'],
    ];
    for (const [label, v] of limits) await create.getByLabel(label, { exact: true }).fill(v);
    await create.getByRole('button', { name: 'Create plan' }).click();
    await create.getByText('Plan created.').waitFor();
    let row = await stack.prisma.plan.findUniqueOrThrow({ where: { name } });
    expect(row).toMatchObject({ priority: 3, requestsPerMinute: 60, maxOutputTokens: 256 });
    expect(row.priceInputPer1kMicros).toBe(250_000n);
    expect(row.priceOutputPer1kMicros).toBe(500_000n);

    await gotoOk('/tenants');
    const edit = page.locator('details').filter({
      has: page.locator('summary', { hasText: `Edit plan ${name}` }),
    });
    await edit.locator('summary').click();
    await edit.getByLabel('Input price').fill('0.4');
    await edit.getByRole('button', { name: `Save ${name}` }).click();
    await edit.getByText('Plan saved.').waitFor();
    row = await stack.prisma.plan.findUniqueOrThrow({ where: { name } });
    expect(row.priceInputPer1kMicros).toBe(400_000n);
    expect(row.priceOutputPer1kMicros).toBe(500_000n);
    await page.getByRole('rowheader', { name }).waitFor();
  });

  it('creates a tenant', async () => {
    await gotoOk('/tenants');
    await page.locator('#create').getByLabel('Name').fill(TENANT);
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.waitForURL(/\/tenants\/[0-9a-f-]{36}\?created=1/);
    tenantId = new URL(page.url()).pathname.split('/')[2];
    await page.getByRole('heading', { name: TENANT }).waitFor();
    const row = await stack.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    expect(row.name).toBe(TENANT);
    await gotoOk('/tenants');
    await page.getByRole('link', { name: TENANT }).waitFor();
    await screenshot(page, '03-tenants');
  });

  it('creates a key whose secret is shown once, with a copy button', async () => {
    await gotoOk(`/keys?tenant=${tenantId}`);
    await page.getByText(`${TENANT} has no keys yet`).waitFor();
    await page.getByLabel('Name').fill('playground');
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByTestId('secret-value');
    await shown.waitFor();
    secret = (await shown.textContent())!.trim();
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);

    let key = await stack.prisma.apiKey.findFirstOrThrow({ where: { tenantId } });
    keyId = key.id;
    expect(secret.startsWith(key.prefix)).toBe(true);
    expect(key.secretHash).not.toContain(secret);

    // Rotating shows a new secret once; with no grace period the old one stops at once.
    await gotoOk(`/keys?tenant=${tenantId}`);
    await page.getByRole('button', { name: `Rotate key ${key.prefix}` }).click();
    const rotated = page.getByTestId('secret-value');
    await rotated.waitFor();
    const old = secret;
    secret = (await rotated.textContent())!.trim();
    expect(secret).not.toBe(old);
    key = await stack.prisma.apiKey.findFirstOrThrow({ where: { tenantId } });
    keyPrefix = key.prefix;
    expect(secret.startsWith(keyPrefix)).toBe(true);
    const withOld = await fetch(`${stack.apiUrl}/v1/models`, {
      headers: { authorization: `Bearer ${old}` },
    });
    expect(withOld.status).toBe(401);

    // Reloaded, the list shows the prefix and never the secret again.
    await gotoOk(`/keys?tenant=${tenantId}`);
    await page.locator(`tr[data-key-prefix="${keyPrefix}"]`).waitFor();
    expect(await page.content()).not.toContain(secret);
    await screenshot(page, '04-keys');
  });

  it('streams a generation in the playground with the new key, without its secret', async () => {
    await gotoOk('/playground');
    // The API runs the request as the key: no page offers a secret field, and no secret
    // reaches the browser after its one-time display.
    expect(await page.locator('input[name="secret"]').count()).toBe(0);
    await page.getByRole('combobox', { name: /^Key\b/ }).selectOption(keyId);
    await page.getByLabel('Model').fill(MODEL_NAME);
    await page.getByLabel('Max tokens').fill('24');
    await page.getByLabel('Prompt').fill('The pipeline says');
    // Record every text the output shows, to see it grow token by token.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const el = document.querySelector('[data-testid="output-pipedec"]');
        const t = el?.textContent ?? '';
        if (t && seen[seen.length - 1] !== t) seen.push(t);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByRole('button', { name: 'Send' }).click();
    const row = page.locator('tr[data-method="pipedec"]');
    await row.getByText('done', { exact: true }).waitFor({ timeout: 120_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(seen.length).toBeGreaterThan(1); // more than one state: it streamed
    for (let i = 1; i < seen.length; i++) expect(seen[i].startsWith(seen[i - 1])).toBe(true);
    const tokens = Number(await row.locator('td').nth(2).textContent());
    expect(tokens).toBeGreaterThan(0);
    expect(await page.content()).not.toContain(secret);
    await screenshot(page, '05-playground');

    const req = await stack.prisma.generationRequest.findFirstOrThrow({ where: { tenantId } });
    expect(req.method).toBe('pipedec');
    expect(req.completionTokens).toBe(tokens);
  });

  it("shows the request's usage and cost on the tenant's page", async () => {
    // Accounting is written once, when the request ends: wait for it.
    const deadline = Date.now() + 30_000;
    let req = await stack.prisma.generationRequest.findFirstOrThrow({ where: { tenantId } });
    while (req.accountedAt === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      req = await stack.prisma.generationRequest.findFirstOrThrow({ where: { tenantId } });
    }
    expect(req.accountedAt).not.toBeNull();
    await gotoOk(`/tenants/${tenantId}`);
    const tile = (id: string) => page.getByTestId(id).textContent();
    expect(await tile('month-requests')).toBe('1');
    expect(await tile('month-prompt-tokens')).toBe(req.promptTokens.toLocaleString('en-US'));
    expect(await tile('month-completion-tokens')).toBe(
      req.completionTokens.toLocaleString('en-US'),
    );
    expect(req.costMicros).toBeGreaterThan(0n);
    expect(await tile('month-cost')).toBe(formatMicros(Number(req.costMicros)));
    await screenshot(page, '06-tenant');

    await gotoOk(`/?tenant=${tenantId}&range=24h`);
    // Latency percentiles from GET /admin/metrics (no fallback notice any more).
    await page.getByRole('figure', { name: 'Time to first token (p50, p95)' }).waitFor();
    expect(await page.getByText(/Latency percentiles need/).count()).toBe(0);
    await screenshot(page, '07-overview');
    await gotoOk('/billing');
    await page.getByRole('rowheader', { name: TENANT }).waitFor();
    await screenshot(page, '08-billing');
    const csv = await page.request.get(url('/billing/export'));
    expect(csv.status()).toBe(200);
    const rows = (await csv.text()).split('\r\n');
    const line = rows.find((l) => l.includes(TENANT));
    expect(line).toContain(`,${req.promptTokens},`);
    expect(line).toContain(`,${(Number(req.costMicros) / 1e6).toFixed(6)}`);
    // The price it was billed at is on its row, and a totals row sums the billed column.
    const cols = rows[0].split(',');
    const cells = line!.split(',');
    expect(cells[cols.indexOf('input_price_per_1k_usd')]).toBe(
      (Number(req.billedInputPer1kMicros) / 1e6).toFixed(6),
    );
    const body = rows.slice(1, -2);
    const total = rows[rows.length - 2].split(',');
    expect(total[cols.indexOf('tenant')]).toBe('TOTAL');
    const billed = cols.indexOf('billed_usd');
    const sum = body.reduce((a, r) => a + Math.round(Number(r.split(',')[billed]) * 1e6), 0);
    expect(Math.round(Number(total[billed]) * 1e6)).toBe(sum);
    await page.getByTestId('bill-total').waitFor();
  });

  it('runs the methods and auto side by side, with the same greedy output', async () => {
    await gotoOk('/playground');
    await page.getByRole('combobox', { name: /^Key\b/ }).selectOption(keyId);
    await page.getByLabel('Model').fill(MODEL_NAME);
    await page.getByLabel('Max tokens').fill('12');
    await page.getByLabel('Prompt').fill('Side by side');
    await page.getByRole('checkbox', { name: 'stpp', exact: true }).check();
    await page.getByRole('checkbox', { name: 'pp', exact: true }).check();
    await page.getByRole('checkbox', { name: 'auto', exact: true }).check();
    await page.getByRole('button', { name: 'Send with 4 methods' }).click();
    for (const m of ['pipedec', 'stpp', 'pp', 'auto']) {
      await page
        .locator(`tr[data-method="${m}"]`)
        .getByText('done', { exact: true })
        .waitFor({ timeout: 120_000 });
    }
    // Speculation is lossless: at temperature 0 every method commits the same tokens.
    const outputs = await Promise.all(
      ['pipedec', 'stpp', 'pp', 'auto'].map((m) => page.getByTestId(`output-${m}`).textContent()),
    );
    expect(outputs[0]).not.toBe('');
    expect(new Set(outputs).size).toBe(1);
    // Each run's timesteps and tokens per timestep from the API, compared with PP: the
    // speedup is PP's timesteps over the method's, and the tokens are the same.
    const requests3 = await stack.prisma.generationRequest.findMany({
      where: { tenantId },
      orderBy: { queuedAt: 'desc' },
      take: 4,
    });
    for (const m of ['pipedec', 'stpp', 'pp'] as const) {
      const row = requests3.find((r) => r.method === m)!;
      const cell = (id: string) => page.getByTestId(`${id}-${m}`);
      await waitForText(cell('timesteps'), String(row.timesteps));
      expect(await cell('decoded').textContent()).toBe(m);
      // The job's own figures (contracts' SpeculativeStats), as GET /v1/jobs/:id gives them.
      const stats = speculativeStatsSchema.parse(row.stats);
      expect(await cell('per-step').textContent()).toBe(stats.tokensPerTimestep.toFixed(2));
      expect(await cell('hit-rate').textContent()).toBe(
        stats.hitRate === null ? '–' : `${(stats.hitRate * 100).toFixed(1)}%`,
      );
      expect(stats.hitRate === null).toBe(m === 'pp');
      for (const [id, ms] of [
        ['draft-ms', stats.time.draftMs],
        ['compute-ms', stats.time.stageComputeMs],
        ['transfer-ms', stats.time.transferMs],
      ] as const) {
        expect(await cell(id).textContent()).toMatch(/^\d+(\.\d)? m?s$/);
        expect(ms).toBeGreaterThanOrEqual(0);
      }
      const pp = requests3.find((r) => r.method === 'pp')!;
      expect(await cell('speedup').textContent()).toBe(
        `${(pp.timesteps! / row.timesteps!).toFixed(2)}×`,
      );
      expect(await cell('same').textContent()).toBe('yes');
    }
    // auto decoded with one of them and shows what it weighed: the head's estimate per
    // candidate as the job recorded it, the one it ran named.
    const auto = requests3.find((r) => r.method === 'auto')!;
    const decoding = auto.decoding as {
      method: string;
      width: number;
      estimates?: Record<string, number>;
    };
    await waitForText(page.getByTestId('decoded-auto'), decoding.method);
    const ran = decodingLabel(decoding);
    expect(await page.getByTestId('auto-ran').textContent()).toBe(ran);
    const estimates = Object.entries(decoding.estimates ?? {});
    expect(estimates.length).toBeGreaterThanOrEqual(3); // the three fixed runs above fed it
    for (const [candidate, ms] of estimates) {
      expect(await page.getByTestId(`weighed-${candidate}`).textContent()).toBe(
        `${ms.toFixed(2)} ms/token`,
      );
    }
    await page.getByText(HIT_RATE_DEFINITION).waitFor();
    await page.getByText(TIME_SPLIT_DEFINITION).waitFor();
    await screenshot(page, '05b-playground-methods');
    const requests = await stack.prisma.generationRequest.findMany({
      where: { tenantId },
      orderBy: { queuedAt: 'asc' },
    });
    // One after another, so that no run waits in the queue behind another.
    expect(requests.slice(1).map((r) => r.method)).toEqual(['pipedec', 'stpp', 'pp', 'auto']);
  });

  it('shows the pipeline live over socket.io, with utilisation measured by the stages', async () => {
    // Every socket.io message the page receives from the API's live namespace.
    const frames: string[] = [];
    const sockets: string[] = [];
    page.on('websocket', (ws) => {
      sockets.push(ws.url());
      ws.on('framereceived', (f) => {
        if (typeof f.payload === 'string') frames.push(f.payload);
      });
    });
    await gotoOk('/pipelines');
    const card = page.getByRole('region', { name: /Pipeline e2e/ });
    await card.getByText('whole', { exact: true }).waitFor();
    await page.locator('[data-testid="live-status"][data-state="live"]').waitFor();
    await page.getByText('Live: the API pushes a snapshot every second').waitFor();
    // Straight to the API (not polled through the dashboard), with a ticket, not the session.
    const apiWs = `${stack.apiUrl.replace(/^http/, 'ws')}/socket.io/`;
    expect(sockets.some((u) => u.startsWith(apiWs))).toBe(true);
    expect(sockets.join(' ')).not.toContain('pds_');
    // Stage detail: layer ranges and health.
    await card
      .getByText(/layers \d+–\d+ of \d+/)
      .first()
      .waitFor();

    // New snapshots keep arriving: the timestamp moves on by itself.
    const at = () => page.getByTestId('snapshot-at').getAttribute('data-at').then(Number);
    const first = await at();
    await page.waitForFunction(
      (before) =>
        Number(document.querySelector('[data-testid="snapshot-at"]')?.getAttribute('data-at')) >
        before,
      first,
      { timeout: 10_000 },
    );
    const pushed = frames.filter((f) => f.startsWith('42/admin/live,["pipelines"'));
    expect(pushed.length).toBeGreaterThanOrEqual(2);

    // Record the highest utilisation each stage shows while a generation runs elsewhere.
    await page.evaluate(() => {
      const peak: Record<string, number> = {};
      (window as unknown as { peak: Record<string, number> }).peak = peak;
      const read = () => {
        const watched = '[data-testid^="utilisation-e2e-"], [data-testid^="batch-e2e-"]';
        for (const el of document.querySelectorAll(watched)) {
          const v = el.getAttribute('data-value');
          const id = el.getAttribute('data-testid')!;
          if (v) peak[id] = Math.max(peak[id] ?? -1, Number(v));
        }
      };
      read();
      new MutationObserver(read).observe(document.body, {
        subtree: true,
        childList: true,
        characterData: true,
        attributes: true,
      });
    });
    const playground = await context.newPage();
    await gotoOk('/playground', playground);
    await playground.getByRole('combobox', { name: /^Key\b/ }).selectOption(keyId);
    await playground.getByLabel('Model').fill(MODEL_NAME);
    await playground.getByLabel('Max tokens').fill('48');
    await playground.getByLabel('Prompt').fill('Keep the stages busy');
    await playground.getByRole('button', { name: 'Send' }).click();
    await playground
      .locator('tr[data-method="pipedec"]')
      .getByText('done', { exact: true })
      .waitFor({ timeout: 120_000 });
    await playground.close();
    // Each stage's next heartbeat carries the window it computed in; the next push shows it.
    await page.waitForFunction(
      () => {
        const peak = (window as unknown as { peak: Record<string, number> }).peak;
        return (
          ['0', '1'].every((s) => (peak[`utilisation-e2e-${s}`] ?? 0) > 0) &&
          // The batch over the last seconds: the stages' calls and the head's tokens.
          (peak['batch-e2e-tokens-per-second'] ?? 0) > 0 &&
          (peak['batch-e2e-rows'] ?? 0) > 0
        );
      },
      undefined,
      { timeout: 15_000 },
    );
    const peak = await page.evaluate(
      () => (window as unknown as { peak: Record<string, number> }).peak,
    );
    for (const [k, v] of Object.entries(peak)) {
      if (k.startsWith('utilisation-')) expect(v).toBeLessThanOrEqual(1);
    }
    // One request at a time here: every stage call took its one packet. The requests in
    // flight are a count now (the run may be too short for a snapshot to catch it).
    expect(peak['batch-e2e-requests']).toBe(1);
    expect(peak['batch-e2e-in-flight']).toBeGreaterThanOrEqual(0);
    expect(await card.getByText(/utilisation \d+\.\d%/).count()).toBe(2);
    // Timesteps, tokens per timestep, hit rate and the time split of the recent requests,
    // with the hit rate's and the split's definitions beside them.
    expect(await card.getByTestId('timesteps-e2e').textContent()).toMatch(/^\d+$/);
    expect(await card.getByTestId('per-step-e2e').textContent()).toMatch(/^\d+\.\d\d$/);
    expect(await card.getByTestId('hit-rate-e2e').textContent()).toMatch(/^\d+\.\d%$/);
    const split = async (id: string) =>
      Number(await card.getByTestId(`${id}-e2e`).getAttribute('data-value'));
    const [draft, compute, transfer] = await Promise.all(
      ['draft-ms', 'compute-ms', 'transfer-ms'].map(split),
    );
    expect(compute).toBeGreaterThan(0);
    expect(draft).toBeGreaterThan(0);
    expect(transfer).toBeGreaterThanOrEqual(0);
    await card.getByText(HIT_RATE_DEFINITION).waitFor();
    await card.getByText(TIME_SPLIT_DEFINITION).waitFor();
    await screenshot(page, '11-pipelines');
    // Fractions on a 0-100 % axis drawn by the chart library, counts in whole numbers.
    // (The x axis shows clock times such as 03:02:53, so the y ticks are the others.)
    const yTicks = async (figure: string) => {
      const t = page
        .getByRole('figure', { name: figure })
        .first()
        .locator('.recharts-cartesian-axis-tick-value');
      await t.first().waitFor();
      return (await t.allTextContents()).filter((v) => !/^\d\d:\d\d/.test(v));
    };
    expect(await yTicks('Utilisation per stage')).toEqual(['0%', '25%', '50%', '75%', '100%']);
    const batch = page.getByRole('region', { name: 'Batch' });
    await batch.getByText('Requests per stage call').waitFor();
    const throughput = await yTicks('Throughput (tokens/s)');
    expect(throughput.length).toBeGreaterThan(1);
    const queue = await yTicks('Queue depth (jobs waiting)');
    expect(queue.length).toBeGreaterThan(1);
    expect(queue.every((t) => /^\d+$/.test(t))).toBe(true);
    page.removeAllListeners('websocket');
  });

  it('refreshes the overview by itself, with 15 min and 1 h views', async () => {
    await gotoOk(`/?tenant=${tenantId}&range=15m&refresh=5`);
    expect(await page.getByRole('combobox', { name: 'Time range' }).inputValue()).toBe('15m');
    const tile = page.getByTestId('range-requests');
    const before = (await tile.count()) ? Number(await tile.textContent()) : 0;
    // A marker the page would lose if it reloaded: the refresh must not reload it.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    const direct = await fetch(`${stack.apiUrl}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, prompt: 'refresh', max_tokens: 2 }),
    });
    expect(direct.status).toBe(200);
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="range-requests"]')?.textContent) > n,
      before,
      { timeout: 30_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    // The requests chart has one point per minute of the quarter hour.
    const chart = page.getByRole('figure', { name: 'Requests' });
    await chart.getByText('Show data').click();
    expect(await chart.locator('tbody tr').count()).toBe(16);
    await gotoOk(`/?tenant=${tenantId}&range=1h`);
    await page.getByRole('figure', { name: 'Requests' }).getByText('Show data').click();
    expect(await page.getByRole('figure', { name: 'Requests' }).locator('tbody tr').count()).toBe(
      61,
    );
  });

  it('fits a phone and laptop widths, and Tab reaches the main actions of every page', async () => {
    // A tenant with a name as long as allowed must not stretch the tenant pickers.
    await apiAsAdmin((token) =>
      fetch(`${stack.apiUrl}/admin/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `long-${'x'.repeat(95)}`, plan: 'demo' }),
      }).then((r) => expect(r.status).toBe(201)),
    );
    const pages: { path: string; name: string; actions: RegExp[] }[] = [
      { path: `/?tenant=${tenantId}&range=24h`, name: 'overview', actions: [/^Apply$/] },
      { path: '/tenants', name: 'tenants', actions: [/^New plan$/, /^Create tenant$/] },
      {
        path: `/tenants/${tenantId}`,
        name: 'tenant',
        actions: [/^API keys/, /^Save changes$/],
      },
      {
        path: `/keys?tenant=${tenantId}`,
        name: 'keys',
        actions: [/^Create key$/, /^Rotate key /, /^Revoke key /],
      },
      { path: '/billing', name: 'billing', actions: [/^Show$/, /^Export CSV$/] },
      { path: '/pipelines', name: 'pipelines', actions: [/^Show data$/] },
      { path: '/playground', name: 'playground', actions: [/^Prompt/, /^Send$/] },
      { path: '/audit', name: 'audit', actions: [/^Apply$/, /^Export CSV$/] },
    ];
    for (const [width, height] of [
      [1440, 900],
      [1280, 800],
      [1024, 768],
      [390, 844],
    ]) {
      await page.setViewportSize({ width, height });
      for (const p of pages) {
        await gotoOk(p.path);
        const overflow = await horizontalOverflow();
        expect({ page: p.name, width, overflow, widest: overflow ? await widest() : [] }).toEqual({
          page: p.name,
          width,
          overflow: 0,
          widest: [],
        });
        await screenshot(page, `12-${p.name}-${width}`);
        for (const picker of await page.getByRole('combobox', { name: 'Tenant' }).all()) {
          const box = (await picker.boundingBox())!;
          expect({ page: p.name, width, picker: box.width <= 16 * 16 + 1 }).toEqual({
            page: p.name,
            width,
            picker: true,
          });
        }
        if (width !== 1024) continue;
        const stops = await tabStops();
        for (const action of p.actions) {
          expect({ page: p.name, reached: stops.some((n) => action.test(n)), action }).toEqual({
            page: p.name,
            reached: true,
            action,
          });
        }
      }
    }
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('counts refused requests on the tenant page and the overview, and exports them', async () => {
    const login = await fetch(`${stack.apiUrl}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    const { token } = (await login.json()) as { token: string };
    const limited = await fetch(`${stack.apiUrl}/admin/tenants/${tenantId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tokensPerMonth: 1 }),
    });
    expect(limited.status).toBe(200);
    // End this API session again: the sign-out test counts the sessions left open.
    const logout = await fetch(`${stack.apiUrl}/admin/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(logout.status).toBe(204);
    let refused = 0;
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${stack.apiUrl}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL_NAME, prompt: 'refused', max_tokens: 1 }),
      });
      await r.text();
      if (r.status === 429) refused++;
    }
    // A monthly quota of one token, already used: every request is refused (none recorded).
    expect(refused).toBe(3);
    await gotoOk(`/tenants/${tenantId}`);
    expect(await page.getByTestId('refused-monthly_quota_exceeded').textContent()).toBe('3');
    expect(await page.getByTestId('refused-rate_limit_exceeded').textContent()).toBe('0');
    await gotoOk('/?range=24h');
    const row = page.getByTestId('refusals').getByRole('row').filter({ hasText: TENANT });
    expect(await row.getByRole('cell').allTextContents()).toEqual(['Monthly token quota', '3']);
    await screenshot(page, '07b-overview-refusals');
    const csv = await page.request.get(url('/refusals/export?range=24h'));
    expect(csv.status()).toBe(200);
    const rows = (await csv.text()).split('\r\n');
    expect(rows[0]).toBe('from,to,tenant_id,tenant,reason,refused_requests');
    expect(rows.find((l) => l.includes(tenantId))).toMatch(
      new RegExp(`,${TENANT},monthly_quota_exceeded,3$`),
    );
    expect(rows[rows.length - 2]).toMatch(/,TOTAL,,\d+$/);
  });

  it('shows the audit log filtered by tenant, actor, action and time, and exports it', async () => {
    await gotoOk('/audit');
    await page.getByRole('combobox', { name: 'Tenant' }).selectOption(tenantId);
    await page.getByLabel('Actor').fill(ADMIN.email.toUpperCase());
    await page.getByLabel('Action').fill('tenant.');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/action=tenant\./);
    const rows = page.getByTestId('audit').locator('tbody tr');
    await rows.first().waitFor();
    const inDb = await stack.prisma.auditLog.findMany({
      where: { tenantId, action: { startsWith: 'tenant.' } },
      orderBy: { id: 'desc' },
    });
    expect(await rows.locator('td:nth-child(3)').allTextContents()).toEqual(
      inDb.map((e) => e.action),
    );
    expect(inDb.map((e) => e.action)).toEqual(expect.arrayContaining(['tenant.create']));
    expect(new Set(await rows.locator('td:nth-child(2)').allTextContents())).toEqual(
      new Set([ADMIN.email]),
    );
    await screenshot(page, '10b-audit');
    // A time range before any of it holds nothing.
    await gotoOk(`/audit?tenant=${tenantId}&to=2000-01-01T00:00`);
    await page.getByTestId('no-audit').waitFor();

    const csv = await page.request.get(url(`/audit/export?tenant=${tenantId}`));
    expect(csv.status()).toBe(200);
    const lines = (await csv.text()).split('\r\n').filter(Boolean);
    expect(lines[0]).toBe(
      'id,at,actor,actor_email,action,target_type,target_id,tenant_id,tenant,details',
    );
    const all = await stack.prisma.auditLog.count({ where: { tenantId } });
    expect(lines).toHaveLength(1 + all);
    expect(lines.slice(1).every((l) => l.includes(`,${tenantId},${TENANT},`))).toBe(true);
  });

  it('revokes the key, and the next request with it is refused', async () => {
    // A playground opened before the revocation still offers the key.
    const playground = await context.newPage();
    await playground.goto(url('/playground'), { waitUntil: 'networkidle' });

    await gotoOk(`/keys?tenant=${tenantId}`);
    await page.getByRole('button', { name: `Revoke key ${keyPrefix}` }).click();
    await page
      .locator(`tr[data-key-prefix="${keyPrefix}"]`)
      .getByText('revoked', { exact: true })
      .waitFor();
    const key = await stack.prisma.apiKey.findFirstOrThrow({ where: { tenantId } });
    expect(key.status).toBe('revoked');
    await screenshot(page, '09-keys-revoked');

    const direct = await fetch(`${stack.apiUrl}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, prompt: 'again', max_tokens: 4 }),
    });
    expect(direct.status).toBe(401);

    await playground.getByRole('combobox', { name: /^Key\b/ }).selectOption(keyId);
    await playground.getByLabel('Model').fill(MODEL_NAME);
    await playground.getByRole('button', { name: 'Send' }).click();
    await playground
      .getByTestId('error-pipedec')
      .getByText(/Refused: .*revoked or expired/)
      .waitFor();
    // Words for the operator: no internal route, no status line.
    const said = await playground.getByTestId('error-pipedec').textContent();
    expect(said).not.toMatch(/\/admin\/|Request failed with status|POST /);
    await screenshot(playground, '10-playground-refused');
    await playground.close();
    // The playground's six, and the one the overview's auto-refresh saw arrive.
    expect(await stack.prisma.generationRequest.count({ where: { tenantId } })).toBe(7);
  });

  it('sends an ended session to the login, and signs out', async () => {
    await context.addCookies([
      { name: 'pd_dashboard_session', value: 'pds_expired', url: stack.dashboardUrl },
    ]);
    await page.goto(url('/tenants'));
    await page.waitForURL(/\/login\?expired=1/);
    await page.getByText('Your session has ended').waitFor();

    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back to the page asked for before the session ended.
    await page.waitForURL(url('/tenants'));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login\?signedOut=1/);
    const sessions = await stack.prisma.adminSession.findMany({ where: { revokedAt: null } });
    expect(sessions.filter((s) => s.expiresAt > new Date())).toHaveLength(1); // the first login
    await page.goto(url('/'));
    await page.waitForURL(/\/login$/);
    for (const [width, height] of [
      [1440, 900],
      [1280, 800],
      [1024, 768],
      [390, 844],
    ]) {
      await page.setViewportSize({ width, height });
      expect(await horizontalOverflow()).toBe(0);
      await screenshot(page, `12-login-${width}`);
    }
  });

  it('brings the admin back to the page asked for after signing in', async () => {
    await context.clearCookies();
    await page.goto(url('/audit?action=tenant.'));
    await page.waitForURL(/\/login\?next=%2Faudit%3Faction%3Dtenant\.$/);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(url('/audit?action=tenant.'));
    expect(await page.getByLabel('Action').inputValue()).toBe('tenant.');
  });
});
