// The audience page: behaves like the mini-program (clients/miniprogram/) and uses its socket
// client unchanged — same protocol, same resume and reconnect logic.
import { api, ApiError, humanMessage, el, $, show, yuan, randomKey, liveClient } from '/static/api.js';

const roomId = Number((/^\/live\/(\d+)/.exec(location.pathname) || [])[1]);
const TOKEN_KEY = 'lc_user_token';
const S = { token: localStorage.getItem(TOKEN_KEY) || '', room: null, client: null, bubble: null,
  order: null, bubbleTimer: null, frames: [], bubbles: [], notices: [], myGroups: new Set(),
  shownPushes: new Set() };
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
    // A resumed welcome is followed by the frames missed, in order: they show (or withdraw)
    // the bubbles themselves; a fresh welcome or a resync is the whole state.
    sync(!f.resumed);
  });
  c.on('resync', () => sync());
  c.on('goods_push', (f) => showBubble(f));
  c.on('goods_withdraw', () => hideBubble());
  c.on('flash_sale_push', (f) => showBubble(f));
  c.on('group_offer_push', (f) => showBubble(f));
  c.on('flash_sale_stock', () => renderBubble(c.state.bubble));
  c.on('group_progress', () => renderBubble(c.state.bubble));
  c.on('viewer_count', () => { $('#viewers').textContent = c.state.viewers; });
  c.on('likes', () => { $('#likes').textContent = c.state.likes; });
  c.on('room_state', (f) => { if (f.room) renderRoom(f.room); });
  c.on('comment', (f) => addComment(f));
  c.on('comment_delete', (f) => { const li = $(`#comments li[data-seq='${f.comment_seq}']`); if (li) li.remove(); });
  c.on('frame', (f) => {
    if (f.type === 'notice') {
      S.notices.push(f);
      afterSaleNotice(f);
      if (f.kind === 'order_paid') toast(`Payment received for order #${f.data.order_id}: ${f.data.title}`);
      else if (f.kind === 'order_shipped') toast(`Order #${f.data.order_id} shipped (${f.data.carrier} ${f.data.tracking_no})`);
      else if (f.kind === 'group_succeeded') toast(`Your group for ${f.data.title} is complete!`);
      else if (f.kind === 'refund_started') toast(`Refund of ${yuan(f.data.total_fen)} for order #${f.data.order_id} started.`);
      else if (f.kind === 'refund_succeeded') toast(`Refund of ${yuan(f.data.total_fen)} for order #${f.data.order_id} is done.`);
      else if (f.kind === 'refund_closed') toast(`Refund of ${yuan(f.data.total_fen)} for order #${f.data.order_id} did not go through: WeChat Pay closed it. ${refundClosedNext(f.data)}`);
      else if (f.kind === 'aftersale_approved') toast(`The host approved your refund request for order #${f.data.order_id}.`);
      else if (f.kind === 'aftersale_rejected') toast(`The host declined your refund request for order #${f.data.order_id}${f.data.note ? ': ' + f.data.note : ''}.`);
      else if (f.kind === 'group_failed') toast(`Your group for ${f.data.title} did not fill: ${f.data.outcome === 'refunded' ? yuan(f.data.refund_fen) + ' is on its way back' : 'order cancelled'}.`);
    }
  });
  c.on('error', (f) => { const text = commentError(f); if (text) error(text); });
  c.on('reconnecting', () => { conn.textContent = 'connection lost, reconnecting…'; });
  c.on('ended', () => { conn.textContent = 'The live has ended.'; $('#room-state').textContent = 'ended'; });
  c.on('unauthorized', needLogin);
  c.connect();
}

function sync(withBubble = true) {
  const st = S.client.state;
  if (st.room) renderRoom(st.room);
  $('#viewers').textContent = st.viewers;
  $('#likes').textContent = st.likes;
  if (!withBubble) return;
  if (st.bubble) { showBubble(st.bubble); freshen(st.bubble); } else hideBubble();
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

// A bubble is goods, a flash sale (live stock) or a group offer ("N joined, M to go"): one view.
function bubbleView(f) {
  if (f.sale) {
    const s = f.sale;
    return { kind: 'flash', goods: s.goods, price_fen: s.sale_price_fen, left: s.stock_left,
      text: s.stock_left > 0 ? `flash sale · ${s.stock_left} left` : 'sold out', action: 'Buy now' };
  }
  if (f.offer) {
    const o = f.offer;
    const g = o.group;
    const mine = g && S.myGroups.has(g.id);
    return { kind: 'group', goods: o.goods, price_fen: o.group_price_fen, left: mine ? 0 : 1,
      text: g ? `group: ${g.joined} joined, ${g.to_go} to go` : `groups of ${o.size}: start one`,
      action: mine ? 'You are in this group' : g ? 'Join group' : 'Start a group' };
  }
  const g = f.goods;
  return { kind: 'goods', goods: g, price_fen: g.price_fen, left: g.stock,
    text: g.stock > 0 ? `${g.stock} left` : 'sold out', action: 'Buy now' };
}

function renderBubble(f) {
  if (!f || !(f.goods || f.sale || f.offer)) return false;
  const v = bubbleView(f);
  S.bubble = f;
  $('#bubble-title').textContent = v.goods.title;
  $('#bubble-price').textContent = yuan(v.price_fen);
  $('#bubble-stock').textContent = v.text;
  $('#bubble-img').hidden = !v.goods.image;
  if (v.goods.image) $('#bubble-img').src = v.goods.image;
  $('#buy').textContent = v.action;
  $('#buy').disabled = v.left <= 0;
  return true;
}

// A bubble from welcome may be old: read the sale's or the offer's numbers now.
async function freshen(f) {
  try {
    if (f.sale) f.sale = await api('GET', '/api/flash-sales/' + f.sale.id);
    else if (f.offer) f.offer = await api('GET', '/api/group-offers/' + f.offer.id);
    else return;
  } catch (e) { return; }
  if (S.bubble === f) renderBubble(f);
}

function showBubble(f) {
  // A bubble whose time is over (a push replayed after a long reconnect) is not shown, and so
  // not counted as an impression: the viewer never saw it while it was on.
  const serverNow = Date.now() + ((S.client && S.client.clockOffsetMs) || 0);
  if (f.ts && f.ts + (f.show_seconds || 30) * 1000 <= serverNow) return;
  if (!renderBubble(f)) return;
  const g = bubbleView(f).goods;
  show($('#bubble'), true);
  // One impression per push: the same push again (the welcome's current bubble, then its
  // replayed frame after a resume) is drawn again but not counted again.
  const key = f.push_id || f.seq;
  if (key === undefined || !S.shownPushes.has(key)) {
    if (key !== undefined) S.shownPushes.add(key);
    S.bubbles.push({ push_id: f.push_id, goods_id: g.id, ts: f.ts, shown_at: Date.now() });
    trackBubble('bubble_impression', f);
  }
  clearTimeout(S.bubbleTimer);
  const until = (f.ts || Date.now()) + (f.show_seconds || 30) * 1000;
  S.bubbleTimer = setTimeout(hideBubble, Math.max(1000, until - Date.now()));
}

function hideBubble() { clearTimeout(S.bubbleTimer); show($('#bubble'), false); }

// Analytics (docs/protocol.md, `track`): the bubble's impressions and clicks with its push seq,
// which the host console's live figures and the per-push reports count.
function trackBubble(type, f) {
  if (!S.client || !S.room || !f || typeof f.seq !== 'number') return;
  if (!(f.goods || f.sale || f.offer)) return;
  const g = bubbleView(f).goods;
  if (!g) return;
  const ev = { type, room_id: S.room.id, goods_id: g.id, push_seq: f.seq, page: 'live' };
  const x = f.experiment; // an A/B-tested bubble: the viewer's variant (docs/protocol.md)
  if (x && x.included) ev.variants = { [x.key]: x.variant };
  try { S.client.track([ev]); } catch (e) { /* analytics never stands in the way of buying */ }
}

$('#bubble-close').addEventListener('click', hideBubble);

// -- buy -------------------------------------------------------------------------------------

$('#buy').addEventListener('click', () => {
  if (!S.bubble) return;
  trackBubble('bubble_click', S.bubble);
  const v = bubbleView(S.bubble);
  const g = v.goods;
  S.order = null;
  $('#detail-title').textContent = g.title;
  $('#detail-img').hidden = !g.image;
  if (g.image) $('#detail-img').src = g.image;
  $('#detail-price').textContent = yuan(v.price_fen);
  $('#detail-stock').textContent = v.text;
  $('#place').textContent = v.kind === 'group' ? v.action : 'Place order';
  show($('#quantity-row'), v.kind !== 'group');
  $('#order-status').textContent = '';
  $('#aftersale-reason').value = ''; $('#aftersale-return').checked = false;
  showAfterSale(null, '');
  show($('#place'), true); show($('#pay'), false);
  show($('#detail'), true);
  $('#detail').scrollIntoView();
  $('#place').focus();
});

// The shipping address (wx.chooseAddress in the mini-program): every order ships to one.
const ADDRESS_KEY = 'lc_address';
const ADDRESS_FIELDS = { userName: '#addr-name', telNumber: '#addr-tel', provinceName: '#addr-province',
  cityName: '#addr-city', countyName: '#addr-county', detailInfo: '#addr-detail' };
const DEV_ADDRESS = { userName: '张三', telNumber: '020-81167888', provinceName: '广东省',
  cityName: '广州市', countyName: '海珠区', detailInfo: '新港中路397号' };

function loadAddress() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(ADDRESS_KEY) || 'null'); } catch (e) { saved = null; }
  const a = saved || DEV_ADDRESS;
  for (const [k, sel] of Object.entries(ADDRESS_FIELDS)) $(sel).value = a[k] || '';
  shipToText();
}

function readAddress() {
  const a = {};
  for (const [k, sel] of Object.entries(ADDRESS_FIELDS)) { const v = $(sel).value.trim(); if (v) a[k] = v; }
  return a;
}

function shipToText() {
  const a = readAddress();
  $('#ship-to-text').textContent = `${a.userName || '?'}, ${a.cityName || ''} ${a.detailInfo || ''}`;
}

$('#ship-to').addEventListener('input', shipToText);
loadAddress();

$('#detail-close').addEventListener('click', () => { show($('#detail'), false); $('#buy').focus(); });

// Order what the bubble offers: goods (with the address), a flash-sale unit, a group seat
// (open a group or join the featured one) — the last two get the address right after.
async function placeOrder(f, quantity) {
  const opts = (body) => ({ token: S.token, body, headers: { 'Idempotency-Key': randomKey() } });
  if (!f.sale && !f.offer) {
    return api('POST', '/api/orders', opts({ goods_id: f.goods.id, quantity, address: readAddress() }));
  }
  let order;
  if (f.sale) order = await api('POST', `/api/flash-sales/${f.sale.id}/buy`, opts({ quantity }));
  else {
    const g = f.offer.group;
    const path = g ? `/api/groups/${g.id}/join` : `/api/group-offers/${f.offer.id}/groups`;
    const seat = await api('POST', path, opts({}));
    S.myGroups.add(seat.group_id);
    order = seat.order;
  }
  return api('PUT', `/api/orders/${order.id}/address`, { token: S.token, body: readAddress() });
}

$('#place').addEventListener('click', async () => {
  const quantity = Number($('#quantity').value) || 1;
  $('#place').disabled = true;
  try {
    S.order = await placeOrder(S.bubble, quantity);
    localStorage.setItem(ADDRESS_KEY, JSON.stringify(readAddress()));
    $('#order-status').textContent = `Order #${S.order.id}: ${yuan(S.order.total_fen)}, awaiting payment.`;
    show($('#place'), false); show($('#pay'), true);
    $('#pay').focus();
  } catch (e) {
    $('#order-status').textContent = e.message;
    if (e.field && e.field.startsWith('address')) $('#ship-to').open = true;
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
    if (S.order.status === 'paid') { show($('#pay'), false); showAfterSale(null, ''); }
  } catch (e) {
    $('#order-status').textContent = e.message;
  } finally {
    $('#pay').disabled = false;
  }
});

// -- after-sales: the buyer asks for a refund of the paid or shipped order on show ----------------

// What the buyer sees of the order's request: the form (order paid or shipped, nothing open) or
// the request's state in words. `request` is the API's AfterSale (docs/api.md "After-sales").
function showAfterSale(request, text) {
  const o = S.order;
  S.aftersale = request;
  const open = !!o && ['paid', 'shipped'].includes(o.status) && !(request && request.status !== 'rejected');
  show($('#aftersale-form'), open);
  $('#aftersale-status').textContent = text;
  showAfterSaleError('');
}

function showAfterSaleError(text) { const n = $('#aftersale-error'); n.textContent = text; show(n, !!text); }

$('#aftersale-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const o = S.order;
  const reason = $('#aftersale-reason').value.trim();
  if (!o) return;
  if (!reason) { showAfterSaleError('Please say why you want a refund.'); $('#aftersale-reason').focus(); return; }
  $('#aftersale-submit').disabled = true;
  try {
    const res = await fetch(`/api/orders/${o.id}/after-sales`, { method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + S.token },
      body: JSON.stringify({ reason, return_goods: $('#aftersale-return').checked }) });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw afterSaleError(res.status, (data && data.error) || {}, o);
    showAfterSale(data, res.status === 201
      ? `Refund requested for order #${o.id}. The host will review it; you will see the answer here.`
      : `You already asked for a refund of order #${o.id}; the host is still reviewing it.`);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'illegal_transition') await refreshOrder(o);
    showAfterSaleError(e instanceof ApiError ? e.message : humanMessage(0, null));
    if (e.status === 401) needLogin();
  } finally {
    $('#aftersale-submit').disabled = false;
  }
});

// Error codes of the request in words (api.js's MESSAGES are too general here).
function afterSaleError(status, err, o) {
  const texts = {
    illegal_transition: `Order #${o.id} can no longer be refunded here: only a paid or shipped order can.`,
    not_found: `Order #${o.id} is not one of your orders.`,
  };
  const text = texts[err.code] || humanMessage(status, err);
  return new ApiError(status, err.code || 'http_' + status, text, err.field);
}

async function refreshOrder(o) {
  try { S.order = await api('GET', `/api/orders/${o.id}`, { token: S.token }); } catch (e) { return; }
  showAfterSale(S.aftersale, `Order #${o.id} is ${S.order.status}.`);
}

// What happens after WeChat Pay closed a refund (the notice's `outcome`), in words.
function refundClosedNext(d) {
  if (d.outcome === 'reissued') return 'It is being requested again; nothing to do on your side.';
  if (d.outcome === 'order_back') return 'The shop has been told and will refund it again; you may also ask again.';
  return 'The shop has been told and will refund it again.';
}

// The host's decision (and the refund it starts) for the order on show, in words.
function afterSaleNotice(f) {
  const o = S.order;
  if (!o || !f.data || f.data.order_id !== o.id) return;
  if (f.kind === 'aftersale_approved') {
    o.status = 'refunded';
    showAfterSale({ status: 'approved' }, `Refund approved: the host accepted your request for order #${o.id}; the money is on its way back.`);
  } else if (f.kind === 'aftersale_rejected') {
    showAfterSale({ status: 'rejected' }, `Refund declined for order #${o.id}${f.data.note ? ': ' + f.data.note : ''}. You may ask again.`);
  } else if (f.kind === 'refund_succeeded') {
    $('#aftersale-status').textContent = `Refunded: ${yuan(f.data.total_fen)} for order #${o.id} is back on your WeChat Pay.`;
  } else if (f.kind === 'refund_closed') {
    // A host-decided refund sends the order back (paid / shipped / completed): read it again,
    // and the buyer may ask again (the earlier request was approved, so it no longer counts).
    const text = `The refund of ${yuan(f.data.total_fen)} for order #${o.id} did not go through. ${refundClosedNext(f.data)}`;
    refreshOrder(o).then(() => showAfterSale(null, text));
  } else if (f.kind === 'order_shipped') {
    o.status = 'shipped';
    showAfterSale(S.aftersale, $('#aftersale-status').textContent);
  }
}

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
