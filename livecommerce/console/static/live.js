// The audience page: behaves like the mini-program (clients/miniprogram/) and uses its socket
// client unchanged — same protocol, same resume and reconnect logic.
import { api, ApiError, el, $, show, yuan, randomKey, liveClient } from '/static/api.js';

const roomId = Number((/^\/live\/(\d+)/.exec(location.pathname) || [])[1]);
const TOKEN_KEY = 'lc_user_token';
const S = { token: localStorage.getItem(TOKEN_KEY) || '', room: null, client: null, bubble: null,
  order: null, bubbleTimer: null, frames: [], bubbles: [], notices: [] };
window.__live = S; // for the browser tests

function error(text) { const n = $('#error'); n.textContent = text; show(n, !!text); }
function toast(text) {
  const n = $('#toast');
  n.textContent = text;
  show(n, true);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => show(n, false), 5000);
}

// Payment in development: the server pays through the fake WeChat Pay. The one place to swap
// for the real flow (wx.requestPayment with the prepay parameters) in a mini-program.
async function pay(order) {
  const res = await api('POST', `/api/dev/orders/${order.id}/pay`, { token: S.token });
  return res.order;
}

// -- login (fake WeChat in development) --------------------------------------------------------

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const res = await api('POST', '/api/auth/wechat/login',
      { body: { code: `${$('#login-name').value.trim()}.${randomKey()}` } });
    S.token = res.token;
    localStorage.setItem(TOKEN_KEY, res.token);
    start();
  } catch (e) {
    error(e instanceof ApiError ? e.message : 'Could not sign in.');
  }
});

function needLogin() {
  S.token = '';
  localStorage.removeItem(TOKEN_KEY);
  if (S.client) { S.client.close(); S.client = null; }
  show($('#stage'), false); show($('#detail'), false); show($('#login'), true);
  $('#login-name').focus();
}

// -- the room --------------------------------------------------------------------------------

async function start() {
  if (!S.token) return needLogin();
  try {
    await api('GET', '/api/me', { token: S.token });
  } catch (e) {
    if (e.status === 401 || e.status === 404) return needLogin();
  }
  try {
    S.room = await api('GET', '/api/rooms/' + roomId);
  } catch (e) {
    show($('#stage'), true); show($('#login'), false);
    $('#room-title').textContent = e.status === 404 ? 'This live room does not exist.' : e.message;
    return;
  }
  show($('#login'), false); show($('#stage'), true); error('');
  renderRoom(S.room);
  connect();
}

function renderRoom(room) {
  $('#room-title').textContent = room.title;
  $('#room-state').textContent = room.state === 'live' ? 'LIVE' : room.state;
  $('#stream-url').textContent = room.stream_url ? 'Stream: ' + room.stream_url : '';
}

function connect() {
  const c = liveClient(roomId, S.token);
  S.client = c;
  const conn = $('#conn');
  c.on('frame', (f) => { if (typeof f.seq === 'number') S.frames.push({ seq: f.seq, type: f.type, ts: f.ts }); });
  c.on('welcome', (f) => {
    conn.textContent = f.resumed ? 'reconnected' : 'connected';
    if (f.resumed) S.resumes = (S.resumes || 0) + 1;
    sync();
  });
  c.on('resync', sync);
  c.on('goods_push', (f) => showBubble(f));
  c.on('goods_withdraw', () => hideBubble());
  c.on('viewer_count', () => { $('#viewers').textContent = c.state.viewers; });
  c.on('likes', () => { $('#likes').textContent = c.state.likes; });
  c.on('room_state', (f) => { if (f.room) renderRoom(f.room); });
  c.on('comment', (f) => addComment(f));
  c.on('comment_delete', (f) => { const li = $(`#comments li[data-seq='${f.comment_seq}']`); if (li) li.remove(); });
  c.on('frame', (f) => {
    if (f.type === 'notice') {
      S.notices.push(f);
      if (f.kind === 'order_paid') toast(`Payment received for order #${f.data.order_id}: ${f.data.title}`);
      else if (f.kind === 'order_shipped') toast(`Order #${f.data.order_id} shipped (${f.data.carrier} ${f.data.tracking_no})`);
    }
  });
  c.on('error', (f) => { const text = commentError(f); if (text) error(text); });
  c.on('reconnecting', () => { conn.textContent = 'connection lost, reconnecting…'; });
  c.on('ended', () => { conn.textContent = 'The live has ended.'; $('#room-state').textContent = 'ended'; });
  c.on('unauthorized', needLogin);
  c.connect();
}

function sync() {
  const st = S.client.state;
  if (st.room) renderRoom(st.room);
  $('#viewers').textContent = st.viewers;
  $('#likes').textContent = st.likes;
  if (st.bubble) showBubble(st.bubble); else hideBubble();
}

// What the author is told when the room's moderation did not publish their comment.
function commentError(f) {
  const until = f.until ? ' until ' + new Date(f.until).toLocaleTimeString() : '';
  const texts = {
    muted: `The host has muted you in this room${until}.`,
    room_muted: 'Comments are turned off in this room.',
    blocked_word: 'Your comment contains a word this room does not allow, so it was not posted.',
    content_risky: 'Your comment did not pass the content check and was not posted.',
    comment_held: 'Your comment is waiting for the host’s review.',
  };
  if (texts[f.code]) return texts[f.code];
  if (f.code === 'unavailable' && /comment/.test(f.message || '')) return 'Your comment could not be posted right now. Send it again in a moment.';
  return '';
}

function addComment(f) {
  const who = f.user ? (f.user.kind === 'user' ? 'viewer ' + f.user.id : 'guest') : 'someone';
  const list = $('#comments');
  list.append(el('li', { 'data-seq': f.seq }, el('strong', {}, who + ' '), f.text));
  while (list.children.length > 100) list.firstChild.remove();
  list.lastChild.scrollIntoView({ block: 'nearest' });
}

// -- bubble ----------------------------------------------------------------------------------

function showBubble(f) {
  if (!f || !f.goods) return;
  const g = f.goods;
  S.bubble = f;
  $('#bubble-title').textContent = g.title;
  $('#bubble-price').textContent = yuan(g.price_fen);
  $('#bubble-stock').textContent = g.stock > 0 ? `${g.stock} left` : 'sold out';
  $('#bubble-img').hidden = !g.image;
  if (g.image) $('#bubble-img').src = g.image;
  $('#buy').disabled = g.stock <= 0;
  show($('#bubble'), true);
  S.bubbles.push({ push_id: f.push_id, goods_id: g.id, ts: f.ts, shown_at: Date.now() });
  clearTimeout(S.bubbleTimer);
  const until = (f.ts || Date.now()) + (f.show_seconds || 30) * 1000;
  S.bubbleTimer = setTimeout(hideBubble, Math.max(1000, until - Date.now()));
}

function hideBubble() { clearTimeout(S.bubbleTimer); show($('#bubble'), false); }

$('#bubble-close').addEventListener('click', hideBubble);

// -- buy -------------------------------------------------------------------------------------

$('#buy').addEventListener('click', () => {
  if (!S.bubble) return;
  const g = S.bubble.goods;
  S.order = null;
  $('#detail-title').textContent = g.title;
  $('#detail-img').hidden = !g.image;
  if (g.image) $('#detail-img').src = g.image;
  $('#detail-price').textContent = yuan(g.price_fen);
  $('#detail-stock').textContent = `${g.stock} left`;
  $('#order-status').textContent = '';
  show($('#place'), true); show($('#pay'), false);
  show($('#detail'), true);
  $('#detail').scrollIntoView();
  $('#place').focus();
});

$('#detail-close').addEventListener('click', () => { show($('#detail'), false); $('#buy').focus(); });

$('#place').addEventListener('click', async () => {
  const goods = S.bubble.goods;
  const quantity = Number($('#quantity').value) || 1;
  $('#place').disabled = true;
  try {
    S.order = await api('POST', '/api/orders', {
      token: S.token, body: { goods_id: goods.id, quantity },
      headers: { 'Idempotency-Key': randomKey() },
    });
    $('#order-status').textContent = `Order #${S.order.id}: ${yuan(S.order.total_fen)}, awaiting payment.`;
    show($('#place'), false); show($('#pay'), true);
    $('#pay').focus();
  } catch (e) {
    $('#order-status').textContent = e.message;
  } finally {
    $('#place').disabled = false;
  }
});

$('#pay').addEventListener('click', async () => {
  $('#pay').disabled = true;
  try {
    S.order = await pay(S.order);
    $('#order-status').textContent = S.order.status === 'paid'
      ? `Order #${S.order.id} is paid. Thank you!` : `Order #${S.order.id}: ${S.order.status}.`;
    if (S.order.status === 'paid') show($('#pay'), false);
  } catch (e) {
    $('#order-status').textContent = e.message;
  } finally {
    $('#pay').disabled = false;
  }
});

// -- likes and comments ------------------------------------------------------------------------

$('#like').addEventListener('click', () => {
  if (!S.client || !S.client.like(1)) error('Not connected yet.');
});

$('#comment-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('#comment-text');
  try {
    if (!input.value.trim()) return;
    if (!S.client.comment(input.value)) { error('Not connected yet; try again in a moment.'); return; }
    input.value = '';
    error('');
  } catch (e) {
    error(e.message);
  }
});

if (!roomId) {
  show($('#stage'), true);
  $('#room-title').textContent = 'No room given. Open /live to pick one.';
} else {
  start();
}
