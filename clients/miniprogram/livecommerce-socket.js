'use strict';
// Live-room WebSocket client for WeChat mini-programs. Speaks docs/protocol.md over
// wx.connectSocket: resume with last_seq/epoch, backoff with full jitter, app-level heartbeat.
// No dependencies; ES2017 so the mini-program toolchain accepts it as-is.

var EVENTS = ['welcome', 'resync', 'goods_push', 'goods_withdraw', 'room_state', 'viewer_count',
  'likes', 'comment', 'comment_delete', 'error', 'open', 'close', 'reconnecting', 'ended', 'unauthorized', 'frame',
  'tracked', 'flash_sale_push', 'flash_sale_stock', 'group_offer_push', 'group_progress'];
// Frames a room publishes (they carry seq); everything else is per-connection.
var SEQUENCED = { goods_push: 1, goods_withdraw: 1, room_state: 1, viewer_count: 1, likes: 1, comment: 1,
  comment_delete: 1, flash_sale_push: 1, flash_sale_stock: 1, group_offer_push: 1, group_progress: 1 };
var STOP_CODES = { 4400: 1, 4401: 1, 4404: 1, 4410: 1 }; // retrying cannot help
var NOW_CODES = { 1012: 1, 4408: 1 }; // node shutting down / evicted as slow: resume right away

// A random (v4) UUID (RFC 9562 §5.4).
function uuid4(random) {
  random = random || Math.random;
  var h = '';
  for (var i = 0; i < 32; i++) {
    var n = Math.floor(random() * 16);
    if (i === 12) n = 4;
    if (i === 16) n = (n & 3) | 8;
    h += n.toString(16);
  }
  return dashed(h);
}

// A time-ordered (v7) UUID (RFC 9562 §5.7): the client event id the server deduplicates on
// (docs/protocol.md, track). 48 bits of Unix milliseconds `ms`, the version, 74 random bits,
// the variant. Ids made close in time sort close together, so PostgreSQL's dedup index takes
// them near its right edge instead of on random pages (bench/README.md, "Analytics ingestion").
// `ms` is taken modulo 2^48 (a negative one from before 1970 too), floored; one that is not a
// finite number (NaN, Infinity, undefined from a broken clock) counts as 0: the id is a valid
// UUID all the same, which the server accepts.
var MS_48 = 281474976710656; // 2^48
function uuid7(ms, random) {
  random = random || Math.random;
  var t = Math.floor(Number(ms));
  t = isFinite(t) ? ((t % MS_48) + MS_48) % MS_48 : 0;
  var h = t.toString(16).padStart(12, '0') + '7';
  for (var i = 13; i < 32; i++) {
    var n = Math.floor(random() * 16);
    if (i === 16) n = (n & 3) | 8;
    h += n.toString(16);
  }
  return dashed(h);
}

function dashed(h) {
  return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
}

// Full jitter: uniform in [0, min(max, base * 2^attempt)) so a node restart does not make
// thousands of phones reconnect in lockstep.
function backoffDelay(attempt, base, max, random) {
  base = base === undefined ? 500 : base;
  max = max === undefined ? 30000 : max;
  random = random || Math.random;
  return random() * Math.min(max, base * Math.pow(2, attempt));
}

class LiveRoomClient {
  constructor(opts) {
    this.baseUrl = String(opts.baseUrl).replace(/\/+$/, '');
    this.roomId = opts.roomId;
    this.token = opts.token;
    this.header = opts.header || {};
    /* global wx */
    this.wx = opts.wx || (typeof wx !== 'undefined' ? wx : null);
    this.random = opts.random || Math.random;
    this.now = opts.now || Date.now;
    this._setTimeout = opts.setTimeout || setTimeout;
    this._clearTimeout = opts.clearTimeout || clearTimeout;
    this.heartbeatMs = opts.heartbeatMs || 15000;
    this.backoffBaseMs = opts.backoffBaseMs || 500;
    this.maxBackoffMs = opts.maxBackoffMs || 30000;
    this.likeMax = opts.likeMax || 50; // server default rooms.like_max_per_message
    this.commentMaxChars = opts.commentMaxChars || 200;
    this.epoch = null; // from welcome/resync; with lastSeq it is what lets us resume
    this.lastSeq = null;
    this.state = { room: null, bubble: null, viewers: 0, likes: 0 };
    this.attempt = 0;
    this._handlers = {};
    this._task = null;
    this._open = false;
    this._welcomed = false; // on the current socket
    this._stopped = true;
    this._reconnectTimer = null;
    this._beatTimer = null;
    this._awaitingPong = false;
    this._lastError = null;
    // Analytics: server clock minus ours (ms), measured at each welcome from its server_time;
    // track frames not yet answered by `tracked`, resent (same ids: stored once) after a resume.
    this.clockOffsetMs = 0;
    this.trackMax = opts.trackMax || 100;
    this.trackRetryMs = opts.trackRetryMs || 2000; // after `unavailable`: 1..2 times this
    this._tracking = {}; // ref -> events
    this._trackSeq = 0;
  }

  on(event, fn) {
    if (EVENTS.indexOf(event) < 0) throw new Error('unknown event: ' + event);
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    return this;
  }

  _emit(event, payload) {
    (this._handlers[event] || []).slice().forEach(function (fn) { fn(payload); });
  }

  url() {
    var u = this.baseUrl + '/ws?room=' + encodeURIComponent(this.roomId) +
      '&token=' + encodeURIComponent(this.token);
    if (this.lastSeq !== null && this.epoch !== null) {
      u += '&last_seq=' + this.lastSeq + '&epoch=' + encodeURIComponent(this.epoch);
    }
    return u;
  }

  setToken(token) { this.token = token; } // e.g. after 'unauthorized', then connect() again

  connect() {
    this._stopped = false;
    if (this._task || this._reconnectTimer) return; // already connected or about to be
    var self = this;
    var task = this.wx.connectSocket({ url: this.url(), header: this.header });
    this._task = task;
    this._open = false;
    this._welcomed = false;
    this._awaitingPong = false;
    this._lastError = null;
    // Events of a socket we already gave up on must not touch the current one.
    var mine = function (fn) { return function (res) { if (self._task === task) fn.call(self, res || {}); }; };
    task.onOpen(mine(function () { this._open = true; this._emit('open', {}); }));
    task.onMessage(mine(function (res) { this._onText(res.data); }));
    task.onClose(mine(function (res) { this._down(res.code, res.reason || ''); }));
    task.onError(mine(function (res) {
      this._emit('error', { type: 'error', code: 'socket_error', message: res.errMsg || '' });
      this._down(1006, 'socket error');
    }));
    this._scheduleBeat(); // also bounds how long the socket may take to open
  }

  close() {
    this._stopped = true;
    this._clearTimer('_reconnectTimer');
    this._drop(1000, 'client closed');
  }

  like(count) {
    if (count === undefined) count = 1;
    if (typeof count !== 'number' || count % 1 !== 0 || count < 1 || count > this.likeMax) {
      throw new RangeError('like count must be an integer 1..' + this.likeMax);
    }
    return this._send({ type: 'like', count: count });
  }

  comment(text) {
    // The server strips control characters and folds whitespace; we only pre-check.
    var t = typeof text === 'string' ? text.replace(/\s+/g, ' ').trim() : '';
    if (!t) throw new TypeError('comment text must be a non-empty string');
    if (Array.from(t).length > this.commentMaxChars) {
      throw new RangeError('comment is longer than ' + this.commentMaxChars + ' characters');
    }
    return this._send({ type: 'comment', text: t });
  }

  // Record analytics events over this socket (no HTTP request per event). Each event is
  // { type, room_id?, goods_id?, push_seq?, page?, props?, variants? }; id and ts are added.
  // Returns the frame's ref; the 'tracked' event reports what the server stored.
  track(events) {
    if (!Array.isArray(events) || events.length < 1 || events.length > this.trackMax) {
      throw new RangeError('track takes 1..' + this.trackMax + ' events');
    }
    var self = this;
    var stamped = events.map(function (e) {
      var ts = self.now();
      return Object.assign({ id: uuid7(ts, self.random), ts: ts, room_id: self.roomId }, e);
    });
    var ref = 't' + (++this._trackSeq);
    this._tracking[ref] = stamped;
    this._sendTrack(ref);
    return ref;
  }

  _retryTrack(ref) {
    var self = this;
    var wait = this.trackRetryMs + Math.floor(this.random() * this.trackRetryMs);
    this._setTimeout(function () { if (self._tracking[ref]) self._sendTrack(ref); }, wait);
  }

  _sendTrack(ref) {
    return this._send({ type: 'track', ref: ref, offset_ms: this.clockOffsetMs, events: this._tracking[ref] });
  }

  _send(obj) {
    if (!this._task || !this._open) return false;
    this._task.send({ data: JSON.stringify(obj) });
    return true;
  }

  _onText(data) {
    if (typeof data !== 'string') return; // the server only sends text frames
    var f;
    try { f = JSON.parse(data); } catch (e) { return; }
    if (!f || typeof f.type !== 'string') return;
    if (SEQUENCED[f.type] && typeof f.seq === 'number') {
      if (this.lastSeq !== null && f.seq <= this.lastSeq) return; // duplicate: cheap insurance
      this.lastSeq = f.seq;
    }
    var s = this.state;
    switch (f.type) {
      case 'welcome':
      case 'resync':
        this.epoch = f.epoch;
        // A resumed welcome carries the room's *current* seq S and is followed by the missed
        // frames (last_seq, S]: keep our lastSeq so those are not dropped as duplicates.
        // A fresh welcome or a resync is the full state at S (seq may restart on a new epoch).
        if (f.type === 'resync' || !f.resumed || this.lastSeq === null) this.lastSeq = f.seq;
        this.state = { room: f.room, bubble: f.bubble || null, viewers: f.viewers, likes: f.likes };
        this._welcomed = true;
        this.attempt = 0;
        if (typeof f.server_time === 'number') this.clockOffsetMs = Math.round(f.server_time - this.now());
        // Unanswered track frames go again: their event ids make a repeat harmless.
        for (var ref in this._tracking) this._sendTrack(ref);
        break;
      case 'tracked': delete this._tracking[f.ref]; break;
      case 'goods_push': s.bubble = f; break;
      case 'goods_withdraw': s.bubble = null; break;
      // Flash sales and group offers are bubbles too; their live numbers update the bubble.
      case 'flash_sale_push': case 'group_offer_push': s.bubble = f; break;
      case 'flash_sale_stock':
        if (s.bubble && s.bubble.sale && s.bubble.sale.id === f.sale_id) s.bubble.sale.stock_left = f.stock_left;
        break;
      case 'group_progress':
        if (s.bubble && s.bubble.offer && s.bubble.offer.id === f.offer_id) s.bubble.offer.group = f.group;
        break;
      case 'viewer_count': s.viewers = f.count; break;
      case 'likes': s.likes = f.total; break;
      case 'room_state': if (f.room) s.room = f.room; break;
      case 'pong': this._awaitingPong = false; break;
      case 'error':
        this._lastError = f;
        // A track frame the server could not store now (writer full, database down): the
        // same frame again later, on this socket (a resume would resend it anyway).
        if (f.code === 'unavailable' && typeof f.ref === 'string' && this._tracking[f.ref]) {
          this._retryTrack(f.ref);
        }
        break;
    }
    this._emit('frame', f);
    if (EVENTS.indexOf(f.type) >= 0) this._emit(f.type, f);
    // The server does not close live sockets when the room ends; a reconnect would get 4410.
    if (f.type === 'room_state' && f.state === 'ended') {
      this.close();
      this._emit('ended', { code: null, reason: 'room ended', frame: f });
    }
  }

  // Application-level heartbeat: WeChat hides WebSocket ping/pong, and a phone that lost its
  // network often gets no onClose for a long time. Ping every heartbeatMs; no pong by the next
  // tick (or a socket still not open) means the connection is dead.
  _scheduleBeat() {
    var self = this;
    this._beatTimer = this._setTimeout(function () {
      self._beatTimer = null;
      if (!self._open || self._awaitingPong) return self._down(4000, 'heartbeat timeout');
      self._awaitingPong = true;
      self._send({ type: 'ping', t: self.now() });
      self._scheduleBeat();
    }, this.heartbeatMs);
  }

  _clearTimer(name) {
    if (this[name] !== null) { this._clearTimeout(this[name]); this[name] = null; }
  }

  // Forget the current socket (its late events are ignored) and close it if still up.
  _drop(code, reason) {
    this._clearTimer('_beatTimer');
    var task = this._task;
    this._task = null;
    this._open = false;
    if (task) { try { task.close({ code: code, reason: reason }); } catch (e) { /* already gone */ } }
  }

  _down(code, reason) {
    var welcomed = this._welcomed;
    this._drop(1000, reason);
    var stop = !!STOP_CODES[code];
    this._emit('close', { code: code, reason: reason, willReconnect: !stop && !this._stopped });
    if (code === 4401) this._emit('unauthorized', { code: code, reason: reason, error: this._lastError });
    if (code === 4410) this._emit('ended', { code: code, reason: reason });
    if (stop) this._stopped = true;
    if (this._stopped) return;
    // Immediate only when this socket had been welcomed: a node refusing at handshake with
    // 1012 ("not ready") must not turn into a tight reconnect loop.
    var delay = NOW_CODES[code] && welcomed
      ? 0 : backoffDelay(this.attempt, this.backoffBaseMs, this.maxBackoffMs, this.random);
    this.attempt += 1;
    this._emit('reconnecting', { attempt: this.attempt, delay: delay, code: code });
    var self = this;
    this._reconnectTimer = this._setTimeout(function () {
      self._reconnectTimer = null;
      if (!self._stopped) self.connect();
    }, delay);
  }
}

// CommonJS for mini-programs and Node; in a browser (a classic <script>, as the server's
// audience page and console load it) the same code is exposed as `livecommerceSocket`.
if (typeof module !== 'undefined' && module.exports) {
  module.exports = { LiveRoomClient: LiveRoomClient, backoffDelay: backoffDelay, uuid4: uuid4, uuid7: uuid7 };
} else if (typeof window !== 'undefined') {
  window.livecommerceSocket = { LiveRoomClient: LiveRoomClient, backoffDelay: backoffDelay, uuid4: uuid4, uuid7: uuid7 };
}
