// Dead letters: reason, attempts and last error; inspect, replay or discard one or a selection.
import {
  $, api, changed, confirmAction, dash, eventLink, facts, fill, forget, guarded, h, inspect, json, moreNote, pages, pill,
  showDone, table, time,
} from './core.js';

const selected = new Set();
// The list is read page by page (newest first) up to this many entries; "Load more" raises it,
// and a list cut short says so, so "Select all" never silently misses entries.
const STEP = 5000;
let bound = STEP;

/** Replays the selected entries. */
export function replaySelected() { return replay([...selected]); }
/** Discards the selected entries (after a confirmation). */
export function discardSelected() { return discard([...selected]); }

export async function loadDlq() {
  const data = await guarded('dead letters', () => pages('/dlq', 'deadLetters', { cursor: 'before', bound }), $('dlq'));
  if (!data || !changed('dlq', data)) return;
  const ids = new Set(data.items.map((d) => d.id));
  for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
  renderDlq(data.items, data.more);
}

function updateDlqButtons() {
  $('dlq-replay-selected').disabled = selected.size === 0;
  $('dlq-discard-selected').disabled = selected.size === 0;
  $('dlq-replay-selected').textContent = selected.size ? `Replay ${selected.size} selected` : 'Replay selected';
  $('dlq-discard-selected').textContent = selected.size ? `Discard ${selected.size} selected` : 'Discard selected';
}

function renderDlq(entries, more) {
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select all', checked: entries.length > 0 && entries.every((d) => selected.has(d.id)) });
  all.addEventListener('change', () => {
    for (const d of entries) { if (all.checked) selected.add(d.id); else selected.delete(d.id); }
    for (const box of document.querySelectorAll('#dlq tbody input[type=checkbox]')) box.checked = all.checked;
    updateDlqButtons();
  });
  const view = table([
    { label: '', get: (d) => {
      const box = h('input', { type: 'checkbox', 'aria-label': 'Select ' + d.id, checked: selected.has(d.id) });
      box.addEventListener('change', () => { if (box.checked) selected.add(d.id); else selected.delete(d.id); updateDlqButtons(); });
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
  fill($('dlq'), more && moreNote(
    `Showing the newest ${entries.length.toLocaleString()} dead letters; there are more, which "Select all" does not reach.`,
    () => { bound += STEP; forget('dlq'); loadDlq(); }), view);
  updateDlqButtons();
}

async function replay(ids) {
  const result = ids.length === 1
    ? await guarded('replay ' + ids[0], () => api('POST', `/dlq/${encodeURIComponent(ids[0])}/replay`))
    : await guarded('replay', () => api('POST', '/dlq/replay', { ids }));
  if (!result) return;
  for (const id of ids) selected.delete(id);
  showDone(`${result.replayed} back in the queue${result.eventId ? ' (' + result.eventId + ')' : ''}; an entry that fails again comes back as a new one.`);
  forget('dlq');
  await loadDlq();
}

async function discard(ids) {
  const ok = await confirmAction(ids.length === 1 ? `Discard ${ids[0]}?` : `Discard ${ids.length} dead letters?`,
    'The entries leave the queue for good; their events stay stored.', 'Discard');
  if (!ok) return;
  let done = 0;
  for (const id of ids) {
    const result = await guarded('discard ' + id, () => api('DELETE', '/dlq/' + encodeURIComponent(id)).then(() => true));
    if (result) { done += 1; selected.delete(id); }
  }
  if (done) showDone(`${done} discarded`);
  forget('dlq');
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

