// Trading: the kill switch (behind a confirmation), positions with PnL, orders and their fills,
// balances, alerts, and the order intents the strategy actions decided with their outcome.
import {
  $, api, changed, confirmAction, dash, decimalParts, fill, guarded, h, num, pill, showDone, signed, table, time,
} from './core.js';

let killOn = null;
let selectedOrder = null;
export function renderKill(on) {
  killOn = on;
  const card = document.querySelector('.card.kill');
  card.classList.toggle('on', on);
  $('kill-text').textContent = on
    ? 'ON: signals are refused instead of becoming orders. Protective orders (brackets, margin reductions) still go out.'
    : 'Off: signals become orders after the risk checks.';
  $('kill-toggle').textContent = on ? 'Turn kill switch off' : 'Turn kill switch on';
  $('kill-toggle').className = on ? 'primary' : 'danger-btn';
}

export async function toggleKill() {
  if (killOn === null) return;
  const want = !killOn;
  const ok = await confirmAction(
    want ? 'Turn the kill switch ON?' : 'Turn the kill switch off?',
    want ? 'No new entries will be placed from signals until it is turned off. Closes and protective orders still go out.'
      : 'Signals will become orders again after the risk checks.',
    want ? 'Turn on' : 'Turn off');
  if (!ok) return;
  const result = await guarded('kill switch', () => api('POST', '/killswitch', { on: want }));
  if (result) {
    showDone(result.on ? 'Kill switch is ON' : 'Kill switch is off');
    $('kill-indicator').hidden = !result.on;
    renderKill(result.on);
  }
}

export async function loadTrading() {
  const sections = [
    ['positions', '/positions', renderPositions],
    ['orders', '/orders?limit=200', renderOrders],
    ['balances', '/balances', renderBalances],
    ['alerts', '/alerts?limit=50', renderAlerts],
    ['intents', '/intents?limit=50', renderIntents],
  ];
  await Promise.all(sections.map(async ([name, path, render]) => {
    const data = await guarded(name, () => api('GET', path, undefined, { exact: true }), $(name));
    if (data && changed(name, data)) render(data);
  }));
}

const isZero = (value) => { const parts = decimalParts(value); return !parts || parts.zero; };
const SIDE_CLASS = { long: 'ok', short: 'danger' };

// The venue reports a position the fills do not hold (a source that sends position snapshots but
// no fills): nothing to compare, so no mismatch, but the position is the venue's figure.
function venueOnly(p) {
  return !p.mismatch && isZero(p.netQuantity) && p.venueQuantity !== null && p.venueQuantity !== undefined
    && !isZero(p.venueQuantity);
}

function renderPositions(data) {
  const venueMark = () => h('span', { class: 'muted small' }, ' venue');
  fill($('positions'), table([
    { label: 'Symbol', get: (p) => h('strong', {}, p.symbol) },
    { label: 'Side', get: (p) => {
      if (!venueOnly(p)) return pill(p.side, SIDE_CLASS[p.side] || '');
      const side = decimalParts(p.venueQuantity).negative ? 'short' : 'long';
      return h('span', { title: 'the venue reports this side; no fills hold this position' }, pill(side, SIDE_CLASS[side]), venueMark());
    } },
    // When the venue's newest snapshot disagrees with the fills, its figure shows beside ours;
    // when only the venue holds the position, the figure is the venue's, marked so.
    { label: 'Quantity', cls: 'num', get: (p) => {
      if (p.mismatch) {
        return h('span', { title: `venue reports ${num(p.mismatch.venue)}, fills hold ${num(p.mismatch.held)}` },
          num(p.quantity), ' ', pill('venue ' + num(p.mismatch.venue), 'danger'));
      }
      if (venueOnly(p)) {
        return h('span', { title: 'the venue reports this quantity; no fills hold this position' },
          num(String(p.venueQuantity).replace(/^-/, '')), ' ', pill('venue', 'info'));
      }
      return num(p.quantity);
    } },
    { label: 'Unrealized PnL', cls: 'num', get: (p) => signed(p.unrealizedPnl) },
    { label: 'Realized PnL', cls: 'num', get: (p) => signed(p.realizedPnl) },
    { label: 'Avg price', cls: 'num', get: (p) => num(p.averagePrice) },
    { label: 'Mark', cls: 'num', get: (p) => num(p.markPrice) },
    { label: 'Margin ratio', cls: 'num hide-narrow', get: (p) => num(p.marginRatio) },
    { label: 'Account', cls: 'hide-narrow', get: (p) => p.account || dash },
  ], data.positions, { empty: 'No positions: fills and position events build them.' }));
}

function renderOrders(data) {
  fill($('orders'), table([
    { label: 'Order', get: (o) => h('span', { class: 'mono' }, o.orderId) },
    { label: 'Status', get: (o) => pill(o.status) },
    { label: 'Symbol', get: (o) => o.symbol || dash },
    { label: 'Side', get: (o) => o.side || dash },
    { label: 'Type', cls: 'hide-narrow', get: (o) => o.type || dash },
    { label: 'Qty', cls: 'num', get: (o) => num(o.quantity) },
    { label: 'Price', cls: 'num hide-narrow', get: (o) => num(o.price) },
    { label: 'Filled', cls: 'num', get: (o) => num(o.filledQuantity) },
    { label: 'Avg fill', cls: 'num', get: (o) => num(o.averagePrice) },
    { label: 'Origin', cls: 'hide-narrow', get: (o) => o.origin || dash },
    { label: 'Updated', cls: 'hide-narrow', get: (o) => time(o.updatedAt) },
  ], data.orders, {
    empty: 'No orders yet: order events and strategy actions create them.',
    onRow: (o) => showFills(o.orderId),
    rowClass: (o) => (o.orderId === selectedOrder ? 'selected' : ''),
  }));
  if (selectedOrder) showFills(selectedOrder, true);
}

async function showFills(orderId, quiet) {
  selectedOrder = orderId;
  for (const row of document.querySelectorAll('#orders tbody tr')) {
    row.classList.toggle('selected', row.firstChild.textContent === orderId);
  }
  const order = await guarded('order ' + orderId, () => api('GET', '/orders/' + encodeURIComponent(orderId), undefined, { exact: true }), quiet ? undefined : $('order-fills'));
  if (!order) return;
  fill($('order-fills'), h('h3', {}, `Fills of ${orderId}`), table([
    { label: 'Fill', get: (f) => h('span', { class: 'mono' }, f.key) },
    { label: 'Quantity', cls: 'num', get: (f) => num(f.quantity) },
    { label: 'Price', cls: 'num', get: (f) => num(f.price) },
    { label: 'Commission', cls: 'num', get: (f) => num(f.commission) },
    { label: 'At', get: (f) => time(f.at) },
  ], order.fills || [], { empty: 'No fills for this order yet.' }));
}

function renderBalances(data) {
  fill($('balances'), table([
    { label: 'Asset', get: (b) => h('strong', {}, b.asset) },
    { label: 'Available', cls: 'num', get: (b) => num(b.available) },
    { label: 'Locked', cls: 'num', get: (b) => num(b.locked) },
    { label: 'Total', cls: 'num', get: (b) => num(b.total) },
  ], data.balances, { empty: 'No balances: account.balance_updated events fill this in.' }));
}

function renderAlerts(data) {
  fill($('alerts'), table([
    { label: 'At', get: (a) => time(a.at) },
    { label: 'Kind', get: (a) => pill(a.kind, a.kind === 'system' ? 'info' : 'warn') },
    { label: 'Subject', get: (a) => a.subject },
    { label: 'Message', cls: 'wrap', get: (a) => a.message },
  ], data.alerts, { empty: 'No alerts: overfills, conflicting duplicates and margin calls would show here.' }));
}

function renderIntents(data) {
  fill($('intents'), table([
    { label: 'At', get: (i) => time(i.createdAt) },
    { label: 'Action', get: (i) => i.action },
    { label: 'Symbol', get: (i) => i.symbol || dash },
    { label: 'Intent', cls: 'wrap', get: (i) => describeIntent(i.intent) },
    { label: 'Outcome', get: (i) => pill(i.outcome) },
    { label: 'Reason / broker', cls: 'wrap', get: (i) => i.reason || i.brokerResponse || dash },
    { label: 'Client order id', cls: 'hide-narrow', get: (i) => h('span', { class: 'mono' }, i.clientOrderId) },
  ], data.intents, { empty: 'No order intents: routes to signal_to_order, bracket_on_fill or margin_guard create them.' }));
}

// "place take profit: sell 0.25 limit @ 52000", "cancel stop loss: …".
function describeIntent(intent) {
  if (!intent || typeof intent !== 'object') return dash;
  const role = intent.role ? String(intent.role).replace(/_/g, ' ') : '';
  const order = [intent.side, num(intent.quantity), intent.orderType,
    intent.price !== undefined && intent.price !== null ? '@ ' + num(intent.price) : null,
    intent.stopPrice !== undefined && intent.stopPrice !== null ? 'trigger ' + num(intent.stopPrice) : null]
    .filter((p) => p !== undefined && p !== null && p !== dash);
  const head = [intent.op, role].filter(Boolean).join(' ');
  return head || order.length ? `${head}${head && order.length ? ': ' : ''}${order.join(' ')}` : JSON.stringify(intent).slice(0, 80);
}

