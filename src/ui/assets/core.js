// Shared by every view: DOM helpers that only ever write text (data never becomes HTML),
// number and time formatting, tables with empty states, error and success messages, the API
// client (admin token from the session, every failure shown), and the dialogs.

/** The signed-in session: the admin token (from sessionStorage) and the view shown. */
export const session = { token: sessionStorage.getItem('tradehook.adminToken') || '', view: 'live' };

let onUnauthorized = () => {};
/** What to do when the gateway refuses the token (the app signs out). */
export function whenUnauthorized(handler) { onUnauthorized = handler; }
/** The gateway refused the token. */
export function unauthorized() { onUnauthorized('The admin token was refused: sign in again.'); }

const lastJson = {};
/** Forgets what was rendered, so the next load renders again. */
export function forget(key) {
  if (key) delete lastJson[key];
  else for (const name of Object.keys(lastJson)) delete lastJson[name];
}

export const $ = (id) => document.getElementById(id);


export function h(tag, attrs, ...children) {
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

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export function fill(container, ...nodes) {
  container.replaceChildren(...nodes.flat().filter(Boolean));
}

export const dash = '–';

// Decimals (quantities, prices, balances, PnL) arrive as JSON numbers carrying every digit the
// gateway holds, more than a float keeps: views that show them read the API with `exact`, which
// keeps each number as the string of its digits (parseExact), and num() shows that string
// without float arithmetic: never rounded, never a non-zero value shown as 0.
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** `text` as {negative, int, frac}: digits without leading or trailing zeros; null if not a decimal. */
export function decimalParts(text) {
  const match = DECIMAL.exec(String(text).trim());
  if (!match || !(match[2] || match[3])) return null;
  const exponent = Number(match[4] || 0);
  if (Math.abs(exponent) > 1000) return null;
  const digits = (match[2] || '') + (match[3] || '');
  let point = (match[2] || '').length + exponent;
  let padded = digits;
  if (point < 0) { padded = '0'.repeat(-point) + padded; point = 0; }
  if (point > padded.length) padded += '0'.repeat(point - padded.length);
  const int = padded.slice(0, point).replace(/^0+/, '') || '0';
  const frac = padded.slice(point).replace(/0+$/, '');
  const zero = int === '0' && frac === '';
  return { negative: match[1] === '-' && !zero, int, frac, zero };
}

let decimalSeparator = null;
function separator() {
  if (decimalSeparator === null) {
    const part = new Intl.NumberFormat().formatToParts(1.5).find((p) => p.type === 'decimal');
    decimalSeparator = part ? part.value : '.';
  }
  return decimalSeparator;
}

/**
 * A number for a table cell. A string (an exact decimal) keeps every digit: the integer part
 * grouped the locale's way (through BigInt, so exact), the fraction as given without trailing
 * zeros. A JS number (counts and rates) shows at most `digits` decimals.
 */
export function num(value, digits = 8) {
  if (value === null || value === undefined || value === '') return dash;
  if (typeof value === 'string') {
    const parts = decimalParts(value);
    if (!parts) return value;
    const int = BigInt(parts.int).toLocaleString();
    return (parts.negative ? '-' : '') + int + (parts.frac ? separator() + parts.frac : '');
  }
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A profit or loss: green with a `+` when above zero, red when below. */
export function signed(value) {
  if (value === null || value === undefined) return dash;
  const parts = decimalParts(value);
  if (!parts) return String(value);
  const cls = parts.zero ? '' : parts.negative ? 'neg' : 'pos';
  return h('span', { class: cls }, (cls === 'pos' ? '+' : '') + num(typeof value === 'number' ? value : String(value), 4));
}

export function time(text, withDate) {
  if (!text) return dash;
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return text;
  const today = new Date().toDateString() === at.toDateString();
  return (withDate || !today)
    ? at.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })
    : at.toLocaleTimeString();
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return dash;
  if (seconds < 1) return Math.round(seconds * 1000) + ' ms';
  if (seconds < 120) return seconds.toFixed(seconds < 10 ? 1 : 0) + ' s';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
  return Math.round(seconds / 86400) + ' d';
}

export function ms(value) {
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

export function pill(text, cls) {
  return h('span', { class: 'pill ' + (cls || STATUS_CLASS[String(text).toLowerCase()] || '') }, text);
}

export function eventLink(id) {
  return id ? h('a', { href: '#event/' + encodeURIComponent(id), class: 'mono' }, id) : dash;
}

// A table with headings, or the empty-state sentence when there are no rows.
export function table(columns, rows, options = {}) {
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

// Errors: one message per failure, counted when it repeats, kept until dismissed.

export function showError(message) {
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

export function showDone(message) {
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

export async function api(method, path, body, options = {}) {
  const headers = { Authorization: 'Bearer ' + session.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch('/api/v1' + path, {
      method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, 'network', `The gateway did not answer ${method} ${path} (${error.message}).`);
  }
  if (response.status === 401 && session.token) {
    unauthorized();
    throw new ApiError(401, 'unauthorized', 'the admin token was refused');
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new ApiError(response.status, answer && answer.error,
      `${method} ${path}: ${(answer && answer.reason) || response.statusText}`);
  }
  if (response.status === 204) return null;
  return options.exact ? parseExact(await response.text()) : response.json();
}

// A JSON string literal (escapes included), or a number literal outside of one.
const JSON_TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d[\d.eE+-]*/g;

/** Parses the JSON `text` with every number as the string of its digits, so none loses any. */
export function parseExact(text) {
  return JSON.parse(text.replace(JSON_TOKEN, (token) => (token[0] === '"' ? token : `"${token}"`)));
}

/**
 * Every item of a paged list (`GET path` answers `{[key]: [...], next}`), following `next` (sent
 * back as the `cursor` parameter) until the list ends or `bound` items are read. `more` says
 * whether the list goes on past them: read one entry ahead, so it is never a guess.
 */
export async function pages(path, key, { cursor, bound, pageSize = 1000, exact = false }) {
  const items = [];
  const url = (limit, next) => `${path}${path.includes('?') ? '&' : '?'}limit=${limit}`
    + (next === null ? '' : `&${cursor}=${encodeURIComponent(next)}`);
  let next = null;
  do {
    const page = await api('GET', url(Math.min(pageSize, bound - items.length), next), undefined, { exact });
    items.push(...page[key]);
    next = page.next ?? null;
    if (next === null) return { items, more: false };
  } while (items.length < bound);
  const ahead = await api('GET', url(1, next), undefined, { exact });
  return { items, more: ahead[key].length > 0 || (ahead.next ?? null) !== null };
}

/** The line under a list cut at its bound: what is shown, and a button that reads further. */
export function moreNote(text, onMore) {
  return h('p', { class: 'more muted small' }, text + ' ',
    h('button', { type: 'button', class: 'small', onclick: onMore }, 'Load more'));
}

// Runs a loader; shows its failure in `container` (when given) and as a toast.
export async function guarded(what, work, container) {
  try {
    return await work();
  } catch (error) {
    if (!session.token) return undefined;
    showError(`${what}: ${error.message}`);
    if (container) fill(container, h('p', { class: 'empty error-text' }, `Could not load ${what}: ${error.message}`));
    return undefined;
  }
}

// Only re-render when the data changed, so selections and scroll positions stay put.
export function changed(key, data) {
  const json = JSON.stringify(data);
  if (lastJson[key] === json) return false;
  lastJson[key] = json;
  return true;
}

// Dialogs.

export function confirmAction(title, text, okLabel) {
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

export function inspect(title, ...nodes) {
  $('inspect-title').textContent = title;
  fill($('inspect-body'), ...nodes);
  if (!$('inspect').open) $('inspect').showModal();
}

export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null ? dash : v)]));
}

export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

export async function showEvent(id) {
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

