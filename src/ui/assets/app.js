// tradehook dashboard: sign-in, navigation and the refresh loop. Plain JavaScript modules, no
// build step, no third-party code: served from the binary at /ui and talking only to this
// gateway's /api/v1 with the admin token from sessionStorage (never put in a URL). Every failed
// call is shown, never swallowed. The views live in live.js, trading.js, deliveries.js, dlq.js.
import { $, api, forget, guarded, session, showEvent, whenUnauthorized } from './core.js';
import { renderCharts, renderCounts, renderGauges, startFeed, stopFeed } from './live.js';
import { loadTrading, renderKill, toggleKill } from './trading.js';
import { closeLog, loadDeliveries } from './deliveries.js';
import { discardSelected, loadDlq, replaySelected } from './dlq.js';

const TOKEN_KEY = 'tradehook.adminToken';
const VIEWS = ['live', 'trading', 'deliveries', 'dlq'];
let timer = null;

function showOnly(view) {
  for (const name of ['signin', ...VIEWS]) $('view-' + name).hidden = name !== view;
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view);
}

function signOut(message) {
  session.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  stopFeed();
  clearInterval(timer);
  forget();
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
  session.token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
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
  if (!session.token) return signOut();
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith('event/')) {
    showEvent(hash.slice('event/'.length));
    showOnly(session.view);
    return;
  }
  session.view = VIEWS.includes(hash) ? hash : 'live';
  showOnly(session.view);
  refresh(true);
}

let refreshing = false;
let refreshAgain = false;
let tick = 0;
// Periodic (every 2.5 s while the tab is visible) or at once (`now`) after a view change or an
// action; an immediate refresh asked for during another one runs right after it.
async function refresh(now) {
  if (!session.token) return;
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
    if (session.view === 'trading' && slow) await loadTrading();
    else if (session.view === 'deliveries' && slow) await loadDeliveries();
    else if (session.view === 'dlq' && slow) await loadDlq();
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
    if (session.view === 'live') renderCharts(live);
  }
  if (session.view === 'live' && (now === true || tick % 4 === 1)) {
    const status = await guarded('status', () => api('GET', '/status'));
    if (status) renderCounts(status);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('kill-toggle').addEventListener('click', toggleKill);
  $('log-close').addEventListener('click', closeLog);
  $('dlq-replay-selected').addEventListener('click', replaySelected);
  $('dlq-discard-selected').addEventListener('click', discardSelected);
  $('inspect').addEventListener('close', () => {
    if (location.hash.startsWith('#event/')) history.replaceState(null, '', '#' + session.view);
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(true); });
  whenUnauthorized(signOut);
  if (session.token) start(); else signOut();
});

