'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { LiveRoomClient, backoffDelay, uuid4, uuid7 } = require('../livecommerce-socket.js');

// A SocketTask the test drives: open(), msg(frame), serverClose(code), fail().
class FakeTask {
  constructor(opts) {
    this.url = opts.url;
    this.header = opts.header;
    this.sent = [];
    this.closedWith = null;
    this.h = {};
  }
  onOpen(fn) { this.h.open = fn; }
  onMessage(fn) { this.h.message = fn; }
  onClose(fn) { this.h.close = fn; }
  onError(fn) { this.h.error = fn; }
  send({ data }) { this.sent.push(JSON.parse(data)); }
  close(opts) { this.closedWith = opts; }
  open() { this.h.open({}); }
  msg(frame) { this.h.message({ data: JSON.stringify(frame) }); }
  serverClose(code, reason) { this.h.close({ code, reason: reason || '' }); }
  fail() { this.h.error({ errMsg: 'network down' }); }
}

// Fake clock: timers run only when the test advances time.
function fakeClock() {
  const c = { t: 1000, timers: new Map(), nextId: 1 };
  c.now = () => c.t;
  c.setTimeout = (fn, ms) => { const id = c.nextId++; c.timers.set(id, { at: c.t + ms, fn }); return id; };
  c.clearTimeout = (id) => { c.timers.delete(id); };
  c.advance = (ms) => {
    const end = c.t + ms;
    for (;;) {
      let best = null;
      for (const [id, tm] of c.timers) if (tm.at <= end && (!best || tm.at < best[1].at)) best = [id, tm];
      if (!best) break;
      c.timers.delete(best[0]);
      c.t = best[1].at;
      best[1].fn();
    }
    c.t = end;
  };
  return c;
}

function setup(extra) {
  const clock = fakeClock();
  const tasks = [];
  const wx = { connectSocket: (opts) => { const t = new FakeTask(opts); tasks.push(t); return t; } };
  const client = new LiveRoomClient(Object.assign({
    baseUrl: 'wss://live.example.com/', roomId: 7, token: 'tok en', wx,
    random: () => 0.5, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
    heartbeatMs: 15000, maxBackoffMs: 30000,
  }, extra || {}));
  const events = [];
  ['welcome', 'resync', 'goods_push', 'goods_withdraw', 'room_state', 'viewer_count', 'likes', 'comment',
    'error', 'open', 'close', 'reconnecting', 'ended', 'unauthorized', 'frame']
    .forEach((e) => client.on(e, (p) => events.push([e, p])));
  const last = () => tasks[tasks.length - 1];
  const named = (name) => events.filter((e) => e[0] === name).map((e) => e[1]);
  return { clock, tasks, wx, client, events, last, named };
}

const welcome = (o) => Object.assign({
  type: 'welcome', seq: 41, epoch: 'ep1', room: { id: 7, state: 'live', stream_url: 'rtmp://x' },
  bubble: null, viewers: 10, likes: 100, resumed: false, missed: 0,
}, o || {});

function connected(extra) {
  const s = setup(extra);
  s.client.connect();
  s.last().open();
  s.last().msg(welcome());
  return s;
}

test('backoffDelay: full jitter over a capped exponential', () => {
  assert.strictEqual(backoffDelay(0, 500, 30000, () => 1), 500);
  assert.strictEqual(backoffDelay(3, 500, 30000, () => 0.5), 2000);
  assert.strictEqual(backoffDelay(10, 500, 30000, () => 0.5), 15000); // capped at max
  assert.strictEqual(backoffDelay(100, 500, 30000, () => 0.999), 29970);
  assert.strictEqual(backoffDelay(5, 500, 30000, () => 0), 0);
  assert.strictEqual(backoffDelay(1, undefined, undefined, () => 1), 1000); // defaults
});

test('first URL has room and token only; resume params appear after a welcome', () => {
  const s = setup({ header: { 'X-A': '1' } });
  s.client.connect();
  assert.strictEqual(s.last().url, 'wss://live.example.com/ws?room=7&token=tok%20en');
  assert.deepStrictEqual(s.last().header, { 'X-A': '1' });
  s.last().open();
  s.last().msg(welcome({ epoch: 'e/1' }));
  s.last().msg({ seq: 42, ts: 1, type: 'likes', delta: 5, total: 105 });
  s.last().serverClose(1006);
  s.clock.advance(1000);
  assert.strictEqual(s.tasks.length, 2);
  assert.strictEqual(s.last().url, 'wss://live.example.com/ws?room=7&token=tok%20en&last_seq=42&epoch=e%2F1');
});

test('no resume params if the socket closed before any welcome', () => {
  const s = setup();
  s.client.connect();
  s.last().serverClose(1006);
  s.clock.advance(1000);
  assert.strictEqual(s.last().url, 'wss://live.example.com/ws?room=7&token=tok%20en');
});

test('frames with seq <= last seen are dropped; state follows frames', () => {
  const s = connected();
  const t = s.last();
  t.msg({ seq: 42, ts: 1, type: 'viewer_count', count: 11 });
  t.msg({ seq: 42, ts: 1, type: 'viewer_count', count: 99 }); // duplicate
  t.msg({ seq: 40, ts: 1, type: 'comment', user: { kind: 'user', id: '1' }, text: 'old' }); // before welcome's S
  t.msg({ seq: 43, ts: 1, type: 'goods_push', push_id: 'p', goods: { id: 3, price_fen: 12900 }, show_seconds: 30 });
  t.msg({ seq: 44, ts: 1, type: 'likes', delta: 3, total: 103 });
  assert.deepStrictEqual(s.named('viewer_count').map((f) => f.count), [11]);
  assert.strictEqual(s.named('comment').length, 0);
  assert.strictEqual(s.client.lastSeq, 44);
  assert.strictEqual(s.client.state.viewers, 11);
  assert.strictEqual(s.client.state.likes, 103);
  assert.strictEqual(s.client.state.bubble.goods.id, 3);
  t.msg({ seq: 45, ts: 1, type: 'goods_withdraw' });
  assert.strictEqual(s.client.state.bubble, null);
  // pong/error carry no seq and are never dropped
  t.msg({ type: 'error', code: 'rate_limited', message: 'slow down' });
  assert.strictEqual(s.named('error')[0].code, 'rate_limited');
  assert.strictEqual(s.named('frame').length, 6);
});

test('resumed welcome keeps last_seq so the missed frames that follow are not dropped', () => {
  const s = connected();
  s.last().msg({ seq: 42, ts: 1, type: 'likes', delta: 1, total: 101 });
  s.last().serverClose(1006);
  s.clock.advance(1000);
  const t = s.last();
  assert.match(t.url, /last_seq=42&epoch=ep1$/);
  t.open();
  // The server's welcome carries the current seq S=45, then replays (42, 45].
  t.msg(welcome({ seq: 45, resumed: true, missed: 3, likes: 130 }));
  t.msg({ seq: 43, ts: 1, type: 'comment', user: { kind: 'user', id: '2' }, text: 'a' });
  t.msg({ seq: 44, ts: 1, type: 'comment', user: { kind: 'user', id: '2' }, text: 'b' });
  t.msg({ seq: 45, ts: 1, type: 'likes', delta: 29, total: 130 });
  t.msg({ seq: 45, ts: 1, type: 'likes', delta: 29, total: 130 }); // duplicate
  assert.deepStrictEqual(s.named('comment').map((f) => f.text), ['a', 'b']);
  assert.strictEqual(s.named('likes').length, 2);
  assert.strictEqual(s.client.lastSeq, 45);
});

test('resync replaces state, epoch and seq, even when seq restarts lower', () => {
  const s = connected();
  s.last().msg({ seq: 42, ts: 1, type: 'goods_push', push_id: 'p', goods: { id: 3 }, show_seconds: 30 });
  s.last().serverClose(1012);
  s.clock.advance(0);
  const t = s.last();
  assert.match(t.url, /last_seq=42&epoch=ep1$/);
  t.open();
  t.msg(welcome({ type: 'resync', seq: 5, epoch: 'ep2', viewers: 3, likes: 7 }));
  assert.strictEqual(s.named('resync').length, 1);
  assert.strictEqual(s.client.epoch, 'ep2');
  assert.strictEqual(s.client.lastSeq, 5);
  assert.deepStrictEqual(s.client.state, { room: welcome().room, bubble: null, viewers: 3, likes: 7 });
  t.msg({ seq: 6, ts: 1, type: 'viewer_count', count: 4 }); // not dropped although 6 < 42
  assert.strictEqual(s.client.state.viewers, 4);
  t.serverClose(1006);
  s.clock.advance(1000);
  assert.match(s.last().url, /last_seq=6&epoch=ep2$/);
});

test('in-band resync on an open socket (Redis lost or restored data) restarts seq there', () => {
  const s = connected();
  const t = s.last();
  t.msg({ seq: 42, ts: 1, type: 'goods_push', push_id: 'p', goods: { id: 3 }, show_seconds: 30 });
  t.msg(welcome({ type: 'resync', seq: 40, epoch: 'ep2', viewers: 9, likes: 1 }));
  assert.strictEqual(s.named('resync').length, 1);
  assert.strictEqual(s.client.epoch, 'ep2');
  assert.strictEqual(s.client.lastSeq, 40);
  assert.strictEqual(s.client.state.bubble, null);
  t.msg({ seq: 41, ts: 1, type: 'viewer_count', count: 10 }); // new stream: not a duplicate
  assert.strictEqual(s.client.state.viewers, 10);
  assert.strictEqual(s.tasks.length, 1); // no reconnect needed
});

for (const code of [1012, 4408]) {
  test(`close ${code} after a welcome reconnects immediately`, () => {
    const s = connected();
    s.last().serverClose(code, 'bye');
    assert.deepStrictEqual(s.named('reconnecting')[0], { attempt: 1, delay: 0, code });
    assert.strictEqual(s.named('close')[0].willReconnect, true);
    assert.strictEqual(s.tasks.length, 1);
    s.clock.advance(0);
    assert.strictEqual(s.tasks.length, 2);
  });
}

test('1012 at handshake (no welcome) backs off instead of looping', () => {
  const s = setup();
  s.client.connect();
  s.last().open();
  s.last().msg({ type: 'error', code: 'unavailable', message: 'node not ready' });
  s.last().serverClose(1012);
  assert.strictEqual(s.named('reconnecting')[0].delay, 250); // 0.5 * 500 * 2^0
});

test('other closes back off exponentially; a welcome resets the attempt counter', () => {
  const s = setup();
  s.client.connect();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    s.last().serverClose(1006);
    delays.push(s.named('reconnecting')[i].delay);
    s.clock.advance(delays[i]);
  }
  assert.deepStrictEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
  s.last().open();
  s.last().msg(welcome());
  assert.strictEqual(s.client.attempt, 0);
  s.last().serverClose(4429);
  assert.strictEqual(s.named('reconnecting').pop().delay, 250);
});

test('4401 emits unauthorized and never reconnects; setToken + connect() recovers', () => {
  const s = setup();
  s.client.connect();
  s.last().open();
  s.last().msg({ type: 'error', code: 'token_expired', message: 'expired' });
  s.last().serverClose(4401, 'expired');
  assert.strictEqual(s.named('unauthorized')[0].error.code, 'token_expired');
  assert.strictEqual(s.named('close')[0].willReconnect, false);
  s.clock.advance(600000);
  assert.strictEqual(s.tasks.length, 1);
  assert.strictEqual(s.named('reconnecting').length, 0);
  s.client.setToken('new');
  s.client.connect();
  assert.strictEqual(s.last().url, 'wss://live.example.com/ws?room=7&token=new');
});

for (const code of [4400, 4404]) {
  test(`${code} stops without reconnecting`, () => {
    const s = connected();
    s.last().serverClose(code);
    s.clock.advance(600000);
    assert.strictEqual(s.tasks.length, 1);
    assert.deepStrictEqual(s.named('close')[0], { code, reason: '', willReconnect: false });
    assert.strictEqual(s.named('unauthorized').length + s.named('ended').length, 0);
  });
}

test('4410 emits ended and never reconnects', () => {
  const s = connected();
  s.last().serverClose(4410, 'the live has ended');
  s.clock.advance(600000);
  assert.strictEqual(s.tasks.length, 1);
  assert.deepStrictEqual(s.named('ended'), [{ code: 4410, reason: 'the live has ended' }]);
});

test('room_state ended on a live socket emits ended and closes for good', () => {
  const s = connected();
  s.last().msg({ seq: 42, ts: 1, type: 'room_state', state: 'ended', room: { id: 7, state: 'ended' } });
  assert.strictEqual(s.named('room_state').length, 1);
  assert.strictEqual(s.named('ended').length, 1);
  assert.ok(s.tasks[0].closedWith);
  s.clock.advance(600000);
  assert.strictEqual(s.tasks.length, 1);
});

test('heartbeat: ping every heartbeatMs, a missing pong closes and reconnects', () => {
  const s = connected();
  const t = s.last();
  s.clock.advance(15000);
  assert.deepStrictEqual(t.sent, [{ type: 'ping', t: 16000 }]);
  t.msg({ type: 'pong', t: 16000 });
  s.clock.advance(15000);
  assert.deepStrictEqual(t.sent[1], { type: 'ping', t: 31000 });
  assert.strictEqual(t.closedWith, null);
  s.clock.advance(15000); // no pong for the second ping
  assert.ok(t.closedWith, 'dead socket closed');
  assert.strictEqual(s.named('close')[0].reason, 'heartbeat timeout');
  assert.ok(s.named('reconnecting')[0].delay > 0);
  t.serverClose(1006); // the late onClose of the abandoned socket is ignored
  assert.strictEqual(s.named('close').length, 1);
  s.clock.advance(1000);
  assert.strictEqual(s.tasks.length, 2);
  assert.match(s.last().url, /last_seq=41&epoch=ep1$/);
});

test('a socket that never opens is abandoned after heartbeatMs', () => {
  const s = setup();
  s.client.connect();
  s.clock.advance(15000);
  assert.ok(s.tasks[0].closedWith);
  assert.strictEqual(s.named('reconnecting').length, 1);
});

test('onError is treated as a dead socket (once, even if onClose follows)', () => {
  const s = connected();
  s.last().fail();
  s.last().serverClose(1006);
  assert.strictEqual(s.named('error')[0].code, 'socket_error');
  assert.strictEqual(s.named('reconnecting').length, 1);
});

test('close() stops heartbeat, pending reconnects and future reconnects', () => {
  const s = connected();
  s.client.close();
  assert.deepStrictEqual(s.tasks[0].closedWith, { code: 1000, reason: 'client closed' });
  s.clock.advance(600000);
  assert.strictEqual(s.tasks[0].sent.length, 0); // no pings after close
  assert.strictEqual(s.tasks.length, 1);
  assert.strictEqual(s.clock.timers.size, 0);

  const s2 = connected();
  s2.last().serverClose(1006);
  assert.strictEqual(s2.named('reconnecting').length, 1);
  s2.client.close(); // cancels the pending reconnect
  s2.clock.advance(600000);
  assert.strictEqual(s2.tasks.length, 1);
  assert.strictEqual(s2.client.like(1), false); // nothing to send on
});

test('like and comment send the right JSON and validate input', () => {
  const s = connected();
  const t = s.last();
  assert.strictEqual(s.client.like(3), true);
  s.client.like();
  s.client.like(50);
  s.client.comment('  好看\n  真的!  ');
  assert.deepStrictEqual(t.sent, [
    { type: 'like', count: 3 }, { type: 'like', count: 1 }, { type: 'like', count: 50 },
    { type: 'comment', text: '好看 真的!' },
  ]);
  for (const bad of [0, 51, 1.5, -1, '2', NaN, null, true]) {
    assert.throws(() => s.client.like(bad), RangeError, String(bad));
  }
  for (const bad of ['', '   \n', null, 42, undefined]) {
    assert.throws(() => s.client.comment(bad), TypeError, String(bad));
  }
  assert.throws(() => s.client.comment('x'.repeat(201)), RangeError);
  s.client.comment('😀'.repeat(200)); // counted in code points, like the server
  assert.strictEqual(t.sent.length, 5);
});

test('like/comment before the socket opens return false', () => {
  const s = setup();
  s.client.connect();
  assert.strictEqual(s.client.like(1), false);
  assert.strictEqual(s.client.comment('hi'), false);
});

test('connect() twice does not open a second socket; on() rejects unknown events', () => {
  const s = setup();
  s.client.connect();
  s.client.connect();
  assert.strictEqual(s.tasks.length, 1);
  assert.throws(() => s.client.on('nope', () => {}), /unknown event/);
});

test('uuid7: RFC 9562 v7 layout, the time in its first 48 bits, ids of later ms sort later', () => {
  const ms = 1764547200123; // 2025-12-01T00:00:00.123Z
  const ids = [];
  for (let i = 0; i < 1000; i++) ids.push(uuid7(ms + Math.floor(i / 10)));
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.strictEqual(parseInt(ids[0].replace(/-/g, '').slice(0, 12), 16), ms);
  assert.strictEqual(new Set(ids).size, 1000);
  for (let i = 10; i < ids.length; i += 10) assert.ok(ids[i - 10] < ids[i]);
  // The random bits come from `random`: all zeros and all ones still give the variant 10xx.
  assert.strictEqual(uuid7(0, () => 0), '00000000-0000-7000-8000-000000000000');
  assert.strictEqual(uuid7(2 ** 48 - 1, () => 0.99999), 'ffffffff-ffff-7fff-bfff-ffffffffffff');
  assert.match(uuid4(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('uuid7: any ms gives a valid v7 id (wrapped into 48 bits; not a finite number: 0)', () => {
  const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const time = (id) => id.replace(/-/g, '').slice(0, 12);
  for (const ms of [-1, -0.5, -(2 ** 60), 1.5, 2 ** 48, 2 ** 53, 1e21, NaN, Infinity, -Infinity,
    undefined, 'abc']) {
    assert.match(uuid7(ms), V7, String(ms));
  }
  assert.strictEqual(time(uuid7(-1)), 'ffffffffffff');
  assert.strictEqual(time(uuid7(1.5)), '000000000001');
  assert.strictEqual(time(uuid7(2 ** 48 + 5)), '000000000005');
  assert.strictEqual(time(uuid7(NaN)), '000000000000');
  assert.strictEqual(time(uuid7(Infinity)), '000000000000');
});

test('track: ids and ts added, offset from the welcome server_time, resent after a reconnect', () => {
  const s = setup();
  s.client.connect();
  s.last().open();
  s.last().msg(welcome({ server_time: s.clock.now() + 5000 })); // our clock is 5 s slow
  assert.strictEqual(s.client.clockOffsetMs, 5000);
  const ref = s.client.track([{ type: 'bubble_click', goods_id: 3, push_seq: 42 }]);
  const frame = s.last().sent.find((f) => f.type === 'track');
  assert.strictEqual(frame.ref, ref);
  assert.strictEqual(frame.offset_ms, 5000);
  const ev = frame.events[0];
  assert.match(ev.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.strictEqual(ev.ts, s.clock.now());
  // A v7 id: its first 48 bits are the event's ts in Unix milliseconds.
  assert.strictEqual(parseInt(ev.id.replace(/-/g, '').slice(0, 12), 16), ev.ts);
  assert.deepStrictEqual([ev.type, ev.room_id, ev.goods_id, ev.push_seq], ['bubble_click', 7, 3, 42]);
  // The socket drops before `tracked`: the same events (same ids) go again after the welcome.
  s.last().serverClose(1012, 'restart');
  s.clock.advance(1);
  s.last().open();
  s.last().msg(welcome({ seq: 50, resumed: true, server_time: s.clock.now() + 5000 }));
  const again = s.last().sent.find((f) => f.type === 'track');
  assert.deepStrictEqual(again.events, frame.events);
  // Once answered, nothing is resent.
  const answered = [];
  s.client.on('tracked', (f) => answered.push(f));
  s.last().msg({ type: 'tracked', ref, accepted: 1, stored: 0, duplicates: 1, clamped: 0, rejected: [] });
  assert.strictEqual(answered.length, 1);
  s.last().serverClose(1012, 'restart');
  s.clock.advance(1);
  s.last().open();
  s.last().msg(welcome({ seq: 51, resumed: true }));
  assert.strictEqual(s.last().sent.filter((f) => f.type === 'track').length, 0);
  assert.throws(() => s.client.track([]), RangeError);
});

test('track: an `unavailable` answer resends the same frame later on the same socket', () => {
  const s = setup();
  s.client.connect();
  s.last().open();
  s.last().msg(welcome({}));
  const ref = s.client.track([{ type: 'share' }]);
  const first = s.last().sent.filter((f) => f.type === 'track');
  assert.strictEqual(first.length, 1);
  s.last().msg({ type: 'error', code: 'unavailable', message: 'retry later', ref });
  s.clock.advance(4001); // at most twice trackRetryMs (2 s)
  const sent = s.last().sent.filter((f) => f.type === 'track');
  assert.strictEqual(sent.length, 2);
  assert.deepStrictEqual(sent[1].events, first[0].events);
  // Answered: an `unavailable` for an answered ref (or another error) resends nothing.
  s.last().msg({ type: 'tracked', ref, accepted: 1, stored: 1, duplicates: 0, clamped: 0, rejected: [] });
  s.last().msg({ type: 'error', code: 'unavailable', message: 'retry later', ref });
  s.last().msg({ type: 'error', code: 'invalid', message: 'events must be a list', ref: 'nope' });
  s.clock.advance(5000);
  assert.strictEqual(s.last().sent.filter((f) => f.type === 'track').length, 2);
});

test('flash sale and group offer bubbles: pushed, then their live numbers follow', () => {
  const s = connected();
  const t = s.last();
  const seen = [];
  s.client.on('flash_sale_stock', (f) => seen.push(f.stock_left));
  t.msg({ seq: 42, ts: 1, type: 'flash_sale_push', push_id: 'p', sale: { id: 5, stock_left: 50 }, show_seconds: 60 });
  t.msg({ seq: 43, ts: 1, type: 'flash_sale_stock', sale_id: 5, stock_left: 12 });
  t.msg({ seq: 43, ts: 1, type: 'flash_sale_stock', sale_id: 5, stock_left: 99 }); // duplicate
  t.msg({ seq: 44, ts: 1, type: 'flash_sale_stock', sale_id: 6, stock_left: 1 }); // another sale
  assert.strictEqual(s.client.state.bubble.sale.stock_left, 12);
  assert.deepStrictEqual(seen, [12, 1]);
  t.msg({ seq: 45, ts: 1, type: 'group_offer_push', push_id: 'q', offer: { id: 3, group: null }, show_seconds: 60 });
  assert.strictEqual(s.client.state.bubble.offer.id, 3);
  t.msg({ seq: 46, ts: 1, type: 'group_progress', offer_id: 3, group: { id: 9, joined: 2, to_go: 1 } });
  assert.strictEqual(s.client.state.bubble.offer.group.to_go, 1);
  assert.strictEqual(s.client.lastSeq, 46);
});
