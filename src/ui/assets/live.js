// Live: ingest per second and ack latency (an SVG chart), backlog, lag and DLQ gauges, and the
// live event feed read from Server-Sent Events with fetch (so the token travels in a header).
import {
  $, ago, dash, eventLink, h, ms, num, pill, session, showError, svg, time, unauthorized,
} from './core.js';

export function renderGauges(live) {
  $('stat-backlog').textContent = num(live.backlog, 0);
  $('stat-oldest').textContent = live.oldestPendingAgeSeconds != null ? 'oldest waits ' + ago(live.oldestPendingAgeSeconds) : 'events waiting';
  $('stat-dlq').textContent = num(live.dlq, 0);
  $('stat-dlq').parentElement.classList.toggle('alarm', live.dlq > 0);
  const lag = live.lag || {};
  $('stat-lag').textContent = lag.count ? ms(lag.p99Ms) : dash;
  $('stat-lag-sub').textContent = lag.count ? `p99 · p50 ${ms(lag.p50Ms)} · max ${ms(lag.maxMs)}` : 'nothing processed yet';
}

export function renderCounts(status) {
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
export function renderCharts(history) {
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

window.addEventListener('resize', () => { if (lastHistory && session.view === 'live') renderCharts(lastHistory); });

// The live feed: Server-Sent Events read with fetch, so the token travels in a header.
const FEED_ROWS = 200;
let feedAbort = null;
let feedLast = null;

function setFeedState(text, cls) {
  const state = $('feed-state');
  state.textContent = text;
  state.className = 'pill ' + (cls || '');
}

/** Stops the live feed (sign-out). */
export function stopFeed() {
  if (feedAbort) feedAbort.abort();
  feedAbort = null;
}

/** (Re)starts the live feed after the newest event already shown. */
export function startFeed() {
  if (feedAbort) feedAbort.abort();
  const abort = new AbortController();
  feedAbort = abort;
  runFeed(abort.signal);
}

async function runFeed(signal) {
  let failures = 0;
  while (session.token && !signal.aborted) {
    try {
      const query = feedLast === null ? '' : '?after=' + feedLast;
      const response = await fetch('/api/v1/live/events' + query, {
        headers: { Authorization: 'Bearer ' + session.token, Accept: 'text/event-stream' }, cache: 'no-store', signal,
      });
      if (response.status === 401) { unauthorized(); return; }
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
      if (signal.aborted || !session.token) return;
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

