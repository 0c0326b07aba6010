// tradehook dashboard. Plain JavaScript, no build step, no third-party code: served from the
// binary at /ui and talking only to this gateway's /api/v1 with the admin token from
// sessionStorage (never put in a URL). Every failed call is shown, never swallowed.
'use strict';

const TOKEN_KEY = 'tradehook.adminToken';
const FEED_ROWS = 200;
const VIEWS = ['live', 'trading', 'deliveries', 'dlq'];

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let currentView = 'live';
let feedAbort = null;
let feedLast = null;
let timer = null;
const lastJson = {};
const dlqSelected = new Set();
let logWebhook = null;
let selectedOrder = null;

const $ = (id) => document.getElementById(id);

// ---------- DOM helpers (text only: data never becomes HTML) ----------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function fill(container, ...nodes) {
  container.replaceChildren(...nodes.flat().filter(Boolean));
}

const dash = '–';

function num(value, digits = 8) {
  if (value === null || value === undefined || value === '') return dash;
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

function signed(value) {
  if (value === null || value === undefined) return dash;
  const n = Number(value);
  return h('span', { class: n > 0 ? 'pos' : n < 0 ? 'neg' : '' }, (n > 0 ? '+' : '') + num(n, 4));
}

function time(text, withDate) {
  if (!text) return dash;
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return text;
  const today = new Date().toDateString() === at.toDateString();
  return (withDate || !today)
    ? at.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })
    : at.toLocaleTimeString();
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return dash;
  if (seconds < 1) return Math.round(seconds * 1000) + ' ms';
  if (seconds < 120) return seconds.toFixed(seconds < 10 ? 1 : 0) + ' s';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
  return Math.round(seconds / 86400) + ' d';
}

function ms(value) {
  if (value === null || value === undefined) return dash;
  if (value >= 1000) return (value / 1000).toFixed(2) + ' s';
  return (value >= 10 ? value.toFixed(0) : value.toFixed(2)) + ' ms';
}

const STATUS_CLASS = {
  applied: 'ok', stored: 'ok', processed: 'ok', delivered: 'ok', sent: 'ok', filled: 'ok', active: 'ok',
  pending: 'info', queued: 'info', new: 'info', open: 'info', partially_filled: 'info', held: 'info',
  retrying: 'warn', retry: 'warn', refused: 'warn', unsent: 'warn', cancelled: 'warn', canceled: 'warn', expired: 'warn',
  dead: 'danger', failed: 'danger', rejected: 'danger', disabled: 'danger', gone: 'danger',
};

function pill(text, cls) {
  return h('span', { class: 'pill ' + (cls || STATUS_CLASS[String(text).toLowerCase()] || '') }, text);
}

function eventLink(id) {
  return id ? h('a', { href: '#event/' + encodeURIComponent(id), class: 'mono' }, id) : dash;
}

// A table with headings, or the empty-state sentence when there are no rows.
function table(columns, rows, options = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, options.empty || 'Nothing here yet.');
  // Headings take only the alignment and visibility of their column, not its text style.
  const headClass = (cls) => (cls || '').split(' ').filter((c) => c === 'num' || c === 'hide-narrow').join(' ');
  const head = h('tr', {}, columns.map((c) => h('th', { class: headClass(c.cls) || undefined }, c.label)));
  const body = rows.map((row) => h('tr', {
    class: [options.rowClass ? options.rowClass(row) : '', options.onRow ? 'clickable' : ''].join(' ').trim() || undefined,
    onclick: options.onRow ? () => options.onRow(row) : undefined,
    dataset: options.key ? { key: options.key(row) } : undefined,
  }, columns.map((c) => h('td', { class: c.cls || '' }, c.get(row)))));
  return h('div', { class: 'table-wrap' }, h('table', { class: options.tableClass || '' }, h('thead', {}, head), h('tbody', {}, body)));
}

// ---------- errors ----------

function showError(message) {
  const box = $('errors');
  for (const toast of box.children) {
    if (toast.dataset.message === message) {
      const count = Number(toast.dataset.count || 1) + 1;
      toast.dataset.count = count;
      toast.querySelector('span').textContent = message + ' (×' + count + ')';
      return;
    }
  }
  const toast = h('div', { class: 'toast', dataset: { message } },
    h('span', {}, message),
    h('button', { type: 'button', title: 'Dismiss', 'aria-label': 'Dismiss', onclick: () => toast.remove() }, '×'));
  box.append(toast);
  while (box.children.length > 4) box.firstChild.remove();
}

function showDone(message) {
  const toast = h('div', { class: 'toast ok' }, h('span', {}, message),
    h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: () => toast.remove() }, '×'));
  $('errors').append(toast);
  setTimeout(() => toast.remove(), 4000);
}

class ApiError extends Error {
  constructor(status, code, reason) {
    super(status ? `${status} ${code || ''}: ${reason}` : reason);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch('/api/v1' + path, {
      method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, 'network', `The gateway did not answer ${method} ${path} (${error.message}).`);
  }
  if (response.status === 401 && token) {
    signOut('The admin token was refused: sign in again.');
    throw new ApiError(401, 'unauthorized', 'the admin token was refused');
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new ApiError(response.status, answer && answer.error,
      `${method} ${path}: ${(answer && answer.reason) || response.statusText}`);
  }
  if (response.status === 204) return null;
  return response.json();
}

// Runs a loader; shows its failure in `container` (when given) and as a toast.
async function guarded(what, work, container) {
  try {
    return await work();
  } catch (error) {
    if (!token) return undefined;
    showError(`${what}: ${error.message}`);
    if (container) fill(container, h('p', { class: 'empty error-text' }, `Could not load ${what}: ${error.message}`));
    return undefined;
  }
}

// Only re-render when the data changed, so selections and scroll positions stay put.
function changed(key, data) {
  const json = JSON.stringify(data);
  if (lastJson[key] === json) return false;
  lastJson[key] = json;
  return true;
}

// ---------- dialogs ----------

function confirmAction(title, text, okLabel) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || 'Confirm';
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

function inspect(title, ...nodes) {
  $('inspect-title').textContent = title;
  fill($('inspect-body'), ...nodes);
  if (!$('inspect').open) $('inspect').showModal();
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null ? dash : v)]));
}

function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

async function showEvent(id) {
  inspect('Event ' + id, h('p', { class: 'muted' }, 'Loading…'));
  const event = await guarded('event ' + id, () => api('GET', '/events/' + encodeURIComponent(id)), $('inspect-body'));
  if (!event) return;
  inspect('Event ' + id,
    facts([
      ['Source', event.source], ['Type', event.eventType || dash], ['Event key', h('span', { class: 'mono' }, event.eventKey)],
      ['Received', time(event.receivedAt, true)], ['Processed', event.processedAt ? time(event.processedAt, true) : 'not yet'],
      ['Client', event.clientIp],
    ]),
    h('h3', {}, 'Payload'), json(event.payload),
    h('h3', {}, 'Headers ', h('span', { class: 'muted small' }, '(secrets removed when stored)')), json(event.headers));
}

// ---------- sign-in and navigation ----------

function showOnly(view) {
  for (const name of ['signin', ...VIEWS]) $('view-' + name).hidden = name !== view;
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view);
}

function signOut(message) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  if (feedAbort) feedAbort.abort();
  feedAbort = null;
  clearInterval(timer);
  for (const key of Object.keys(lastJson)) delete lastJson[key];
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('kill-indicator').hidden = true;
  showOnly('signin');
  const error = $('signin-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const candidate = $('token').value.trim();
  const error = $('signin-error');
  error.hidden = true;
  if (!candidate) return;
  let response;
  try {
    response = await fetch('/api/v1/status', { headers: { Authorization: 'Bearer ' + candidate }, cache: 'no-store' });
  } catch (e) {
    error.textContent = 'The gateway did not answer: ' + e.message;
    error.hidden = false;
    return;
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    error.textContent = response.status === 401 ? 'That token is not valid.' : `Sign-in failed: ${(answer && answer.reason) || response.statusText}`;
    error.hidden = false;
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  start();
}

function start() {
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  route();
  startFeed();
  clearInterval(timer);
  timer = setInterval(refresh, 2500);
}

function route() {
  if (!token) return signOut();
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith('event/')) {
    showEvent(hash.slice('event/'.length));
    showOnly(currentView);
    return;
  }
  currentView = VIEWS.includes(hash) ? hash : 'live';
  showOnly(currentView);
  refresh(true);
}

let refreshing = false;
let refreshAgain = false;
let tick = 0;
// Periodic (every 2.5 s while the tab is visible) or at once (`now`) after a view change or an
// action; an immediate refresh asked for during another one runs right after it.
async function refresh(now) {
  if (!token) return;
  if (refreshing) {
    if (now === true) refreshAgain = true;
    return;
  }
  if (document.hidden && now !== true) return;
  refreshing = true;
  tick += 1;
  try {
    const slow = now === true || tick % 2 === 0; // state views every 5 s, live every 2.5 s
    await loadHeader(now);
    if (currentView === 'trading' && slow) await loadTrading();
    else if (currentView === 'deliveries' && slow) await loadDeliveries();
    else if (currentView === 'dlq' && slow) await loadDlq();
  } finally {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refresh(true);
    }
  }
}

// Kill switch and DLQ badge are visible from every view. The live figures come from
// /live/ingest, which is cheap; /status counts every stored event, so it is read rarely.
async function loadHeader(now) {
  const [kill, live] = await Promise.all([
    guarded('kill switch', () => api('GET', '/killswitch')),
    guarded('ingest history', () => api('GET', '/live/ingest')),
  ]);
  if (kill) {
    $('kill-indicator').hidden = !kill.on;
    renderKill(kill.on);
  }
  if (live) {
    const badge = $('dlq-badge');
    badge.hidden = !live.dlq;
    badge.textContent = live.dlq;
    renderGauges(live);
    if (currentView === 'live') renderCharts(live);
  }
  if (currentView === 'live' && (now === true || tick % 12 === 1)) {
    const status = await guarded('status', () => api('GET', '/status'));
    if (status) renderCounts(status);
  }
}

// ---------- Live ----------

function renderGauges(live) {
  $('stat-backlog').textContent = num(live.backlog, 0);
  $('stat-oldest').textContent = live.oldestPendingAgeSeconds != null ? 'oldest waits ' + ago(live.oldestPendingAgeSeconds) : 'events waiting';
  $('stat-dlq').textContent = num(live.dlq, 0);
  $('stat-dlq').parentElement.classList.toggle('alarm', live.dlq > 0);
  const lag = live.lag || {};
  $('stat-lag').textContent = lag.count ? ms(lag.p99Ms) : dash;
  $('stat-lag-sub').textContent = lag.count ? `p99 · p50 ${ms(lag.p50Ms)} · max ${ms(lag.maxMs)}` : 'nothing processed yet';
}

function renderCounts(status) {
  $('stat-processed').textContent = num(status.processed, 0);
  $('stat-uptime').textContent = `of ${num(status.events, 0)} stored · up ${ago(status.uptimeSeconds)}`;
  if (!status.worker) $('stat-lag-sub').textContent = 'worker disabled';
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

let lastHistory = null;
function renderCharts(history) {
  lastHistory = history;
  const now = history.now;
  // The window grows with the history (two minutes at least, whole minutes, up to ten) so a
  // freshly started gateway's traffic is not squeezed against the right edge.
  const oldest = history.samples.length ? history.samples[0].at : now;
  const window = Math.min(history.windowSeconds, Math.max(120, Math.ceil((now - oldest + 1) / 60) * 60));
  $('chart-title').textContent = `Last ${window / 60} minutes`;
  const bySecond = new Map(history.samples.map((s) => [s.at, s]));
  const recent = history.samples.filter((s) => s.at > now - 10);
  const rate = recent.reduce((sum, s) => sum + s.accepted, 0) / 10;
  $('stat-rate').textContent = num(rate, rate < 10 ? 1 : 0);
  const minute = history.samples.filter((s) => s.at > now - 60 && s.accepted > 0);
  $('stat-ack').textContent = minute.length ? ms(Math.max(...minute.map((s) => s.ackP99Ms))) : dash;
  const total = history.samples.reduce((sum, s) => sum + s.accepted, 0);
  const refused = history.samples.reduce((sum, s) => sum + s.refused, 0);
  $('chart-note').textContent = `${num(total, 0)} acknowledged, ${num(refused, 0)} refused in ${window / 60} min (this process)`;
  const seconds = [];
  for (let at = now - window + 1; at <= now; at += 1) seconds.push(bySecond.get(at) || { at, accepted: 0, refused: 0 });
  drawChart($('chart-rate'), seconds, [
    { key: 'accepted', cls: 'rate', area: true, zeroes: true },
    { key: 'refused', cls: 'refused', zeroes: true },
  ], (v) => num(v, 0));
  drawChart($('chart-ack'), seconds, [
    { key: 'ackP99Ms', cls: 'p99' },
    { key: 'ackP50Ms', cls: 'p50' },
  ], (v) => (v >= 10 ? num(v, 0) : num(v, 2)));
}

// A line chart over `seconds` (one point per second); series without `zeroes` break where a
// second had no traffic.
function drawChart(container, seconds, series, label) {
  const width = Math.max(container.clientWidth, 200);
  const height = Math.max(container.clientHeight, 100);
  const left = 40, right = 6, top = 8, bottom = 18;
  const plotW = width - left - right, plotH = height - top - bottom;
  const values = series.flatMap((s) => seconds.map((p) => p[s.key]).filter((v) => v !== undefined));
  const max = niceMax(Math.max(0, ...values));
  const x = (i) => left + (seconds.length <= 1 ? 0 : (i / (seconds.length - 1)) * plotW);
  const y = (v) => top + plotH - (v / max) * plotH;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  for (const fraction of [0, 0.5, 1]) {
    const v = max * fraction;
    root.append(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    root.append(svg('text', { class: 'axis', x: left - 6, y: y(v) + 3, 'text-anchor': 'end' }, label(v)));
  }
  const span = seconds.length;
  for (const [i, text] of [[0, `−${Math.round(span / 60)} min`], [Math.floor((span - 1) / 2), `−${Math.round(span / 120)} min`], [span - 1, 'now']]) {
    root.append(svg('text', { class: 'axis', x: x(i), y: height - 4, 'text-anchor': i === 0 ? 'start' : i === span - 1 ? 'end' : 'middle' }, text));
  }
  if (!values.some((v) => v > 0)) {
    root.append(svg('text', { class: 'nodata', x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle' }, 'no webhooks in this window'));
  }
  for (const s of series) {
    let path = '';
    const has = (p) => p[s.key] !== undefined && (s.zeroes || p.accepted > 0);
    seconds.forEach((p, i) => {
      if (!has(p)) return;
      const point = `${x(i).toFixed(1)},${y(p[s.key]).toFixed(1)}`;
      const joined = i > 0 && has(seconds[i - 1]);
      path += `${joined ? 'L' : 'M'}${point}`;
      // A second with traffic between quiet ones is a dot, not an invisible zero-length line.
      if (!joined && !(i + 1 < span && has(seconds[i + 1]))) {
        root.append(svg('circle', { class: 'dot-' + s.cls, cx: x(i).toFixed(1), cy: y(p[s.key]).toFixed(1), r: 2.5 }));
      }
    });
    if (!path) continue;
    if (s.area) {
      root.append(svg('path', { class: 'area-' + s.cls, d: `${path}L${x(span - 1)},${y(0)}L${x(0)},${y(0)}Z` }));
    }
    root.append(svg('path', { class: 'line-' + s.cls, d: path }));
  }
  container.replaceChildren(root);
}

window.addEventListener('resize', () => { if (lastHistory && currentView === 'live') renderCharts(lastHistory); });

// The live feed: Server-Sent Events read with fetch, so the token travels in a header.
function setFeedState(text, cls) {
  const state = $('feed-state');
  state.textContent = text;
  state.className = 'pill ' + (cls || '');
}

function startFeed() {
  if (feedAbort) feedAbort.abort();
  const abort = new AbortController();
  feedAbort = abort;
  runFeed(abort.signal);
}

async function runFeed(signal) {
  let failures = 0;
  while (token && !signal.aborted) {
    try {
      const query = feedLast === null ? '' : '?after=' + feedLast;
      const response = await fetch('/api/v1/live/events' + query, {
        headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' }, cache: 'no-store', signal,
      });
      if (response.status === 401) { signOut('The admin token was refused: sign in again.'); return; }
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(`${response.status}: ${(answer && answer.reason) || response.statusText}`);
      }
      setFeedState('live', 'ok');
      failures = 0;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          handleMessage(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      throw new Error('the gateway closed the stream');
    } catch (error) {
      if (signal.aborted || !token) return;
      failures += 1;
      setFeedState('reconnecting…', 'warn');
      if (failures === 2) showError('Live feed: ' + error.message + '; reconnecting.');
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * failures, 10000)));
    }
  }
}

function handleMessage(block) {
  let kind = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') kind = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return;
  let payload;
  try { payload = JSON.parse(data.join('\n')); } catch { return; }
  if (kind === 'event') upsertFeed(payload);
  else if (kind === 'gap') feedNote(`${num(payload.skipped, 0)} events skipped: more arrived than can be shown`);
  else if (kind === 'error') showError('Live feed: ' + payload.reason);
}

function feedNote(text) {
  const rows = $('feed-rows');
  rows.prepend(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, text)));
}

function upsertFeed(item) {
  const rows = $('feed-rows');
  const status = pill(item.status);
  if (item.attempts > 0 && item.status !== 'dead') status.title = item.attempts + ' failed attempts';
  const existing = rows.querySelector(`tr[data-seq="${item.seq}"]`);
  if (existing) {
    existing.lastChild.replaceChildren(status);
    existing.dataset.status = item.status;
  } else {
    const row = h('tr', { class: 'fresh', dataset: { seq: item.seq, id: item.id, status: item.status } },
      h('td', { class: 'mono' }, time(item.receivedAt)),
      h('td', {}, item.source),
      h('td', {}, item.type || dash),
      h('td', {}, eventLink(item.id)),
      h('td', {}, status));
    rows.prepend(row);
    while (rows.children.length > FEED_ROWS) rows.lastChild.remove();
  }
  feedLast = Math.max(feedLast || 0, item.seq);
  $('feed-empty').hidden = rows.children.length > 0;
}

// ---------- Trading ----------

let killOn = null;
function renderKill(on) {
  killOn = on;
  const card = document.querySelector('.card.kill');
  card.classList.toggle('on', on);
  $('kill-text').textContent = on
    ? 'ON: signals are refused instead of becoming orders. Protective orders (brackets, margin reductions) still go out.'
    : 'Off: signals become orders after the risk checks.';
  $('kill-toggle').textContent = on ? 'Turn kill switch off' : 'Turn kill switch on';
  $('kill-toggle').className = on ? 'primary' : 'danger-btn';
}

async function toggleKill() {
  if (killOn === null) return;
  const want = !killOn;
  const ok = await confirmAction(
    want ? 'Turn the kill switch ON?' : 'Turn the kill switch off?',
    want ? 'No new orders will be placed from signals until it is turned off. Protective orders still go out.'
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

async function loadTrading() {
  const sections = [
    ['positions', '/positions', renderPositions],
    ['orders', '/orders?limit=200', renderOrders],
    ['balances', '/balances', renderBalances],
    ['alerts', '/alerts?limit=50', renderAlerts],
    ['intents', '/intents?limit=50', renderIntents],
  ];
  await Promise.all(sections.map(async ([name, path, render]) => {
    const data = await guarded(name, () => api('GET', path), $(name));
    if (data && changed(name, data)) render(data);
  }));
}

function renderPositions(data) {
  fill($('positions'), table([
    { label: 'Symbol', get: (p) => h('strong', {}, p.symbol) },
    { label: 'Side', get: (p) => pill(p.side, p.side === 'long' ? 'ok' : p.side === 'short' ? 'danger' : '') },
    { label: 'Quantity', cls: 'num', get: (p) => num(p.quantity) },
    { label: 'Unrealized PnL', cls: 'num', get: (p) => signed(p.unrealizedPnl) },
    { label: 'Realized PnL', cls: 'num', get: (p) => signed(p.realizedPnl) },
    { label: 'Avg price', cls: 'num', get: (p) => num(p.averagePrice) },
    { label: 'Mark', cls: 'num', get: (p) => num(p.markPrice) },
    { label: 'Margin ratio', cls: 'num hide-narrow', get: (p) => num(p.marginRatio, 4) },
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
  const order = await guarded('order ' + orderId, () => api('GET', '/orders/' + encodeURIComponent(orderId)), quiet ? undefined : $('order-fills'));
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

// ---------- Deliveries ----------

async function loadDeliveries() {
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
    delete lastJson.subscriptions;
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

// ---------- Dead letters ----------

async function loadDlq() {
  const data = await guarded('dead letters', () => api('GET', '/dlq?limit=500'), $('dlq'));
  if (!data || !changed('dlq', data)) return;
  const ids = new Set(data.deadLetters.map((d) => d.id));
  for (const id of [...dlqSelected]) if (!ids.has(id)) dlqSelected.delete(id);
  renderDlq(data.deadLetters);
}

function updateDlqButtons() {
  $('dlq-replay-selected').disabled = dlqSelected.size === 0;
  $('dlq-discard-selected').disabled = dlqSelected.size === 0;
  $('dlq-replay-selected').textContent = dlqSelected.size ? `Replay ${dlqSelected.size} selected` : 'Replay selected';
  $('dlq-discard-selected').textContent = dlqSelected.size ? `Discard ${dlqSelected.size} selected` : 'Discard selected';
}

function renderDlq(entries) {
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select all', checked: entries.length > 0 && entries.every((d) => dlqSelected.has(d.id)) });
  all.addEventListener('change', () => {
    for (const d of entries) { if (all.checked) dlqSelected.add(d.id); else dlqSelected.delete(d.id); }
    for (const box of document.querySelectorAll('#dlq tbody input[type=checkbox]')) box.checked = all.checked;
    updateDlqButtons();
  });
  const view = table([
    { label: '', get: (d) => {
      const box = h('input', { type: 'checkbox', 'aria-label': 'Select ' + d.id, checked: dlqSelected.has(d.id) });
      box.addEventListener('change', () => { if (box.checked) dlqSelected.add(d.id); else dlqSelected.delete(d.id); updateDlqButtons(); });
      return box;
    } },
    { label: 'Dead since', get: (d) => time(d.deadAt) },
    { label: 'Kind', get: (d) => [pill(d.kind, d.kind === 'delivery' ? 'info' : 'warn'), d.target || d.webhookId ? h('div', { class: 'muted small mono ellipsis', title: d.target || d.webhookId }, d.target || d.webhookId) : null] },
    { label: 'Event', get: (d) => [eventLink(d.eventId), h('div', { class: 'muted small' }, `${d.source} · ${d.eventType || 'no type'}`)] },
    { label: 'Reason', cls: 'wrap reason', get: (d) => d.reason },
    { label: 'Attempts', cls: 'num', get: (d) => d.attempts },
    { label: 'Last error', cls: 'wrap hide-narrow', get: (d) => (d.lastError === d.reason ? dash : d.lastError) },
    { label: '', get: (d) => h('div', { class: 'actions' },
      h('button', { class: 'small', onclick: () => inspectDeadLetter(d.id) }, 'Inspect'),
      h('button', { class: 'small primary', onclick: () => replay([d.id]) }, 'Replay'),
      h('button', { class: 'small danger-btn', onclick: () => discard([d.id]) }, 'Discard')) },
  ], entries, {
    empty: 'The dead-letter queue is empty: every event was processed and every delivery went out.',
    tableClass: 'dlq', key: (d) => d.id,
  });
  const head = view.querySelector && view.querySelector('thead th');
  if (head) head.append(all);
  fill($('dlq'), view);
  updateDlqButtons();
}

async function replay(ids) {
  const result = ids.length === 1
    ? await guarded('replay ' + ids[0], () => api('POST', `/dlq/${encodeURIComponent(ids[0])}/replay`))
    : await guarded('replay', () => api('POST', '/dlq/replay', { ids }));
  if (!result) return;
  for (const id of ids) dlqSelected.delete(id);
  showDone(`${result.replayed} back in the queue${result.eventId ? ' (' + result.eventId + ')' : ''}; an entry that fails again comes back as a new one.`);
  delete lastJson.dlq;
  await loadDlq();
}

async function discard(ids) {
  const ok = await confirmAction(ids.length === 1 ? `Discard ${ids[0]}?` : `Discard ${ids.length} dead letters?`,
    'The entries leave the queue for good; their events stay stored.', 'Discard');
  if (!ok) return;
  let done = 0;
  for (const id of ids) {
    const result = await guarded('discard ' + id, () => api('DELETE', '/dlq/' + encodeURIComponent(id)).then(() => true));
    if (result) { done += 1; dlqSelected.delete(id); }
  }
  if (done) showDone(`${done} discarded`);
  delete lastJson.dlq;
  await loadDlq();
}

async function inspectDeadLetter(id) {
  const entry = await guarded('dead letter ' + id, () => api('GET', '/dlq/' + encodeURIComponent(id)));
  if (!entry) return;
  inspect('Dead letter ' + id,
    facts([
      ['Kind', entry.kind], ['Event', eventLink(entry.eventId)], ['Source · type', `${entry.source} · ${entry.eventType || 'no type'}`],
      ['Target', entry.target || entry.webhookId || undefined], ['Reason', entry.reason], ['Attempts', entry.attempts],
      ['Last error', entry.lastError], ['Dead since', time(entry.deadAt, true)],
    ]),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', onclick: () => { $('inspect').close(); replay([id]); } }, 'Replay'),
      h('button', { type: 'button', class: 'danger-btn', onclick: () => { $('inspect').close(); discard([id]); } }, 'Discard')),
    h('h3', {}, 'Attempt history'), json(entry.history));
}

// ---------- wiring ----------

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('kill-toggle').addEventListener('click', toggleKill);
  $('log-close').addEventListener('click', () => { logWebhook = null; $('log-card').hidden = true; });
  $('dlq-replay-selected').addEventListener('click', () => replay([...dlqSelected]));
  $('dlq-discard-selected').addEventListener('click', () => discard([...dlqSelected]));
  $('inspect').addEventListener('close', () => {
    if (location.hash.startsWith('#event/')) history.replaceState(null, '', '#' + currentView);
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(true); });
  if (token) start(); else signOut();
});
