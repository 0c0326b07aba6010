// The dashboard end to end, in a real headless Chromium driven by playwright-core, against a
// running `tradehook serve` (started by .ci/ui, which passes TRADEHOOK_URL, TRADEHOOK_TOKEN and
// TRADEHOOK_SECRET). The tests run in order on one signed-in page, like an operator would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('TRADEHOOK_URL');
const TOKEN = required('TRADEHOOK_TOKEN');
const SECRET = required('TRADEHOOK_SECRET');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.UI_SCREENSHOT_DIR;
const RUN = randomUUID().slice(0, 8);

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through .ci/ui`);
  return value;
}

// ---------- talking to the gateway directly ----------

/** POSTs a seed-001 event to the default source, signed like a real sender; returns `evt_…`. */
async function sendEvent(type, data, id = `${type}-${RUN}-${randomUUID()}`) {
  const body = JSON.stringify({ id, event: type, timestamp: new Date().toISOString(), data });
  const signature = createHmac('sha256', SECRET).update(body).digest('hex');
  const response = await fetch(`${BASE}/webhook`, {
    method: 'POST', body, headers: { 'content-type': 'application/json', 'x-webhook-signature': signature },
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  assert.equal(answer.status, 'accepted');
  return answer.id;
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${BASE}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** GETs `path` and answers its body as text: the numbers as the gateway wrote them. */
async function apiText(path) {
  const response = await fetch(`${BASE}/api/v1${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await response.text();
  assert.ok(response.ok, `GET ${path}: ${response.status} ${text}`);
  return text;
}

/** Every item of a paged list, following `next` (passed back as `cursor`). */
async function listAll(path, key, cursor) {
  const items = [];
  let next = null;
  do {
    const page = await api('GET', `${path}?limit=1000${next === null ? '' : `&${cursor}=${encodeURIComponent(next)}`}`);
    items.push(...page[key]);
    next = page.next ?? null;
  } while (next !== null);
  return items;
}

/** Runs the `sends` (functions returning promises), 16 at a time. */
async function sendAll(sends) {
  const results = [];
  for (let at = 0; at < sends.length; at += 16) {
    results.push(...await Promise.all(sends.slice(at, at + 16).map((send) => send())));
  }
  return results;
}

/** Polls `check` until it returns something truthy (or throws after `seconds`). */
async function eventually(what, check, seconds = 15) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// ---------- a webhook receiver the test controls ----------

const receiver = { healthy: false, received: [] };
const receiverServer = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => { body += chunk; });
  request.on('end', () => {
    if (receiver.healthy) {
      receiver.received.push({ id: request.headers['webhook-id'], body });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    } else {
      response.writeHead(500, { 'content-type': 'text/plain' }).end('receiver is down for the test');
    }
  });
});

// ---------- the browser ----------

let browser;
let page;
const consoleErrors = [];

before(async () => {
  await new Promise((resolve) => receiverServer.listen(0, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives every launch a fresh temporary profile (user-data-dir).
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // A fixed locale: the numbers asserted below are grouped the en-US way.
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  // Script errors only: the browser also logs refused requests (the wrong token's 401) as errors.
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
});

after(async () => {
  await browser?.close();
  receiverServer.close();
});

async function shoot(name, viewport) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  const previous = page.viewportSize();
  if (viewport) await page.setViewportSize(viewport);
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((toast) => toast.remove()));
  await page.waitForTimeout(600);
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage: !name.startsWith('live') });
  if (viewport) await page.setViewportSize(previous);
}

/** For screenshots: a minute of varying signed traffic (and a few refusals) for the chart. */
async function demoTraffic(seconds) {
  const symbols = ['BTC/USD', 'ETH/USD', 'SOL/USD'];
  const started = Date.now();
  for (let tick = 0; Date.now() - started < seconds * 1000; tick += 1) {
    const burst = Math.round(5 + 3 * Math.sin(tick / 9) + 2 * Math.sin(tick / 2.3));
    const sends = Array.from({ length: Math.max(burst, 1) }, (_, i) => {
      const symbol = symbols[(tick + i) % symbols.length];
      const orderId = `demo-${RUN}-${tick}-${i}`;
      return sendEvent('order.created', { orderId, symbol, side: i % 2 ? 'sell' : 'buy', type: 'limit',
        quantity: 0.1 + (i % 4) / 10, price: 100 + tick, status: 'pending' });
    });
    if (tick % 17 === 5) sends.push(fetch(`${BASE}/webhook`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }));
    await Promise.all(sends);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('dashboard', () => {
  test('serves its page and files from the binary, with a strict content security policy', async () => {
    const response = await fetch(`${BASE}/ui`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^text\/html/);
    assert.match(response.headers.get('content-security-policy'), /script-src 'self'/);
    const html = await response.text();
    assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org)/, 'no external resource (it must work offline)');
    for (const file of ['app.js', 'core.js', 'live.js', 'trading.js', 'deliveries.js', 'dlq.js', 'app.css', 'icon.svg']) {
      assert.equal((await fetch(`${BASE}/ui/${file}`)).status, 200, file);
    }
  });

  test('sign in: a wrong token is refused on the form, the right one opens the dashboard', async () => {
    await page.goto(`${BASE}/ui`);
    await page.locator('#token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not valid.').waitFor();
    assert.ok(await page.locator('#nav').isHidden());

    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#view-live').waitFor();
    await page.locator('#feed-state', { hasText: 'live' }).waitFor();
    assert.ok(!page.url().includes(TOKEN), 'the token is never in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tradehook.adminToken')), TOKEN);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing kept beyond the session');
  });

  test('an event sent now appears in the live feed, is processed, and its payload opens', async () => {
    const orderId = `ui-order-${RUN}`;
    const id = await sendEvent('order.created', {
      orderId, symbol: 'BTC/USD', side: 'buy', type: 'limit', quantity: 0.5, price: 48000, status: 'pending',
    });
    const row = page.locator(`#feed-rows tr[data-id="${id}"]`);
    await row.waitFor();
    await assert.doesNotReject(row.locator('td', { hasText: 'order.created' }).waitFor());
    await row.locator('.pill', { hasText: 'applied' }).waitFor();

    await row.getByRole('link', { name: id }).click();
    const dialog = page.locator('#inspect');
    await dialog.getByText(`"orderId": "${orderId}"`).waitFor();
    const headers = await dialog.locator('pre.json').nth(1).textContent();
    assert.doesNotMatch(headers, new RegExp(SECRET), 'no secret in the shown headers');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'hidden' });

    // The ingest chart and the numbers fill in from the per-second history.
    await page.locator('#chart-rate svg path.line-rate').waitFor();
    await eventually('the ingest rate to count the event', async () =>
      (await page.locator('#stat-rate').textContent()) !== '0');
  });

  test('trading state, intents and the paper broker show on the Trading view', async () => {
    await sendEvent('account.balance_updated', { asset: 'USD', available: 95000, locked: 5000, total: 100000 });
    await sendEvent('signal.generated', {
      symbol: 'BTC/USD', recommendation: 'buy', confidence: 80, quantity: 0.25, price: 50000, strategy: 'e2e',
    });
    await eventually('the paper fill to become a position', async () => {
      const positions = await api('GET', '/positions');
      return positions.positions.some((p) => p.symbol === 'BTC/USD' && p.side === 'long');
    });
    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    await page.locator('#positions td', { hasText: 'BTC/USD' }).first().waitFor();
    await page.locator('#balances td', { hasText: 'USD' }).first().waitFor();
    await page.locator('#intents td', { hasText: 'signal_to_order' }).first().waitFor();
    await page.locator('#intents td', { hasText: 'bracket_on_fill' }).first().waitFor();
    await page.locator('#orders td', { hasText: `ui-order-${RUN}` }).click();
    await page.getByText(`Fills of ui-order-${RUN}`).waitFor();
    // The venue reports more than the fills hold: the position says so beside its quantity.
    await sendEvent('position.updated', { symbol: 'BTC/USD', side: 'long', quantity: 0.3, markPrice: 50100 });
    await page.locator('#positions .pill', { hasText: 'venue 0.3' }).waitFor();
    await shoot('trading-desktop.png');
  });

  test('kill switch: cancelling the confirmation changes nothing, confirming turns it on and off', async () => {
    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    assert.equal((await api('GET', '/killswitch')).on, false);
    const toggle = page.locator('#kill-toggle');
    await toggle.filter({ hasText: 'Turn kill switch on' }).waitFor();

    await toggle.click();
    const confirm = page.locator('#confirm');
    await confirm.getByText('Turn the kill switch ON?').waitFor();
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'hidden' });
    assert.equal((await api('GET', '/killswitch')).on, false, 'cancel leaves it off');

    await toggle.click();
    await confirm.getByRole('button', { name: 'Turn on' }).click();
    await page.locator('#kill-indicator').waitFor();
    assert.equal((await api('GET', '/killswitch')).on, true, 'the API says it is on');
    await toggle.filter({ hasText: 'Turn kill switch off' }).waitFor();

    await toggle.click();
    await confirm.getByRole('button', { name: 'Turn off' }).click();
    await page.locator('#kill-indicator').waitFor({ state: 'hidden' });
    assert.equal((await api('GET', '/killswitch')).on, false, 'and off again');
  });

  test('dead letters: a replayed delivery leaves the list for good; a bad event replayed comes back and is discarded', async () => {
    // A subscription whose receiver fails: its delivery becomes a dead letter after one retry.
    const created = await api('POST', '/webhooks', {
      url: `http://127.0.0.1:${receiverServer.address().port}/hook`, events: ['account.balance_updated'],
      name: `e2e-${RUN}`,
    });
    const deliveredEvent = await sendEvent('account.balance_updated', { asset: 'EUR', available: 10, locked: 0, total: 10 });
    // A schema-invalid event (negative quantity) is acknowledged, then dead-lettered.
    const badEvent = await sendEvent('order.created', {
      orderId: `ui-bad-${RUN}`, symbol: 'BTC/USD', side: 'buy', type: 'market', quantity: -1, price: 0, status: 'pending',
    });
    const entries = await eventually('both dead letters', async () => {
      const list = (await api('GET', '/dlq')).deadLetters;
      const delivery = list.find((d) => d.eventId === deliveredEvent && d.kind === 'delivery');
      const bad = list.find((d) => d.eventId === badEvent && d.kind === 'event');
      return delivery && bad ? { delivery, bad } : null;
    });

    await page.getByRole('link', { name: /Dead letters/ }).click();
    const deliveryRow = page.locator(`#dlq tr[data-key="${entries.delivery.id}"]`);
    const badRow = page.locator(`#dlq tr[data-key="${entries.bad.id}"]`);
    await deliveryRow.waitFor();
    await badRow.getByText(/quantity/).first().waitFor();
    await shoot('dlq-desktop.png');

    // Inspect shows the attempt history.
    await deliveryRow.getByRole('button', { name: 'Inspect' }).click();
    await page.locator('#inspect').getByText(/answered 500/).first().waitFor();
    await page.locator('#inspect').getByRole('button', { name: 'Close' }).click();

    // The receiver is back: replaying delivers, and the entry is gone for good.
    receiver.healthy = true;
    await deliveryRow.getByRole('button', { name: 'Replay' }).click();
    await deliveryRow.waitFor({ state: 'detached' });
    await eventually('the replayed delivery to arrive', async () => receiver.received.some((r) => r.id === deliveredEvent));
    await page.waitForTimeout(1000);
    const afterReplay = (await api('GET', '/dlq')).deadLetters;
    assert.ok(!afterReplay.some((d) => d.eventId === deliveredEvent), 'the delivery did not come back');

    // The invalid event fails again when replayed: its entry leaves, a new one (new id) takes its place.
    await badRow.getByRole('button', { name: 'Replay' }).click();
    await badRow.waitFor({ state: 'detached' });
    const again = await eventually('the invalid event to be dead-lettered again', async () =>
      (await api('GET', '/dlq')).deadLetters.find((d) => d.eventId === badEvent));
    assert.notEqual(again.id, entries.bad.id);

    // Discard it through the selection and the confirmation dialog.
    const againRow = page.locator(`#dlq tr[data-key="${again.id}"]`);
    await againRow.locator('input[type=checkbox]').check();
    await page.locator('#dlq-discard-selected').click();
    await page.locator('#confirm').getByRole('button', { name: 'Discard' }).click();
    await againRow.waitFor({ state: 'detached' });
    assert.ok(!(await api('GET', '/dlq')).deadLetters.some((d) => d.eventId === badEvent), 'discarded');
    if ((await api('GET', '/dlq')).deadLetters.length === 0) {
      await page.getByText('The dead-letter queue is empty').waitFor();
    }

    // Deliveries: the subscription shows its health, and can be disabled and enabled again.
    await page.getByRole('link', { name: 'Deliveries' }).click();
    const subscription = page.locator('#subscriptions tr', { hasText: `e2e-${RUN}` });
    await subscription.locator('.pill', { hasText: 'active' }).waitFor();
    await subscription.getByRole('button', { name: 'Log' }).click();
    await page.locator('#delivery-log td', { hasText: 'receiver is down for the test' }).first().waitFor();
    await page.locator('#delivery-log td', { hasText: 'answered 500' }).first().waitFor();
    await page.locator('#delivery-log .pill', { hasText: 'delivered' }).first().waitFor();
    await subscription.getByRole('button', { name: 'Disable' }).click();
    await page.locator('#confirm').getByRole('button', { name: 'Disable' }).click();
    await subscription.locator('.pill', { hasText: 'disabled' }).waitFor();
    assert.equal((await api('GET', `/webhooks/${created.id}`)).active, false);
    await subscription.getByRole('button', { name: 'Enable' }).click();
    await subscription.locator('.pill', { hasText: 'active' }).waitFor();
    assert.equal((await api('GET', `/webhooks/${created.id}`)).active, true);
    await shoot('deliveries-desktop.png');
  });

  test('screenshots (when asked) and no script errors on the way', async () => {
    await page.getByRole('link', { name: 'Live', exact: true }).click();
    await page.locator('#view-live').waitFor();
    if (SCREENSHOTS) await demoTraffic(Number(process.env.UI_DEMO_SECONDS || 45));
    await shoot('live-desktop.png');
    await shoot('live-phone.png', { width: 390, height: 844 });
    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    await shoot('trading-phone.png', { width: 390, height: 844 });
    assert.deepEqual(consoleErrors, []);
  });

  test('decimals show every digit the API holds: never rounded, never a non-zero value shown as 0', async () => {
    // End to end: a balance, an order and a mark price with more digits than a float holds.
    const asset = `EXACT${RUN}`;
    const symbol = `MARK-${RUN}`;
    const orderId = `exact-${RUN}`;
    await sendEvent('account.balance_updated', {
      asset, available: '0.000000000123', locked: '1.123456789012345678', total: '12345678901234567.123456789',
    });
    await sendEvent('position.updated', { symbol, side: 'long', quantity: '0.5', markPrice: '0.0000000123' });
    await sendEvent('order.created', {
      orderId, symbol, side: 'buy', type: 'limit', quantity: '12345678901234567.123456789', price: '0.0000000123', status: 'pending',
    });
    await eventually('the gateway to hold the exact figures', async () => {
      const [balances, positions, order] = await Promise.all([apiText('/balances?limit=1000'),
        apiText(`/positions?symbol=${encodeURIComponent(symbol)}`), fetch(`${BASE}/api/v1/orders/${orderId}`,
          { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.text())]);
      return balances.includes('"available":0.000000000123') && balances.includes('"total":12345678901234567.123456789')
        && positions.includes('"markPrice":0.0000000123') && order.includes('"quantity":12345678901234567.123456789');
    });

    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    const balance = page.locator('#balances tr', { hasText: asset });
    await balance.waitFor();
    assert.deepEqual(await balance.locator('td').allTextContents(),
      [asset, '0.000000000123', '1.123456789012345678', '12,345,678,901,234,567.123456789']);
    const position = page.locator('#positions tr', { hasText: symbol });
    await position.waitFor();
    assert.equal(await position.locator('td').nth(6).textContent(), '0.0000000123', 'mark price');
    const order = page.locator('#orders tr', { hasText: orderId });
    await order.waitFor();
    assert.equal(await order.locator('td').nth(5).textContent(), '12,345,678,901,234,567.123456789', 'order quantity');
    assert.equal(await order.locator('td').nth(6).textContent(), '0.0000000123', 'order price');
    // Still right-aligned in tabular figures.
    assert.equal(await balance.locator('td').nth(1).evaluate((td) => getComputedStyle(td).textAlign), 'right');
    assert.equal(await balance.locator('td').nth(1).evaluate((td) => getComputedStyle(td).fontVariantNumeric), 'tabular-nums');

    // The formatting itself, in the page: exact strings in, every digit out.
    const formatted = await page.evaluate(async () => {
      const { num, signed, parseExact } = await import('/ui/core.js');
      const pnl = (value) => { const span = signed(value); return [span.textContent, span.className]; };
      return {
        nums: ['0.000000000123', '12345678901234567.123456789', '1.123456789012345678', '0.0000000123', '-2.50', '-0', '1e-12']
          .map((value) => num(value)),
        pnl: [pnl('-0.000000001'), pnl('0.00000000000001'), pnl('0')],
        parsed: parseExact('{"a":12345678901234567.123456789,"b":"1.5 \\" 2","c":[-0.000000000123,true,null]}'),
      };
    });
    assert.deepEqual(formatted.nums, ['0.000000000123', '12,345,678,901,234,567.123456789', '1.123456789012345678',
      '0.0000000123', '-2.5', '0', '0.000000000001']);
    assert.deepEqual(formatted.pnl, [['-0.000000001', 'neg'], ['+0.00000000000001', 'pos'], ['0', '']]);
    assert.deepEqual(formatted.parsed, { a: '12345678901234567.123456789', b: '1.5 " 2', c: ['-0.000000000123', true, null] });
  });

  test("a position the venue reports without fills shows the venue's side and quantity, marked as the venue's", async () => {
    const long = `VENUE-L-${RUN}`;
    const short = `VENUE-S-${RUN}`;
    await sendEvent('position.updated', { symbol: long, side: 'long', quantity: 1000000 });
    await sendEvent('position.updated', { symbol: short, side: 'short', quantity: 250 });
    const reported = await eventually('both venue positions', async () => {
      const { positions } = await api('GET', '/positions?limit=1000');
      const found = [long, short].map((symbol) => positions.find((p) => p.symbol === symbol));
      return found.every(Boolean) ? found : null;
    });
    // What the API says: no fills, so nothing held and nothing to compare; the venue's figure.
    assert.deepEqual(reported.map((p) => [p.side, p.netQuantity, p.venueQuantity, p.mismatch]),
      [['flat', 0, 1000000, null], ['flat', 0, -250, null]]);

    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    for (const [symbol, side, quantity] of [[long, 'long', '1,000,000'], [short, 'short', '250']]) {
      const row = page.locator('#positions tr', { hasText: symbol });
      await row.waitFor();
      const cells = await row.locator('td').allTextContents();
      assert.equal(cells[1], `${side} venue`, `${symbol}: the venue's side, labelled`);
      assert.equal(cells[2], `${quantity} venue`, `${symbol}: the venue's quantity, labelled`);
      assert.match(await row.locator('td').nth(2).locator('[title]').first().getAttribute('title'), /venue reports/);
    }
  });

  test('orders, positions and balances read every page: entries past the API page size show', async () => {
    const orderIds = Array.from({ length: 205 }, (_, i) => `zz-page-${RUN}-${String(i).padStart(3, '0')}`);
    const symbols = Array.from({ length: 101 }, (_, i) => `ZZ-PAGE-${RUN}-${String(i).padStart(3, '0')}`);
    const assets = Array.from({ length: 101 }, (_, i) => `ZZPAGE${RUN}${String(i).padStart(3, '0')}`);
    await sendAll([
      ...orderIds.map((orderId) => () => sendEvent('order.created', {
        orderId, symbol: 'PAGE/USD', side: 'buy', type: 'limit', quantity: 1, price: 10, status: 'pending',
      })),
      ...symbols.map((symbol) => () => sendEvent('position.updated', { symbol, side: 'long', quantity: 1 })),
      ...assets.map((asset) => () => sendEvent('account.balance_updated', { asset, available: 1, locked: 0, total: 1 })),
    ]);
    const lists = await eventually('every order, position and balance to be applied', async () => {
      const [orders, positions, balances] = await Promise.all([listAll('/orders', 'orders', 'after'),
        listAll('/positions', 'positions', 'after'), listAll('/balances', 'balances', 'after')]);
      const has = (items, field, wanted) => { const seen = new Set(items.map((i) => i[field])); return wanted.every((w) => seen.has(w)); };
      const done = has(orders, 'orderId', orderIds) && has(positions, 'symbol', symbols) && has(balances, 'asset', assets);
      return done ? { orders, positions, balances } : null;
    }, 60);
    // More than the old requests read (orders: 200; positions and balances: the API's default 100).
    assert.ok(lists.orders.length > 200 && lists.positions.length > 100 && lists.balances.length > 100);

    await page.getByRole('link', { name: 'Trading', exact: true }).click();
    const names = ['orders', 'positions', 'balances'];
    const want = Object.fromEntries(names.map((name) => [name, lists[name].length]));
    let rows = null;
    await eventually('every order, position and balance to be a row', async () => {
      rows = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await page.locator(`#${name} tbody tr`).count()])));
      return JSON.stringify(rows) === JSON.stringify(want);
    }).catch(() => {});
    assert.deepEqual(rows, want, 'rows shown for each list, and the entries the API has');
    await page.locator('#orders td', { hasText: orderIds.at(-1) }).waitFor();
    await page.locator('#positions td', { hasText: symbols.at(-1) }).waitFor();
    await page.locator('#balances td', { hasText: assets.at(-1) }).waitFor();
    assert.equal(await page.locator('#view-trading .more').count(), 0, 'nothing cut, so no "more" line');

    // The paging stops at its bound and says whether more follow, looking one entry ahead.
    const cut = await page.evaluate(async () => {
      const { pages } = await import('/ui/core.js');
      const read = async (bound) => {
        const { items, more } = await pages('/orders', 'orders', { cursor: 'after', bound, pageSize: 100 });
        return { count: items.length, distinct: new Set(items.map((o) => o.orderId)).size, more };
      };
      return [await read(150), await read(100000)];
    });
    assert.deepEqual(cut, [{ count: 150, distinct: 150, more: true },
      { count: lists.orders.length, distinct: lists.orders.length, more: false }]);
  });

  test('dead letters: every entry is listed and "Select all" reaches every one the badge counts', async () => {
    const bad = await sendAll(Array.from({ length: 505 }, (_, i) => () => sendEvent('order.created', {
      orderId: `ui-bad-page-${RUN}-${i}`, symbol: 'BTC/USD', side: 'buy', type: 'market', quantity: -1, price: 0, status: 'pending',
    })));
    const entries = await eventually('505 dead letters', async () => {
      const list = await listAll('/dlq', 'deadLetters', 'before');
      const ids = new Set(list.map((d) => d.eventId));
      return bad.every((id) => ids.has(id)) ? list : null;
    }, 60);
    assert.ok(entries.length > 500, 'more than the old request read');

    await page.getByRole('link', { name: /Dead letters/ }).click();
    await eventually('every dead letter to be a row', async () =>
      (await page.locator('#dlq tbody tr').count()) === entries.length, 30);
    await eventually('the badge to count them all', async () =>
      (await page.locator('#dlq-badge').textContent()) === String(entries.length), 30);
    assert.equal(await page.locator('#dlq .more').count(), 0, 'nothing cut, so no "more" line');

    await page.locator('#dlq thead input[type=checkbox]').check();
    await page.locator('#dlq-discard-selected', { hasText: `Discard ${entries.length} selected` }).waitFor();
    await page.locator('#dlq-discard-selected').click();
    await page.locator('#confirm').getByRole('button', { name: 'Discard' }).click();
    await page.getByText('The dead-letter queue is empty').waitFor({ timeout: 120000 });
    assert.equal((await api('GET', '/dlq')).deadLetters.length, 0, 'every one discarded');
    assert.deepEqual(consoleErrors, [], 'no script errors');
  });
});
