// The list of live rooms (public: GET /api/rooms answers live rooms to anyone).
import { api, el, $, show } from '/static/api.js';

let cursor = null;

async function load() {
  const q = new URLSearchParams({ state: 'live', limit: '20' });
  if (cursor) q.set('cursor', cursor);
  try {
    const page = await api('GET', '/api/rooms?' + q);
    for (const r of page.items) {
      $('#rooms').append(el('li', {}, el('a', { href: '/live/' + r.id }, r.title)));
    }
    if (!$('#rooms').children.length) $('#rooms').append(el('li', {}, 'No live rooms right now.'));
    cursor = page.next_cursor;
    show($('#more'), !!cursor);
  } catch (e) {
    const n = $('#error');
    n.textContent = e.message;
    show(n, true);
  }
}

$('#more').addEventListener('click', load);
load();
