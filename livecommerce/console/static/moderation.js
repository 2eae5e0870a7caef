// The console's comment moderation (live panel): mute an author from the feed, room-wide mute,
// blocked words, the policy for comments WeChat could not check, and the held comments queue.
// console.js calls initModeration once, openModeration/closeModeration with the room, and
// muteButton(frame) for each comment in the feed.
import { el, $, show } from '/static/api.js';

const M = { room: null, call: null, guarded: null, notify: null, timer: null };
const EXPLAIN = {
  already_decided: 'Someone already approved or rejected that comment.',
  held_comment_not_found: 'That held comment is gone.',
};
window.__moderation = M; // for the browser tests

export function initModeration({ call, guarded, notify }) {
  Object.assign(M, { call, guarded, notify });
  $('#mod-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveRules(); });
  $('#mod-room-mute').addEventListener('change', () => saveRules({ room_muted: $('#mod-room-mute').checked }));
  $('#mod-policy').addEventListener('change', () => saveRules({ unchecked_policy: $('#mod-policy').value }));
}

export function openModeration(roomId) {
  closeModeration();
  M.room = roomId;
  $('#held').replaceChildren();
  $('#mutes').replaceChildren();
  loadRules();
  refresh();
  M.timer = setInterval(refresh, 2000);
}

export function closeModeration() {
  if (M.timer) clearInterval(M.timer);
  M.timer = null;
  M.room = null;
}

const base = () => `/api/rooms/${M.room}`;
const who = (u) => (u.kind === 'user' ? 'user ' : u.kind + ' ') + u.id;

// A "Mute" button for a comment of the feed (none for the host's own comments).
export function muteButton(frame) {
  const u = frame.user;
  if (!u || u.kind === 'host') return null;
  return el('button', { type: 'button', class: 'link', 'aria-label': `Mute ${who(u)}`,
    onclick: () => mute(u) }, 'Mute');
}

async function mute(u) {
  const secs = Number($('#mod-duration').value) || null;
  const body = { user: { kind: u.kind, id: u.id } };
  if (secs) body.seconds = secs;
  const done = await M.guarded(() => M.call('POST', base() + '/mutes', body), `${who(u)} is muted in this room.`);
  if (done) refresh();
}

async function loadRules() {
  const rules = await M.guarded(() => M.call('GET', base() + '/moderation'));
  if (rules) render(rules);
}

function render(rules) {
  $('#mod-room-mute').checked = rules.room_muted;
  $('#mod-policy').value = rules.unchecked_policy;
  $('#mod-words').value = rules.blocked_words.join('\n');
}

async function saveRules(change) {
  const body = change || { blocked_words: $('#mod-words').value.split('\n').map((w) => w.trim()).filter(Boolean) };
  const long = (body.blocked_words || []).find((w) => w.length > 32);
  if (long) { M.notify(`“${long.slice(0, 40)}…” is too long: a blocked word has at most 32 characters.`); return; }
  if ((body.blocked_words || []).length > 200) { M.notify('At most 200 blocked words.'); return; }
  const text = change ? (change.room_muted !== undefined
    ? (change.room_muted ? 'Room muted: only you can comment.' : 'Viewers can comment again.')
    : 'Policy saved.') : 'Blocked words saved.';
  const rules = await M.guarded(() => M.call('PATCH', base() + '/moderation', body), text);
  if (rules) render(rules);
  else loadRules(); // show what the server has
}

async function refresh() {
  if (!M.room) return;
  const room = M.room;
  let held, mutes;
  try {
    [held, mutes] = await Promise.all([M.call('GET', base() + '/held-comments'), M.call('GET', base() + '/mutes')]);
  } catch (e) { return; } // the next round tries again; failures of actions are shown
  if (room !== M.room) return;
  const list = $('#held');
  if (!(document.activeElement && list.contains(document.activeElement))) {
    list.replaceChildren(...held.items.map((h) => el('li', { 'data-held': h.id },
      el('strong', {}, who(h.user) + ': '), h.text, ' ',
      el('span', { class: 'pill' }, h.reason === 'review' ? 'WeChat: review' : 'not checked'), ' ',
      el('button', { type: 'button', 'aria-label': `Approve comment: ${h.text}`, onclick: () => decide(h, 'approve') }, 'Approve'),
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Reject comment: ${h.text}`, onclick: () => decide(h, 'reject') }, 'Reject'))));
    if (!held.items.length) list.append(el('li', { class: 'hint' }, 'No comments waiting.'));
  }
  const ml = $('#mutes');
  if (!(document.activeElement && ml.contains(document.activeElement))) {
    ml.replaceChildren(...mutes.items.map((m) => el('li', { 'data-muted': m.user.kind + ':' + m.user.id },
      who(m.user), ' — ', m.muted_until ? 'until ' + new Date(m.muted_until).toLocaleTimeString() : 'until unmuted', ' ',
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Unmute ${who(m.user)}`, onclick: () => unmute(m.user) }, 'Unmute'))));
    if (!mutes.items.length) ml.append(el('li', { class: 'hint' }, 'Nobody is muted.'));
  }
  show($('#held-count'), held.items.length > 0);
  $('#held-count').textContent = held.items.length;
}

async function decide(h, action) {
  try {
    await M.call('POST', `${base()}/held-comments/${h.id}/${action}`);
    M.notify(action === 'approve' ? 'Comment approved: everyone sees it now.' : 'Comment rejected.', true);
  } catch (e) {
    if (e.status === 401) { await M.guarded(() => Promise.reject(e)); return; }
    M.notify(EXPLAIN[e.code] || e.message);
  }
  document.activeElement && document.activeElement.blur();
  refresh();
}

async function unmute(u) {
  const q = new URLSearchParams({ kind: u.kind, id: u.id });
  const done = await M.guarded(() => M.call('DELETE', `${base()}/mutes?${q}`), `${who(u)} can comment again.`);
  document.activeElement && document.activeElement.blur();
  if (done) refresh();
}
