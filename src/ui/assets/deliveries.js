// Deliveries: subscriptions with their health (success rate, last error, disabled reason),
// each one's delivery log, and enable/disable.
import {
  $, api, changed, confirmAction, dash, eventLink, fill, forget, guarded, h, ms, pill, showDone, table, time,
} from './core.js';

let logWebhook = null;

/** Hides the delivery log. */
export function closeLog() {
  logWebhook = null;
  $('log-card').hidden = true;
}

export async function loadDeliveries() {
  const list = await guarded('subscriptions', () => api('GET', '/webhooks'), $('subscriptions'));
  if (!list) return;
  const detailed = await Promise.all(list.webhooks.map((w) =>
    guarded('subscription ' + w.id, () => api('GET', '/webhooks/' + encodeURIComponent(w.id))).then((d) => d || w)));
  if (changed('subscriptions', detailed)) renderSubscriptions(detailed);
  if (logWebhook) await loadLog(logWebhook, true);
}

function successRate(health) {
  if (!health || !health.attempts24h) return dash;
  const rate = (100 * health.delivered24h) / health.attempts24h;
  return h('span', { class: rate >= 99 ? 'pos' : rate < 90 ? 'neg' : '' }, `${rate.toFixed(rate === 100 ? 0 : 1)} %`,
    h('span', { class: 'muted small' }, ` (${health.delivered24h}/${health.attempts24h})`));
}

function renderSubscriptions(subscriptions) {
  fill($('subscriptions'), table([
    { label: 'Subscription', cls: 'wrap', get: (s) => [h('strong', {}, s.name || s.id), h('div', { class: 'muted small mono' }, s.url)] },
    { label: 'Events', cls: 'hide-narrow', get: (s) => s.events.join(', ') },
    { label: 'State', get: (s) => s.active ? pill('active') : [pill('disabled'), s.disabledReason ? h('div', { class: 'muted small' }, s.disabledReason) : null] },
    { label: 'Success 24 h', get: (s) => successRate(s.health) },
    { label: 'Last success', cls: 'hide-narrow', get: (s) => time(s.health && s.health.lastSuccessAt) },
    { label: 'Last error', cls: 'wrap', get: (s) => (s.health && s.health.lastError)
      ? [h('span', { class: 'neg' }, s.health.lastError), s.health.failingSince ? h('div', { class: 'muted small' }, 'failing since ' + time(s.health.failingSince)) : null]
      : dash },
    { label: 'Waiting', cls: 'num', get: (s) => s.health ? `${s.health.pending}${s.health.held ? ' + ' + s.health.held + ' held' : ''}` : dash },
    { label: '', get: (s) => h('div', { class: 'actions' },
      h('button', { class: 'small', onclick: (e) => { e.stopPropagation(); loadLog(s); } }, 'Log'),
      h('button', { class: 'small ' + (s.active ? '' : 'primary'), onclick: (e) => { e.stopPropagation(); setActive(s, !s.active); } }, s.active ? 'Disable' : 'Enable')) },
  ], subscriptions, { empty: 'No subscriptions. Create one with POST /api/v1/webhooks {url, events}; it shows here with its delivery health.' }));
}

async function setActive(subscription, active) {
  const name = subscription.name || subscription.id;
  if (!active) {
    const ok = await confirmAction(`Disable ${name}?`, 'Its deliveries are held (kept) until it is enabled again.', 'Disable');
    if (!ok) return;
  }
  const result = await guarded(name, () => api('PUT', '/webhooks/' + encodeURIComponent(subscription.id), { active }));
  if (result) {
    showDone(`${name} ${active ? 'enabled: held deliveries resume' : 'disabled'}`);
    forget('subscriptions');
    await loadDeliveries();
  }
}

async function loadLog(subscription, quiet) {
  logWebhook = subscription;
  $('log-card').hidden = false;
  $('log-title').textContent = 'Delivery log of ' + (subscription.name || subscription.id);
  const log = await guarded('delivery log', () => api('GET', `/webhooks/${encodeURIComponent(subscription.id)}/deliveries?limit=100`), quiet ? undefined : $('delivery-log'));
  if (!log || !changed('log', [subscription.id, log])) return;
  fill($('delivery-log'), table([
    { label: 'At', get: (a) => time(a.at) },
    { label: 'Event', get: (a) => eventLink(a.eventId) },
    { label: 'HTTP', cls: 'num', get: (a) => a.statusCode || dash },
    { label: 'Latency', cls: 'num', get: (a) => ms(a.latencyMs) },
    { label: 'Outcome', get: (a) => pill(a.outcome) },
    { label: 'Error', cls: 'wrap', get: (a) => a.error ? h('span', { class: 'neg' }, a.error) : dash },
    { label: 'Answer', cls: 'wrap mono small', get: (a) => a.response || dash },
  ], log.deliveries, { empty: 'No delivery attempts yet.' }));
}

