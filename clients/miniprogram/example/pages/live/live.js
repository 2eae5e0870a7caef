// Example live-room page. Copy livecommerce-socket.js into your mini-program (here it is
// required from the package root) and open this page with ?room=<id>.
const { LiveRoomClient } = require('../../../livecommerce-socket.js');

const BASE_URL = 'wss://live.example.com'; // your server; add it to the socket domain whitelist
const API_URL = 'https://live.example.com';

// Prices travel as integer fen; format without floating point: 12900 -> "¥129.00".
function formatFen(fen) {
  const yuan = Math.floor(fen / 100);
  return '¥' + yuan + '.' + String(fen % 100).padStart(2, '0');
}

function viewerToken() {
  // An anonymous viewer token; a logged-in user would use the token from WeChat login instead.
  return new Promise((resolve, reject) => {
    wx.request({
      url: API_URL + '/api/tokens/viewer',
      method: 'POST',
      success: (res) => (res.statusCode === 201 ? resolve(res.data.token) : reject(res)),
      fail: reject,
    });
  });
}

Page({
  data: { streamUrl: '', title: '', viewers: 0, likes: 0, bubble: null, comments: [], draft: '', status: '' },

  async onLoad(query) {
    const token = await viewerToken();
    const client = new LiveRoomClient({ baseUrl: BASE_URL, roomId: Number(query.room), token });
    this.client = client;
    // welcome and resync both carry the full room state; on resync it replaces what we show.
    const showState = () => {
      const s = client.state;
      this.setData({
        streamUrl: s.room.stream_url, title: s.room.title, viewers: s.viewers, likes: s.likes, status: '',
      });
      this.showBubble(s.bubble);
    };
    client.on('welcome', showState);
    client.on('resync', (f) => { this.setData({ comments: [] }); showState(f); });
    client.on('goods_push', (f) => this.showBubble(f));
    client.on('goods_withdraw', () => this.showBubble(null));
    client.on('viewer_count', (f) => this.setData({ viewers: f.count }));
    client.on('likes', (f) => this.setData({ likes: f.total }));
    client.on('comment', (f) => {
      const who = f.user.kind === 'viewer' ? 'guest ' + f.user.id.slice(-4) : 'user ' + f.user.id;
      this.setData({ comments: this.data.comments.concat({ seq: f.seq, who, text: f.text }).slice(-50) });
    });
    client.on('error', (f) => { if (f.code === 'rate_limited') wx.showToast({ title: 'Slow down', icon: 'none' }); });
    client.on('reconnecting', () => this.setData({ status: 'reconnecting…' }));
    client.on('ended', () => this.setData({ status: 'the live has ended', streamUrl: '', bubble: null }));
    client.on('unauthorized', async () => {
      client.setToken(await viewerToken()); // token expired: get a new one and resume
      client.connect();
    });
    client.connect();
  },

  onUnload() {
    if (this.client) this.client.close();
    clearTimeout(this.bubbleTimer);
  },

  showBubble(frame) {
    clearTimeout(this.bubbleTimer);
    if (!frame) return this.setData({ bubble: null });
    const g = frame.goods;
    // An A/B-tested bubble may show price_display instead of the price (price_fen is charged).
    const price = g.price_display || formatFen(g.price_fen);
    this.setData({ bubble: { title: g.title, price, image: g.image } });
    // Report the impression; for an A/B-tested bubble (included) name its variant: that
    // records this user's exposure (docs/experiments.md). A welcome's bubble has a seq too.
    const exp = frame.experiment;
    const variants = exp && exp.included ? { [exp.key]: exp.variant } : undefined;
    this.client.track([{ type: 'bubble_impression', goods_id: g.id, push_seq: frame.seq, variants }]);
    // Hide when the push expires (ts is server time; good enough for a UI timer).
    const left = frame.ts + frame.show_seconds * 1000 - Date.now();
    this.bubbleTimer = setTimeout(() => this.setData({ bubble: null }), Math.max(left, 1000));
  },

  onDraft(e) { this.setData({ draft: e.detail.value }); },

  onSend() {
    try {
      if (this.client.comment(this.data.draft)) this.setData({ draft: '' });
    } catch (err) {
      wx.showToast({ title: err.message, icon: 'none' });
    }
  },

  onLike() {
    if (this.client) this.client.like(1);
  },
});
