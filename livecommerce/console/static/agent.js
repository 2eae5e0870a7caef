// The agent workspace: sign-in (agent session cookie + CSRF token), the shop's queue and the
// agent's conversations kept live by the feed socket (/api/agent/feed, reconnecting on its
// own), history with the buyer's orders and tapped goods, reply within WeChat's window,
// canned replies, transfer, close. Frames: docs/support.md, "Feed frames".
import { api, ApiError, el, $, show, yuan, wsBase, notify } from '/static/api.js';

const S = {
  agent: null, csrf: '', queue: [], mine: new Map(), agents: [], canned: [],
  open: null, openState: null, unread: new Set(), ws: null, retry: 0, retryTimer: null,
  connected: false, hellos: 0,
};
window.__agent = S; // for the browser tests

// Words a person reads for the codes of this page's API (the shared ones are in api.js).
const MESSAGES = {
  window_closed: 'Not sent: the buyer has not written for 48 hours, so WeChat does not allow a reply. It will be possible when they write again.',
  quota_used: 'Not sent: WeChat allows 5 replies per buyer message (within 48 hours), and they are used. Wait for the buyer to write again.',
  not_held: 'This conversation is no longer yours (transferred, closed or re-queued).',
  not_queued: 'Someone else took that conversation already.',
  agent_full: 'That agent has no free seat (capacity reached).',
  agent_offline: 'That agent is not online.',
  conversation_not_found: 'That conversation is not in your shop (or no longer exists).',
  too_many_canned: 'Your shop has the maximum number of canned replies.',
  canned_not_found: 'That canned reply no longer exists.',
  bad_credentials: 'Wrong login or password.',
};

// This session ended on the server: signed out elsewhere, or the host set a new password.
const SESSION_ENDED = 'Your session has ended (signed out, or your password was changed). Please sign in again.';

// A reply of ours that did not go out (its final state, from the feed).
const NOT_SENT = {
  skipped_quota: 'A reply was not sent: WeChat\'s reply limit for that buyer was reached. They need to write again.',
  refused: 'A reply was refused by WeChat (the buyer\'s reply window or limit). They need to write again.',
  failed: 'A reply could not be delivered to WeChat after several tries.',
};

function message(e) {
  if (e instanceof ApiError) return MESSAGES[e.code] || e.message;
  return 'Something went wrong. Try again.';
}

function call(method, path, body) {
  return api(method, path, { body, csrf: method === 'GET' ? '' : S.csrf });
}

async function guarded(fn, okText) {
  try {
    const out = await fn();
    if (okText) notify(okText, true);
    return out;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { signedOut(e.message); return undefined; }
    notify(message(e));
    return undefined;
  }
}

const short = (openid) => 'Buyer …' + String(openid).slice(-6);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '');

// -- session ---------------------------------------------------------------------------------

function signedOut(text) {
  S.agent = null; S.csrf = ''; S.open = null;
  disconnect();
  show($('#who'), false); show($('#desk'), false); show($('#signin'), true);
  if (text) notify(text);
  $('#signin-login').focus();
}

function signedIn(session) {
  S.agent = session.agent;
  S.csrf = session.csrf_token;
  $('#agent-name').textContent = session.agent.name;
  show($('#who'), true); show($('#signin'), false); show($('#desk'), true);
  notify('');
  connect();
  loadCanned();
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { login: $('#signin-login').value.trim(), password: $('#signin-password').value };
  try {
    signedIn(await api('POST', '/api/agent/session', { body }));
    $('#signin-password').value = '';
  } catch (e) {
    notify(message(e));
  }
});

$('#sign-out').addEventListener('click', async () => {
  const agent = S.agent;
  S.agent = null; // no reconnect: the socket would renew the lease again
  disconnect();
  S.agent = agent;
  await guarded(() => call('POST', '/api/agent/presence', { online: false }));
  await guarded(() => call('DELETE', '/api/agent/session'));
  signedOut('Signed out. Your open conversations go back to the queue.');
});

// -- the feed socket ---------------------------------------------------------------------------

function linkStatus(text, cls) {
  const l = $('#link');
  l.textContent = text;
  l.className = 'pill ' + cls;
}

function connect() {
  if (!S.agent) return;
  clearTimeout(S.retryTimer);
  const ws = new WebSocket(wsBase() + '/api/agent/feed');
  S.ws = ws;
  ws.addEventListener('message', (e) => {
    let f;
    try { f = JSON.parse(e.data); } catch (err) { return; }
    onFrame(f);
  });
  ws.addEventListener('close', async (e) => {
    if (S.ws !== ws) return;
    S.ws = null; S.connected = false;
    if (!S.agent) return;
    // 1008: the account was deleted, or this session ended (signed out elsewhere, or the host
    // set a new password): sign out, no reconnect.
    if (e.code === 1008) {
      signedOut(e.reason === 'session_revoked' ? SESSION_ENDED
        : 'Your agent account is no longer available.');
      return;
    }
    if (S.retry >= 2) { // a refused handshake looks like a network error: is the session over?
      try { await api('GET', '/api/agent/session'); } catch (err) {
        if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
          signedOut(SESSION_ENDED);
          return;
        }
      }
    }
    // Reconnect with backoff (0.5 s .. 10 s); the presence lease outlives a short gap.
    const delay = Math.min(10000, 500 * 2 ** S.retry) * (0.8 + Math.random() * 0.4);
    S.retry = Math.min(S.retry + 1, 5);
    linkStatus('reconnecting…', 'bad');
    S.retryTimer = setTimeout(connect, delay);
  });
}

function disconnect() {
  clearTimeout(S.retryTimer);
  const ws = S.ws;
  S.ws = null; S.connected = false;
  if (ws) ws.close(1000);
}

function onFrame(f) {
  switch (f.type) {
    case 'hello':
      S.retry = 0; S.connected = true; S.hellos += 1;
      linkStatus('online', 'ok');
      S.queue = f.queue;
      S.mine = new Map(f.mine.map((c) => [c.id, c]));
      S.agents = f.agents;
      renderLists(); renderAgents();
      if (S.open) openConversation(S.open, false); // catch up on what the gap hid
      break;
    case 'queue':
      S.queue = f.items; renderLists();
      break;
    case 'conversation':
      onConversation(f.conversation);
      break;
    case 'agents':
      S.agents = f.items; renderAgents();
      break;
    case 'message':
      if (f.message.sender === 'agent' && NOT_SENT[f.message.state] && S.mine.has(f.conversation_id)) {
        notify(NOT_SENT[f.message.state]);
      }
      if (f.conversation_id === S.open) openConversation(S.open, false);
      else if (S.mine.has(f.conversation_id) && f.message.sender === 'buyer') {
        S.unread.add(f.conversation_id); renderLists();
      }
      break;
    default:
      break;
  }
}

function onConversation(c) {
  const mineNow = c.state === 'agent' && c.agent_id === S.agent.id;
  const wasMine = S.mine.has(c.id);
  if (mineNow) S.mine.set(c.id, c); else S.mine.delete(c.id);
  if (mineNow && !wasMine) notify('New conversation assigned to you: ' + short(c.openid) + '.', true);
  if (S.open === c.id) {
    S.openState = c;
    renderChatState();
  }
  renderLists();
}

// -- lists -------------------------------------------------------------------------------------

function renderLists() {
  const q = $('#queue');
  q.replaceChildren(...S.queue.map((c) => el('li', { 'data-conv': c.id },
    el('span', {}, short(c.openid),
      el('span', { class: 'meta' }, (c.session_from ? 'from ' + c.session_from + ' · ' : '') + 'waiting since ' + time(c.queued_at))),
    el('button', { type: 'button', onclick: () => claim(c.id), 'aria-label': 'Claim ' + short(c.openid) }, 'Claim'))));
  if (!S.queue.length) q.append(el('li', { class: 'hint' }, 'Nobody is waiting.'));
  $('#queue-count').textContent = String(S.queue.length);
  const m = $('#mine');
  const mine = [...S.mine.values()];
  m.replaceChildren(...mine.map((c) => el('li', { 'data-conv': c.id, class: c.id === S.open ? 'open' : '' },
    el('button', { type: 'button', class: 'link', onclick: () => openConversation(c.id, true) }, short(c.openid)),
    S.unread.has(c.id) ? el('span', { class: 'pill unread' }, 'new') : null)));
  if (!mine.length) m.append(el('li', { class: 'hint' }, 'None yet.'));
  $('#mine-count').textContent = String(mine.length);
}

function renderAgents() {
  const sel = $('#transfer-to');
  const others = S.agents.filter((a) => a.id !== (S.agent && S.agent.id));
  const chosen = sel.value;
  sel.replaceChildren(el('option', { value: '' }, others.length ? 'Choose an agent…' : 'No other agents'),
    ...others.map((a) => el('option', { value: a.id, disabled: !a.online || a.active >= a.capacity },
      `${a.name} (${a.online ? a.active + '/' + a.capacity + ' busy' : 'offline'})`)));
  sel.value = chosen;
  if (sel.selectedIndex < 0) sel.value = '';
}

async function claim(id) {
  const c = await guarded(() => call('POST', `/api/agent/conversations/${id}/claim`), 'Claimed.');
  if (c) { onConversation(c); openConversation(id, true); }
}

// -- one conversation ----------------------------------------------------------------------------

function renderChatState() {
  const c = S.openState;
  const mine = c && c.state === 'agent' && c.agent_id === S.agent.id;
  $('#chat-title').textContent = c ? short(c.openid) : 'Pick a conversation';
  const states = { queued: 'waiting in the queue', agent: mine ? 'with you' : 'with another agent', closed: 'closed', bot: 'with the bot' };
  $('#chat-state').textContent = c ? 'Conversation ' + (states[c.state] || c.state) + (c.session_from ? ' · came from ' + c.session_from : '') : '';
  show($('#reply-form'), !!mine); show($('#actions'), !!mine);
}

async function openConversation(id, focus) {
  const h = await guarded(() => call('GET', `/api/agent/conversations/${id}`));
  if (!h) return;
  if (S.open !== id) $('#reply-error').hidden = true;
  S.open = id; S.openState = h.conversation; S.unread.delete(id);
  renderChatState(); renderLists();
  const log = $('#messages');
  log.replaceChildren(...h.messages.map((m) => el('li', { class: m.sender },
    el('span', { class: 'who' }, `${m.sender} · ${time(m.at)}`),
    m.content || (m.kind === 'event' ? '(opened customer service)' : '[' + m.kind + ']'),
    ['skipped_quota', 'refused', 'failed'].includes(m.state)
      ? el('span', { class: 'not-sent' }, ' — not sent (' + (m.state === 'failed' ? 'WeChat error' : 'WeChat reply limit') + ')') : null,
    m.state === 'pending' ? el('span', { class: 'who' }, 'sending…') : null)));
  log.scrollTop = log.scrollHeight;
  const orders = $('#orders');
  orders.replaceChildren(...h.orders.map((o) => el('li', {}, `#${o.id} ${o.title} ×${o.quantity}`,
    el('span', { class: 'meta' }, `${o.status} · ${yuan(o.total_fen)}`))));
  if (!h.orders.length) orders.append(el('li', { class: 'hint' }, 'No orders in your shop.'));
  const goods = $('#goods');
  goods.replaceChildren(...h.goods.map((g) => el('li', {}, g.title,
    el('span', { class: 'meta' }, `${yuan(g.price_fen)} · stock ${g.stock} · ${time(g.tapped_at)}`))));
  if (!h.goods.length) goods.append(el('li', { class: 'hint' }, 'Nothing tapped lately.'));
  if (focus && !$('#reply-form').hidden) $('#reply-text').focus();
}

$('#reply-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('#reply-text').value.trim();
  if (!text || !S.open) return;
  const err = $('#reply-error');
  try {
    const sent = await call('POST', `/api/agent/conversations/${S.open}/reply`, { text });
    $('#reply-text').value = '';
    err.hidden = true;
    notify(`Sent. WeChat allows ${sent.window_left} more repl${sent.window_left === 1 ? 'y' : 'ies'} until the buyer writes again.`, true);
    openConversation(S.open, false);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { signedOut(e.message); return; }
    err.textContent = message(e);
    err.hidden = false;
  }
});

$('#reply-text').addEventListener('input', () => { $('#reply-error').hidden = true; });

$('#transfer').addEventListener('click', async () => {
  const to = Number($('#transfer-to').value);
  if (!S.open) return;
  if (!to) { notify('Choose an online agent to transfer to.'); return; }
  const c = await guarded(() => call('POST', `/api/agent/conversations/${S.open}/transfer`, { to_agent_id: to }), 'Transferred.');
  if (c) onConversation(c);
});

$('#close').addEventListener('click', async () => {
  if (!S.open) return;
  const c = await guarded(() => call('POST', `/api/agent/conversations/${S.open}/close`), 'Conversation closed.');
  if (c) onConversation(c);
});

// -- canned replies ------------------------------------------------------------------------------

async function loadCanned() {
  const list = await guarded(() => call('GET', '/api/agent/canned'));
  if (!list) return;
  S.canned = list.items;
  $('#canned-pick').replaceChildren(el('option', { value: '' }, 'Canned reply…'),
    ...S.canned.map((c) => el('option', { value: c.id }, c.title)));
  $('#canned-list').replaceChildren(...S.canned.map((c) => el('li', {},
    el('span', {}, el('strong', {}, c.title), el('span', { class: 'meta' }, c.body)),
    el('button', { type: 'button', class: 'link', 'aria-label': 'Delete ' + c.title, onclick: () => deleteCanned(c.id) }, 'Delete'))));
}

$('#canned-insert').addEventListener('click', () => {
  const c = S.canned.find((x) => String(x.id) === $('#canned-pick').value);
  if (!c) return;
  const box = $('#reply-text');
  box.value = box.value ? box.value + ' ' + c.body : c.body;
  box.focus();
});

$('#canned-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { title: $('#canned-title').value.trim(), body: $('#canned-body').value.trim() };
  if (await guarded(() => call('POST', '/api/agent/canned', body), 'Canned reply added.')) {
    ev.target.reset();
    loadCanned();
  }
});

async function deleteCanned(id) {
  if (await guarded(() => call('DELETE', `/api/agent/canned/${id}`), 'Canned reply deleted.')) loadCanned();
}

// -- start ---------------------------------------------------------------------------------------

(async () => {
  try {
    signedIn(await api('GET', '/api/agent/session'));
  } catch (e) {
    signedOut(e instanceof ApiError && e.status === 401 ? '' : message(e));
  }
})();
