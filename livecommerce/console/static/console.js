// The host console: sign-in (session cookie + CSRF token), rooms, goods shelf, pushes,
// schedules, the live panel over the room's WebSocket, and orders.
import { api, ApiError, el, $, show, yuan, randomKey, liveClient, notify } from '/static/api.js';
import { initModeration, openModeration, closeModeration, muteButton } from '/static/moderation.js';
import '/static/console-agents.js'; // the customer-service section (agents, canned replies, FAQ)
import { afterSalesCell, pendingRequests } from '/static/console-refunds.js';

const S = { host: null, csrf: '', roomsCursor: null, room: null, client: null, timers: [],
  comments: [], curve: [], pushFigs: new Map() };
window.__console = S; // for the browser tests

// A host call through the session cookie; writes carry the CSRF token.
function call(method, path, body, headers) {
  return api(method, path, { body, headers, csrf: method === 'GET' ? '' : S.csrf });
}

async function guarded(fn, okText) {
  try {
    const out = await fn();
    if (okText) notify(okText, true);
    return out;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signedOut(e.message);
    notify(e instanceof ApiError ? e.message : 'Something went wrong. Try again.');
    return undefined;
  }
}

// -- session ---------------------------------------------------------------------------------

function signedOut(message) {
  S.host = null;
  S.csrf = '';
  leaveRoom();
  show($('#who'), false); show($('#rooms'), false); show($('#room'), false);
  show($('#signin'), true);
  if (message) notify(message);
  $('#signin-name').focus();
}

function signedIn(session) {
  S.host = session.host;
  S.csrf = session.csrf_token;
  $('#host-name').textContent = session.host.name;
  show($('#who'), true); show($('#signin'), false);
  notify('');
  showRooms();
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { name: $('#signin-name').value.trim(), password: $('#signin-password').value };
  try {
    signedIn(await api('POST', '/api/console/session', { body }));
    $('#signin-password').value = '';
  } catch (e) {
    notify(e.message);
  }
});

$('#sign-out').addEventListener('click', async () => {
  await guarded(() => call('DELETE', '/api/console/session'));
  signedOut('Signed out.');
});

// -- rooms -----------------------------------------------------------------------------------

async function loadRooms(append) {
  const state = $('#rooms-state').value;
  const q = new URLSearchParams({ limit: '20' });
  if (state) q.set('state', state);
  if (append && S.roomsCursor) q.set('cursor', S.roomsCursor);
  const page = await guarded(() => call('GET', '/api/rooms?' + q));
  if (!page) return;
  const list = $('#room-list');
  if (!append) list.replaceChildren();
  for (const room of page.items) {
    list.append(el('li', { 'data-room': room.id },
      el('button', { type: 'button', class: 'link', onclick: () => openRoom(room.id) }, room.title),
      ' ', el('span', { class: 'pill' + (room.state === 'live' ? ' ok' : '') }, room.state)));
  }
  if (!page.items.length && !append) list.append(el('li', {}, 'No rooms yet: create one below.'));
  S.roomsCursor = page.next_cursor;
  show($('#rooms-more'), !!page.next_cursor);
}

function showRooms() {
  leaveRoom();
  show($('#room'), false); show($('#rooms'), true);
  history.replaceState(null, '', '/console');
  loadRooms(false);
}

$('#rooms-state').addEventListener('change', () => loadRooms(false));
$('#rooms-more').addEventListener('click', () => loadRooms(true));
$('#back').addEventListener('click', showRooms);

$('#room-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { title: $('#room-title').value.trim() };
  if ($('#room-cover').value) body.cover_url = $('#room-cover').value;
  if ($('#room-stream').value) body.stream_url = $('#room-stream').value;
  if ($('#room-planned').value) body.planned_start_at = new Date($('#room-planned').value).toISOString();
  const room = await guarded(() => call('POST', '/api/rooms', body), 'Room created.');
  if (room) { ev.target.reset(); openRoom(room.id); }
});

// -- one room --------------------------------------------------------------------------------

function leaveRoom() {
  closeModeration();
  if (S.client) { S.client.close(); S.client = null; }
  S.timers.forEach(clearInterval);
  S.timers = [];
  S.room = null;
}

async function openRoom(roomId) {
  leaveRoom();
  const room = await guarded(() => call('GET', '/api/rooms/' + roomId));
  if (!room) return;
  S.room = room;
  S.comments = [];
  S.curve = [];
  S.pushFigs = new Map();
  show($('#rooms'), false); show($('#room'), true);
  history.replaceState(null, '', '/console?room=' + room.id);
  renderRoomHead();
  renderShelf(room.goods);
  $('#comments').replaceChildren();
  loadCatalogue();
  refreshTimeline();
  refreshOrders();
  startOffers();
  openModeration(room.id);
  S.timers.push(setInterval(refreshTimeline, 1000), setInterval(refreshOrders, 2000),
    setInterval(renderRate, 5000));
  connectLive();
}

function renderRoomHead() {
  const r = S.room;
  $('#room-title-h').textContent = r.title;
  $('#room-state').textContent = r.state;
  $('#audience-link').href = '/live/' + r.id;
  $('#room-start').disabled = r.state !== 'scheduled';
  $('#room-end').disabled = r.state === 'ended';
}

$('#room-start').addEventListener('click', async () => {
  const r = await guarded(() => call('POST', `/api/rooms/${S.room.id}/start`), 'The room is live.');
  if (r) { Object.assign(S.room, r); renderRoomHead(); }
});
$('#room-end').addEventListener('click', async () => {
  if (!confirm('End this live for everyone?')) return;
  const r = await guarded(() => call('POST', `/api/rooms/${S.room.id}/end`), 'The live has ended.');
  if (r) { Object.assign(S.room, r); renderRoomHead(); }
});
$('#withdraw').addEventListener('click', () =>
  guarded(() => call('POST', `/api/rooms/${S.room.id}/withdraw`), 'Bubble withdrawn.'));

const STATS_STALE_MS = 4000;

// -- live panel (the room's own WebSocket, with the mini-program client's resume logic) --------

async function connectLive() {
  const roomId = S.room.id;
  const tok = await guarded(() => socketToken(roomId));
  if (!tok || !S.room || S.room.id !== roomId) return;
  const c = liveClient(roomId, tok.token);
  S.client = c;
  const conn = $('#conn');
  const status = (text, cls) => { conn.textContent = text; conn.className = 'pill ' + cls; };
  // Connected but no `stats` frame for a while (they come every second): the server lost a
  // backend and keeps reconnecting — say so instead of showing frozen figures as live.
  let live = false;
  S.lastStats = Date.now();
  S.timers.push(setInterval(() => {
    if (!live || S.client !== c) return;
    const paused = Date.now() - S.lastStats > STATS_STALE_MS;
    if (paused) status('connected · live figures paused: the server is reconnecting to its backends', 'bad');
    else if (conn.classList.contains('bad')) status('connected', 'ok');
  }, 1000));
  const render = () => {
    sample(c.state.viewers);
    $('#viewers').textContent = c.state.viewers;
    $('#likes').textContent = c.state.likes;
    const b = c.state.bubble;
    $('#bubble-now').textContent = bubbleTitle(b);
  };
  c.on('welcome', () => { live = true; S.lastStats = Date.now(); status('connected', 'ok'); render(); });
  c.on('resync', render);
  ['goods_push', 'goods_withdraw', 'viewer_count', 'likes'].forEach((t) => c.on(t, render));
  OFFER_FRAMES.forEach((t) => c.on(t, render));
  c.on('room_state', (f) => { if (f.room) { Object.assign(S.room, f.room); renderRoomHead(); } });
  c.on('comment', (f) => {
    S.comments.push(Date.now());
    const who = f.user ? f.user.kind + ' ' + f.user.id : 'someone';
    // The seq names the comment within its epoch only: a new epoch (Redis lost the room's
    // stream) restarts the seqs, so the deletion names the epoch too.
    const epoch = c.epoch || '';
    const path = `/api/rooms/${S.room.id}/comments/${f.seq}?epoch=${encodeURIComponent(epoch)}`;
    $('#comments').append(el('li', { 'data-seq': f.seq, 'data-epoch': epoch }, el('strong', {}, who + ': '), f.text, ' ',
      el('button', { type: 'button', class: 'link', 'aria-label': `Delete comment: ${f.text}`,
        onclick: () => guarded(() => call('DELETE', path), 'Comment deleted for everyone.') },
      'Delete'), ' ', muteButton(f)));
    $('#comments').lastChild.scrollIntoView({ block: 'nearest' });
    renderRate();
  });
  c.on('comment_delete', (f) => {
    const li = $(`#comments li[data-seq='${f.comment_seq}'][data-epoch='${CSS.escape(c.epoch || '')}']`);
    if (li) li.remove();
  });
  c.on('reconnecting', (r) => { live = false; status(`connection lost, reconnecting (attempt ${r.attempt})…`, 'bad'); });
  c.on('ended', () => { live = false; status('the live has ended', ''); });
  c.on('unauthorized', async () => {
    const fresh = await guarded(() => socketToken(roomId));
    if (fresh && S.client === c) { c.setToken(fresh.token); c.connect(); }
  });
  c.on('frame', (f) => {
    if (f.type === 'stats' && S.room && f.room_id === S.room.id) { S.lastStats = Date.now(); renderStats(f); }
  });
  c.connect();
}

// The room socket as its console: a host token, so the server sends the `stats` frames.
function socketToken(roomId) {
  return call('POST', `/api/host/rooms/${roomId}/socket-token`);
}

// -- live figures (the `stats` frame, every second; docs/protocol.md) -------------------------

function renderStats(f) {
  S.stats = f;
  $('#lpm').textContent = f.likes_per_min;
  $('#cpm').textContent = f.comments_per_min;
  $('#paid-orders').textContent = f.paid_orders;
  $('#gmv').textContent = yuan(f.gmv_fen);
  $('#gpm').textContent = f.gpm_fen === null ? '–' : yuan(Math.round(f.gpm_fen));
  const top = Math.max(1, ...f.curve.map((m) => m.viewers));
  const n = f.curve.length;
  const y = (m) => (58 - 56 * m.viewers / top).toFixed(1);
  const pts = f.curve.map((m, i) => `${(n > 1 ? 300 * i / (n - 1) : 0).toFixed(1)},${y(m)}`);
  if (n === 1) pts.push(`300,${y(f.curve[0])}`); // one minute so far: a flat line
  $('#minute-line').setAttribute('points', pts.join(' '));
  const last = f.curve[n - 1];
  $('#minute-curve').setAttribute('aria-label', `Viewers per minute: ${n} minutes, peak ${f.peak_viewers}` +
    (last ? `, this minute ${last.viewers}` : ''));
  renderPushStats(f.pushes);
}

function pushFigures(p) {
  const fig = (k, label, v) => el('span', { class: 'fig', 'data-k': k }, `${label} ${v}`);
  return el('span', { class: 'figs' },
    fig('viewers', 'reached', p.viewers), ' · ', fig('impressions', 'seen', p.impressions), ' · ',
    fig('clicks', 'clicks', p.clicks), ' · ', fig('orders', 'orders', p.orders), ' · ',
    fig('paid', 'paid', p.paid_orders), ' · ', fig('gmv', 'GMV', yuan(p.gmv_fen)));
}

// One row per fired push (scheduled or pushed now), newest first; fired schedules in the
// timeline above get the same figures.
function renderPushStats(pushes) {
  const list = $('#push-stats');
  list.replaceChildren();
  for (const p of pushes.slice().reverse()) {
    const when = p.pushed_at ? new Date(p.pushed_at).toLocaleTimeString() : '';
    const late = p.lateness_ms === null ? '' : `, ${p.lateness_ms} ms late`;
    list.append(el('li', { 'data-push-seq': p.push_seq },
      el('strong', {}, p.goods_id ? titleOf(p.goods_id) : `push ${p.push_seq}`),
      ` — ${when}${late}: `, pushFigures(p)));
    if (p.schedule_id !== null) {
      S.pushFigs.set(p.schedule_id, p); // kept: the timeline's own refresh redraws them
      attachFigures($(`#timeline li[data-schedule='${p.schedule_id}']`), p);
    }
  }
  if (!pushes.length) list.append(el('li', { class: 'hint' }, 'No pushes yet.'));
}

function attachFigures(item, p) {
  if (!item || !p) return;
  const old = item.querySelector('.figs');
  if (old) old.remove();
  item.append(pushFigures(p));
}

// The viewer curve of this session: one sample per change, drawn as an SVG polyline.
function sample(viewers) {
  const last = S.curve[S.curve.length - 1];
  if (last && last.n === viewers) return;
  S.curve.push({ t: Date.now(), n: viewers });
  if (S.curve.length > 500) S.curve.shift();
  const t0 = S.curve[0].t;
  const span = Math.max(1, Date.now() - t0);
  const top = Math.max(1, ...S.curve.map((p) => p.n));
  const pts = S.curve.map((p) => `${(300 * (p.t - t0) / span).toFixed(1)},${(58 - 56 * p.n / top).toFixed(1)}`);
  pts.push(`300,${(58 - 56 * viewers / top).toFixed(1)}`);
  $('#curve-line').setAttribute('points', pts.join(' '));
  $('#curve').setAttribute('aria-label', `Viewers over time: now ${viewers}, peak ${top}`);
}

function renderRate() {
  const since = Date.now() - 60000;
  S.comments = S.comments.filter((t) => t > since);
  $('#cpm').textContent = S.comments.length;
}

// -- shelf -----------------------------------------------------------------------------------

// "+mm:ss" -> {offset_seconds}; "hh:mm[:ss]" (today, local time) -> {at}; else null.
export function parseWhen(text) {
  const t = text.trim();
  let m = /^\+(\d{1,3}):([0-5]\d)$/.exec(t);
  if (m) return { offset_seconds: Number(m[1]) * 60 + Number(m[2]) };
  m = /^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(t);
  if (!m) return null;
  const d = new Date();
  d.setHours(Number(m[1]), Number(m[2]), Number(m[3] || 0), 0);
  return { at: d.toISOString() };
}
window.__parseWhen = parseWhen;

function renderShelf(goods) {
  const shelf = $('#shelf');
  shelf.replaceChildren();
  if (!goods.length) shelf.append(el('li', {}, 'No goods in this room yet: attach some below.'));
  offerGoodsChoices(goods);
  for (const g of goods) {
    const whenId = 'when-' + g.id;
    shelf.append(el('li', { class: 'shelf-item', 'data-goods': g.id },
      el('span', {}, el('strong', {}, g.title), ` · ${yuan(g.price_fen)} · stock ${g.stock}`),
      el('div', { class: 'row' },
        el('button', { type: 'button', onclick: () => pushNow(g) }, 'Push now'),
        el('label', { for: whenId, class: 'sr' }, 'Schedule at'),
        el('input', { id: whenId, placeholder: '+05:00 or 20:30', 'aria-label': `Schedule time for ${g.title}` }),
        el('button', { type: 'button', class: 'secondary', onclick: () => schedule(g, $('#' + whenId)) }, 'Schedule'))));
  }
}

function pushNow(g) {
  return guarded(() => call('POST', `/api/rooms/${S.room.id}/push`,
    { goods_id: g.id, idempotency_key: randomKey() }), `Pushed “${g.title}”.`);
}

async function schedule(g, input) {
  const when = parseWhen(input.value);
  if (!when) { notify('Enter a clock time like 20:30 or 20:30:15, or +mm:ss after the start.'); input.focus(); return; }
  const body = Object.assign({ goods_id: g.id, idempotency_key: randomKey() }, when);
  const made = await guarded(() => call('POST', `/api/rooms/${S.room.id}/schedules`, body), `Scheduled “${g.title}”.`);
  if (made) { input.value = ''; refreshTimeline(); }
}

async function loadCatalogue() {
  const page = await guarded(() => call('GET', '/api/goods?limit=50'));
  if (!page) return;
  const mine = (page.items || []).filter((g) => g.host_id === S.host.id);
  const box = $('#catalogue');
  box.replaceChildren();
  for (const g of mine) {
    const id = 'cat-' + g.id;
    box.append(el('div', { class: 'row' }, el('input', { type: 'checkbox', id, value: g.id }),
      el('label', { for: id }, `${g.title} (${yuan(g.price_fen)})`)));
  }
  if (!mine.length) box.append(el('p', { class: 'hint' }, 'You have no goods on sale.'));
}

$('#attach-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const ids = Array.from(document.querySelectorAll('#catalogue input:checked'), (i) => Number(i.value));
  if (!ids.length) { notify('Select goods to attach.'); return; }
  const res = await guarded(() => call('POST', `/api/rooms/${S.room.id}/goods`, { goods_ids: ids }), 'Goods attached.');
  if (res) { S.room.goods = res.goods; renderShelf(res.goods); ev.target.reset(); }
});

// -- flash sales and group offers on the shelf -------------------------------------------------

const OFFER_FRAMES = ['flash_sale_push', 'group_offer_push', 'flash_sale_stock', 'group_progress'];

// What the live panel says is shown: goods, a flash sale with its stock, a group offer.
function bubbleTitle(b) {
  if (!b) return 'none';
  if (b.goods) return b.goods.title;
  if (b.sale) return `Flash sale: ${b.sale.goods.title} (${b.sale.stock_left} left)`;
  if (b.offer) return `Group: ${b.offer.goods.title} (${groupText(b.offer)})`;
  return 'none';
}

function groupText(o) {
  return o.group ? `${o.group.joined} joined, ${o.group.to_go} to go` : `no open group, ${o.size} per group`;
}

function startOffers() {
  refreshOffers();
  S.timers.push(setInterval(refreshOffers, 3000));
}

function offerGoodsChoices(goods) {
  $('#offer-goods').replaceChildren(...goods.map((g) => el('option', { value: g.id }, `${g.title} (${yuan(g.price_fen)})`)));
}

async function refreshOffers() {
  if (!S.room) return;
  const q = '?room_id=' + S.room.id;
  let sales, groups;
  try {
    [sales, groups] = await Promise.all([call('GET', '/api/host/flash-sales' + q), call('GET', '/api/host/group-offers' + q)]);
  } catch (e) { return; }
  const list = $('#offer-list');
  const key = JSON.stringify([sales.items, groups.items]);
  if (list.dataset.key === key) return; // unchanged: keep the buttons (and focus) as they are
  list.dataset.key = key;
  list.replaceChildren();
  for (const s of sales.items) {
    const ended = Date.parse(s.ends_at) <= Date.now();
    list.append(el('li', { 'data-sale': s.id },
      el('span', {}, `Flash sale: ${s.goods.title} · ${yuan(s.sale_price_fen)} · ${s.stock_left}/${s.stock} left${ended ? ' · ended' : ''} `),
      el('button', { type: 'button', disabled: ended, onclick: () => pushOffer('flash-sales', s.id, s.goods.title) },
        'Push flash sale')));
  }
  for (const o of groups.items) {
    list.append(el('li', { 'data-offer': o.id },
      el('span', {}, `Group offer: ${o.goods.title} · ${yuan(o.group_price_fen)} × ${o.size} · ${groupText(o)} `),
      el('button', { type: 'button', onclick: () => pushOffer('group-offers', o.id, o.goods.title) }, 'Push group offer')));
  }
  if (!list.children.length) list.append(el('li', { class: 'hint' }, 'None yet: create one below.'));
}

function pushOffer(kind, id, title) {
  return guarded(() => call('POST', `/api/host/${kind}/${id}/push`, { room_id: S.room.id }), `Pushed “${title}”.`);
}

$('#offer-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const goods_id = Number($('#offer-goods').value);
  if (!goods_id) { notify('Attach goods to the shelf first.'); return; }
  const price = Math.round(Number($('#offer-price').value) * 100);
  const count = Number($('#offer-count').value);
  const minutes = Number($('#offer-minutes').value);
  const now = Date.now();
  const [path, body] = $('#offer-kind').value === 'flash'
    ? ['/api/host/flash-sales', { goods_id, sale_price_fen: price, stock: count,
      starts_at: new Date(now).toISOString(), ends_at: new Date(now + minutes * 60000).toISOString() }]
    : ['/api/host/group-offers', { goods_id, group_price_fen: price, size: count, fill_seconds: Math.max(60, minutes * 60) }];
  const made = await guarded(() => call('POST', path, body), 'Offer created: push it from the list.');
  if (made) refreshOffers();
});

// -- timeline --------------------------------------------------------------------------------

function titleOf(goodsId) {
  const g = S.room && S.room.goods.find((x) => x.id === goodsId);
  return g ? g.title : 'goods ' + goodsId;
}

async function refreshTimeline() {
  if (!S.room) return;
  let res;
  try { res = await call('GET', `/api/rooms/${S.room.id}/schedules`); } catch (e) { return; }
  const list = $('#timeline');
  if (document.activeElement && list.contains(document.activeElement)) return; // typing
  list.replaceChildren();
  const now = Date.now();
  for (const s of res.schedules) {
    let text;
    const item = el('li', { 'data-schedule': s.id, 'data-status': s.status });
    if (s.status === 'pending') {
      const left = s.due_at ? Math.max(0, Math.round((Date.parse(s.due_at) - now) / 1000)) : null;
      text = left === null ? `+${s.offset_seconds}s after the start` : `in ${left} s`;
      const move = el('input', { 'aria-label': `New time for ${titleOf(s.goods_id)}`, placeholder: 'new time', size: 8 });
      item.append(el('span', {}, `⏱ ${titleOf(s.goods_id)} — ${text} `),
        el('span', { class: 'row' }, move,
          el('button', { type: 'button', class: 'secondary', onclick: () => moveSchedule(s, move) }, 'Move'),
          el('button', { type: 'button', class: 'secondary', onclick: () => cancelSchedule(s) }, 'Cancel')));
    } else if (s.status === 'fired') {
      item.append(el('span', { class: s.late ? 'late' : '' },
        `✓ ${titleOf(s.goods_id)} — fired ${new Date(s.fired_at).toLocaleTimeString()}, ${s.lateness_ms} ms late`));
      attachFigures(item, S.pushFigs.get(s.id));
    } else {
      item.append(el('span', {}, `${s.status}: ${titleOf(s.goods_id)}${s.skip_reason ? ' (' + s.skip_reason + ')' : ''}`));
    }
    list.append(item);
  }
  if (!res.schedules.length) list.append(el('li', { class: 'hint' }, 'No scheduled pushes.'));
}

async function moveSchedule(s, input) {
  const when = parseWhen(input.value);
  if (!when) { notify('Enter a clock time like 20:30 or 20:30:15, or +mm:ss after the start.'); input.focus(); return; }
  try {
    await call('PATCH', `/api/rooms/${S.room.id}/schedules/${s.id}`, when);
    notify('Scheduled push moved.', true);
  } catch (e) {
    notify(e.code === 'already_fired' ? 'Too late: that push has already fired, so it cannot be moved.' : e.message);
  }
  refreshTimeline();
}

async function cancelSchedule(s) {
  try {
    await call('DELETE', `/api/rooms/${S.room.id}/schedules/${s.id}`);
    notify('Scheduled push cancelled.', true);
  } catch (e) {
    notify(e.code === 'already_fired' ? 'Too late: that push has already fired.' : e.message);
  }
  refreshTimeline();
}

// -- orders ----------------------------------------------------------------------------------

const STATUS_TEXT = { pending_payment: 'awaiting payment', paid: 'paid — to ship', shipped: 'shipped',
  completed: 'completed', cancelled: 'cancelled', refunded: 'refunded',
  refunding: 'refunding' };

async function refreshOrders() {
  if (!S.room) return;
  const status = $('#orders-status').value;
  const q = new URLSearchParams({ limit: '50', room_id: String(S.room.id) });
  if (status) q.set('state', status);
  let page;
  try { page = await call('GET', '/api/host/orders?' + q); } catch (e) { return; }
  const body = $('#orders tbody');
  if (document.activeElement && body.contains(document.activeElement)) return; // typing
  // Open after-sales requests are no order status (a filter of the list): ask for them.
  const requests = page.items.length ? await pendingRequests(call) : new Map();
  if (document.activeElement && body.contains(document.activeElement)) return; // typing
  body.replaceChildren();
  for (const o of page.items) {
    const ship = o.status === 'paid' ? (o.address ? shipForm(o) : 'waiting for the buyer’s address')
      : (o.tracking_no ? `${o.carrier} ${o.tracking_no}` : '');
    body.append(el('tr', { 'data-order': o.id, 'data-status': o.status },
      el('td', {}, '#' + o.id), el('td', {}, `${o.title} × ${o.quantity}`),
      el('td', {}, yuan(o.total_fen)), el('td', {}, STATUS_TEXT[o.status] || o.status), el('td', {}, ship),
      el('td', {}, afterSalesCell(o, requests.get(o.id), { call, guarded, refresh: refreshOrders }))));
  }
  if (!page.items.length) body.append(el('tr', {}, el('td', { colspan: 6 }, 'No orders.')));
}

function shipForm(o) {
  const carrier = el('input', { 'aria-label': `Carrier for order ${o.id}`, placeholder: 'Carrier', maxlength: 50 });
  const tracking = el('input', { 'aria-label': `Tracking number for order ${o.id}`, placeholder: 'Tracking no.', maxlength: 64 });
  return el('form', { class: 'row', onsubmit: async (ev) => {
    ev.preventDefault();
    if (!carrier.value.trim() || !tracking.value.trim()) { notify('Enter the carrier and the tracking number.'); return; }
    await guarded(() => call('POST', `/api/host/orders/${o.id}/ship`,
      { carrier: carrier.value.trim(), tracking_no: tracking.value.trim() }), `Order #${o.id} shipped.`);
    document.activeElement.blur();
    refreshOrders();
  } }, carrier, tracking, el('button', { type: 'submit' }, 'Ship'));
}

$('#orders-status').addEventListener('change', refreshOrders);

initModeration({ call, guarded, notify });

// -- start -----------------------------------------------------------------------------------

(async () => {
  const wanted = new URLSearchParams(location.search).get('room');
  try {
    signedIn(await api('GET', '/api/console/session'));
    if (wanted) openRoom(Number(wanted));
  } catch (e) {
    signedOut(e instanceof ApiError && e.status !== 401 && e.status !== 403 ? e.message : '');
  }
})();
