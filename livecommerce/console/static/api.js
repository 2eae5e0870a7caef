// Shared by the console and the audience page: JSON calls with clear error messages, money,
// DOM helpers and the browser adapter that lets the mini-program socket client run here.

// Messages a person reads for the server's error codes (never raw JSON).
const MESSAGES = {
  bad_credentials: 'Wrong name or password.',
  too_many_sign_ins: 'Too many failed sign-ins. Wait a few minutes and try again.',
  csrf_failed: 'Your session check failed. Reload the page and try again.',
  missing_token: 'Please sign in.',
  bad_token: 'Your session is not valid any more. Please sign in again.',
  token_expired: 'Your session has expired. Please sign in again.',
  session_revoked: 'Your session has ended (signed out, or the password was changed). Please sign in again.',
  wrong_role: 'This account cannot do that.',
  room_not_live: 'The room is not live. Start it first.',
  room_ended: 'The room has ended.',
  room_not_found: 'That room does not exist (or is not yours).',
  goods_not_in_room: 'Attach those goods to the room first.',
  illegal_transition: 'That is not possible in the current state.',
  already_fired: 'That push has already fired; it can no longer be changed.',
  sold_out: 'Sold out.',
  insufficient_stock: 'Not enough stock left.',
  host_exists: 'A host with that name exists.',
  unavailable: 'The server cannot reach its database or cache right now; it recovers by itself. Try again in a few seconds.',
};
const BY_STATUS = {
  0: 'Cannot reach the server. Check your connection; we keep retrying.',
  401: 'Please sign in again.',
  403: 'You are not allowed to do that.',
  404: 'Not found.',
  409: 'That is not possible in the current state.',
  413: 'That is too large.',
  429: 'Too many attempts. Wait a moment and try again.',
  503: 'The server is busy. Try again in a few seconds.',
};

// A 400 for a text that does not have the form its field needs, in words.
const FORMATS = {
  title: 'The title cannot be blank.',
  cover_url: 'The cover must be an http:// or https:// link.',
  stream_url: 'The stream URL must start with rtmp://, http:// or https://.',
  keywords: 'Each keyword needs a letter or a digit: punctuation alone would match almost every message.',
};

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

export function humanMessage(status, err) {
  if (err && MESSAGES[err.code]) return MESSAGES[err.code];
  if (status === 400 && err && err.message) {
    const text = String(err.message);
    if (/past/i.test(text) && err.field === 'offset_seconds') {
      return 'That is in the past: +mm:ss counts from when the stream started, not from now.';
    }
    if (/no start/i.test(text) && err.field === 'offset_seconds') {
      return 'This room has no start time yet, so +mm:ss has nothing to count from: start the live first, or schedule at a clock time like 20:30.';
    }
    if (/past/i.test(text) && err.field === 'planned_start_at') {
      return 'The planned start may be at most a day in the past: pick a later time, or leave it empty.';
    }
    if (/past/i.test(text)) return 'That time is in the past.';
    if (/days ahead/i.test(text)) return 'That time is too far ahead (' + text.replace(/^.*more than /, 'at most ') + ').';
    if (/matching regex/.test(text) && FORMATS[err.field]) return FORMATS[err.field];
    return 'Please check the form: ' + text;
  }
  return BY_STATUS[status] || 'Something went wrong (' + status + '). Try again.';
}

// One JSON request. `csrf` goes in X-CSRF-Token, `token` is a bearer token.
export async function api(method, path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
  if (opts.csrf) headers['X-CSRF-Token'] = opts.csrf;
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', BY_STATUS[0]);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || 'http_' + resp.status, humanMessage(resp.status, err), err.field);
  }
  return data;
}

export function randomKey() {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function yuan(fen) { return '¥' + (fen / 100).toFixed(2); }

// el('li', {class: 'x', onclick: f}, 'text', child) -> Element (text is never parsed as HTML).
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function $(selector, root = document) { return root.querySelector(selector); }

export function show(node, visible) { node.hidden = !visible; }

// The page's one status line (#notice): a message in words, green when `ok`; '' hides it.
export function notify(text, ok = false) {
  const n = $('#notice');
  n.textContent = text;
  n.classList.toggle('ok', ok);
  show(n, !!text);
}

// The wx.connectSocket shape over the browser's WebSocket, so the mini-program client
// (livecommerce-socket.js, loaded as a classic script) runs unchanged in a page.
export const browserWx = {
  sockets: [],
  connectSocket({ url }) {
    const ws = new WebSocket(url);
    browserWx.sockets.push(ws);
    return {
      onOpen(fn) { ws.addEventListener('open', () => fn({})); },
      onMessage(fn) { ws.addEventListener('message', (e) => fn({ data: e.data })); },
      onClose(fn) { ws.addEventListener('close', (e) => fn({ code: e.code, reason: e.reason })); },
      onError(fn) { ws.addEventListener('error', () => fn({ errMsg: 'websocket error' })); },
      send({ data }) { ws.send(data); },
      close({ code, reason } = {}) {
        const ok = code === 1000 || (code >= 3000 && code <= 4999);
        try { ws.close(ok ? code : 1000, reason); } catch (e) { ws.close(); }
      },
    };
  },
};

export function wsBase() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
}

// A LiveRoomClient (the mini-program's) for this page.
export function liveClient(roomId, token) {
  const { LiveRoomClient } = window.livecommerceSocket;
  // The browser's timer functions throw "Illegal invocation" when called as a method of another
  // object (the client keeps them as this._setTimeout): hand it plain wrappers.
  return new LiveRoomClient({
    baseUrl: wsBase(), roomId, token, wx: browserWx,
    setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (id) => clearTimeout(id),
  });
}
