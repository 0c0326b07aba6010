// Trading: the kill switch (behind a confirmation), positions with PnL, orders and their fills,
// balances, alerts, and the order intents the strategy actions decided with their outcome.
import {
  $, api, changed, confirmAction, dash, decimalParts, fill, forget, guarded, h, moreNote, num, pages, pill, showDone,
  signed, table, time,
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

// Positions, orders and balances are read page by page up to a bound, which "Load more" raises
// by another step: the API sorts them by key (orders by order id), so a list cut short could
// hide the newest entries, and a cut list always says so.
const LIST_STEP = 5000;
const bounds = { positions: LIST_STEP, orders: LIST_STEP, balances: LIST_STEP };

function paged(name, noun, key) {
  return {
    load: () => pages('/' + name, name, { cursor: 'after', bound: bounds[name], exact: true }),
    more: (data) => data.more && moreNote(`Showing the first ${data.items.length.toLocaleString()} ${noun} (by ${key}); there are more.`,
      () => { bounds[name] += LIST_STEP; forget(name); loadSection(name); }),
  };
}

// How each list loads and renders; alerts and intents are the newest 50 (the API answers newest
// first). A re-rendered order list also refreshes the fills of the selected order.
const SECTIONS = {
  positions: { ...paged('positions', 'positions', 'account and symbol'), render: renderPositions },
  orders: {
    ...paged('orders', 'orders', 'order id'), render: renderOrders,
    after: () => selectedOrder && showFills(selectedOrder, true),
  },
  balances: { ...paged('balances', 'balances', 'account and asset'), render: renderBalances },
  alerts: { load: () => api('GET', '/alerts?limit=50', undefined, { exact: true }), render: renderAlerts },
  intents: { load: () => api('GET', '/intents?limit=50', undefined, { exact: true }), render: renderIntents },
};

async function loadSection(name) {
  const section = SECTIONS[name];
  const data = await guarded(name, section.load, $(name));
  if (!data || !changed(name, data)) return;
  fill($(name), section.more && section.more(data), section.render(data));
  if (section.after) section.after();
}

export async function loadTrading() {
  await Promise.all(Object.keys(SECTIONS).map(loadSection));
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
  return table([
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
  ], data.items, { empty: 'No positions: fills and position events build them.' });
}

function renderOrders(data) {
  return table([
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
  ], data.items, {
    empty: 'No orders yet: order events and strategy actions create them.',
    onRow: (o) => showFills(o.orderId),
    rowClass: (o) => (o.orderId === selectedOrder ? 'selected' : ''),
  });
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
  return table([
    { label: 'Asset', get: (b) => h('strong', {}, b.asset) },
    { label: 'Available', cls: 'num', get: (b) => num(b.available) },
    { label: 'Locked', cls: 'num', get: (b) => num(b.locked) },
    { label: 'Total', cls: 'num', get: (b) => num(b.total) },
  ], data.items, { empty: 'No balances: account.balance_updated events fill this in.' });
}

function renderAlerts(data) {
  return table([
    { label: 'At', get: (a) => time(a.at) },
    { label: 'Kind', get: (a) => pill(a.kind, a.kind === 'system' ? 'info' : 'warn') },
    { label: 'Subject', get: (a) => a.subject },
    { label: 'Message', cls: 'wrap', get: (a) => a.message },
  ], data.alerts, { empty: 'No alerts: overfills, conflicting duplicates and margin calls would show here.' });
}

function renderIntents(data) {
  return table([
    { label: 'At', get: (i) => time(i.createdAt) },
    { label: 'Action', get: (i) => i.action },
    { label: 'Symbol', get: (i) => i.symbol || dash },
    { label: 'Intent', cls: 'wrap', get: (i) => describeIntent(i.intent) },
    { label: 'Outcome', get: (i) => pill(i.outcome) },
    { label: 'Reason / broker', cls: 'wrap', get: (i) => i.reason || i.brokerResponse || dash },
    { label: 'Client order id', cls: 'hide-narrow', get: (i) => h('span', { class: 'mono' }, i.clientOrderId) },
  ], data.intents, { empty: 'No order intents: routes to signal_to_order, bracket_on_fill or margin_guard create them.' });
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

