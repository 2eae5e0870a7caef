// The host console's customer-service section: the shop's agent accounts (list, create, edit
// name / capacity / password, delete), canned replies and FAQ rules for the bot. Built here and
// inserted after the room list; shown whenever the room list is (it mirrors #rooms' hidden
// attribute), so console.js only imports this module. Calls go through the console's session
// cookie with its CSRF token (window.__console.csrf). Endpoints: docs/api.md, "Customer service".
import { api, ApiError, el, $, show, notify } from '/static/api.js';

const CODES = {
  login_taken: 'Another agent already uses that login. Choose another one.',
  capacity_below_load: 'The agent holds more conversations than that right now. Try a higher capacity or wait.',
  agent_not_found: 'That agent does not exist any more.',
  too_many_canned: 'Your shop has the maximum number of canned replies.',
};
const A = { editing: null, editingCanned: null, agents: [] };

function call(method, path, body) {
  const csrf = method === 'GET' ? '' : (window.__console && window.__console.csrf) || '';
  return api(method, path, { body, csrf });
}

async function guarded(fn, okText) {
  try {
    const out = await fn();
    if (okText) notify(okText, true);
    return out;
  } catch (e) {
    notify(e instanceof ApiError ? (CODES[e.code] || e.message) : 'Something went wrong. Try again.');
    return undefined;
  }
}

function field(id, label, attrs) {
  return [el('label', { for: id }, label), el('input', { id, ...attrs })];
}

function build() {
  const section = el('section', { id: 'support', class: 'card', hidden: true, 'aria-labelledby': 'support-title' },
    el('h2', { id: 'support-title' }, 'Customer service'),
    el('p', { class: 'hint' }, 'Agents sign in at ', el('a', { href: '/agent' }, '/agent'),
      ' with the login and password you set here. A new password signs them out at once (they sign in again with it); deleting an agent signs them out and puts their conversations back in the queue.'),
    el('h3', { id: 'agents-h' }, 'Agents'),
    el('table', { id: 'agents', 'aria-labelledby': 'agents-h' },
      el('thead', {}, el('tr', {}, ['Name', 'Login', 'Capacity', 'Now', 'Online', ''].map((t) => el('th', { scope: 'col' }, t)))),
      el('tbody')),
    el('details', { id: 'agent-details' },
      el('summary', { id: 'agent-form-title' }, 'New agent'),
      el('form', { id: 'agent-form' },
        ...field('agent-name', 'Name', { required: true, maxlength: 64 }),
        ...field('agent-login', 'Login (letters, digits, . _ @ -)', { required: true, minlength: 3, maxlength: 64, pattern: '[A-Za-z0-9._@\\-]+', autocomplete: 'off' }),
        ...field('agent-password', 'Sign-in passphrase (at least 8 characters)', { type: 'password', minlength: 8, maxlength: 200, autocomplete: 'new-password', required: true }),
        ...field('agent-capacity', 'Conversations at once', { type: 'number', min: 1, max: 100, value: 5, required: true }),
        el('div', { class: 'row' },
          el('button', { type: 'submit', id: 'agent-save' }, 'Create agent'),
          el('button', { type: 'button', id: 'agent-cancel', hidden: true, onclick: () => resetAgentForm() }, 'Cancel')))),
    el('h3', { id: 'canned-h' }, 'Canned replies'),
    el('ul', { id: 'canned-list', class: 'list', 'aria-labelledby': 'canned-h' }),
    el('details', { id: 'canned-details' },
      el('summary', { id: 'canned-form-title' }, 'New canned reply'),
      el('form', { id: 'canned-form' },
        ...field('canned-title', 'Short label', { required: true, maxlength: 60 }),
        el('label', { for: 'canned-body' }, 'Text'),
        el('textarea', { id: 'canned-body', required: true, maxlength: 1000, rows: 3 }),
        el('div', { class: 'row' },
          el('button', { type: 'submit', id: 'canned-save' }, 'Add reply'),
          el('button', { type: 'button', id: 'canned-cancel', hidden: true, onclick: () => resetCannedForm() }, 'Cancel')))),
    el('h3', { id: 'faq-h' }, 'Bot answers (FAQ)'),
    el('ul', { id: 'faq-list', class: 'list', 'aria-labelledby': 'faq-h' }),
    el('details', {},
      el('summary', {}, 'New FAQ answer'),
      el('form', { id: 'faq-form' },
        ...field('faq-keywords', 'Keywords, comma-separated (e.g. 发货, shipping)', { required: true, maxlength: 400 }),
        el('label', { for: 'faq-answer' }, 'Answer'),
        el('textarea', { id: 'faq-answer', required: true, maxlength: 600, rows: 3 }),
        ...field('faq-priority', 'Priority (higher wins)', { type: 'number', min: -1000, max: 1000, value: 0 }),
        el('button', { type: 'submit' }, 'Add answer'))));
  section.querySelector('#agent-form').addEventListener('submit', saveAgent);
  section.querySelector('#canned-form').addEventListener('submit', saveCanned);
  section.querySelector('#faq-form').addEventListener('submit', saveFaq);
  return section;
}

// -- agents ----------------------------------------------------------------------------------

async function loadAgents() {
  const got = await guarded(() => call('GET', '/api/host/support/agents'));
  if (!got) return;
  A.agents = got.items;
  $('#agents tbody').replaceChildren(...got.items.map((a) => el('tr', { 'data-agent': a.id },
    el('td', {}, a.name), el('td', {}, a.login || '—'), el('td', {}, a.capacity), el('td', {}, a.active),
    el('td', {}, a.online ? 'online' : 'offline'),
    el('td', {},
      el('button', { type: 'button', class: 'link', 'aria-label': `Edit ${a.name}`, onclick: () => editAgent(a) }, 'Edit'), ' ',
      el('button', { type: 'button', class: 'link', 'aria-label': `Delete ${a.name}`, onclick: () => deleteAgent(a) }, 'Delete')))));
  if (!got.items.length) $('#agents tbody').append(el('tr', {}, el('td', { colspan: 6 }, 'No agents yet.')));
}

function resetAgentForm() {
  A.editing = null;
  $('#agent-form').reset();
  $('#agent-form-title').textContent = 'New agent';
  $('#agent-save').textContent = 'Create agent';
  $('#agent-login').disabled = false;
  $('#agent-password').required = true;
  show($('#agent-cancel'), false);
}

function editAgent(a) {
  A.editing = a.id;
  $('#agent-details').open = true;
  $('#agent-form-title').textContent = `Edit ${a.name}`;
  $('#agent-save').textContent = 'Save changes';
  $('#agent-name').value = a.name;
  $('#agent-login').value = a.login || '';
  $('#agent-login').disabled = true;
  $('#agent-password').value = '';
  $('#agent-password').required = false;
  $('#agent-password').placeholder = 'leave empty to keep';
  $('#agent-capacity').value = a.capacity;
  show($('#agent-cancel'), true);
  $('#agent-name').focus();
}

async function saveAgent(ev) {
  ev.preventDefault();
  const body = { name: $('#agent-name').value.trim(), capacity: Number($('#agent-capacity').value) };
  const password = $('#agent-password').value;
  let done;
  if (A.editing) {
    if (password) body.password = password;
    const saved = password ? `Agent ${body.name} saved; they are signed out and sign in with the new password.` : `Agent ${body.name} saved.`;
    done = await guarded(() => call('PATCH', `/api/host/support/agents/${A.editing}`, body), saved);
  } else {
    Object.assign(body, { login: $('#agent-login').value.trim(), password });
    done = await guarded(() => call('POST', '/api/host/support/agents', body), `Agent ${body.name} created. They sign in at /agent.`);
  }
  if (!done) return;
  resetAgentForm();
  $('#agent-details').open = false;
  loadAgents();
}

async function deleteAgent(a) {
  if (!window.confirm(`Delete agent ${a.name}? They are signed out and their conversations go back to the queue.`)) return;
  const done = await guarded(() => call('DELETE', `/api/host/support/agents/${a.id}`), `Agent ${a.name} deleted.`);
  if (done && A.editing === a.id) resetAgentForm();
  loadAgents();
}

// -- canned replies --------------------------------------------------------------------------

async function loadCanned() {
  const got = await guarded(() => call('GET', '/api/host/support/canned'));
  if (!got) return;
  $('#canned-list').replaceChildren(...got.items.map((c) => el('li', { 'data-canned': c.id },
    el('strong', {}, c.title), ' — ', c.body, ' ',
    el('button', { type: 'button', class: 'link', 'aria-label': `Edit ${c.title}`, onclick: () => editCanned(c) }, 'Edit'), ' ',
    el('button', { type: 'button', class: 'link', 'aria-label': `Delete ${c.title}`, onclick: async () => {
      await guarded(() => call('DELETE', `/api/host/support/canned/${c.id}`), 'Canned reply deleted.');
      loadCanned();
    } }, 'Delete'))));
}

function resetCannedForm() {
  A.editingCanned = null;
  $('#canned-form').reset();
  $('#canned-form-title').textContent = 'New canned reply';
  $('#canned-save').textContent = 'Add reply';
  show($('#canned-cancel'), false);
}

function editCanned(c) {
  A.editingCanned = c.id;
  $('#canned-details').open = true;
  $('#canned-form-title').textContent = `Edit “${c.title}”`;
  $('#canned-save').textContent = 'Save reply';
  $('#canned-title').value = c.title;
  $('#canned-body').value = c.body;
  show($('#canned-cancel'), true);
  $('#canned-title').focus();
}

async function saveCanned(ev) {
  ev.preventDefault();
  const body = { title: $('#canned-title').value.trim(), body: $('#canned-body').value.trim() };
  const done = A.editingCanned
    ? await guarded(() => call('PUT', `/api/host/support/canned/${A.editingCanned}`, body), 'Canned reply saved.')
    : await guarded(() => call('POST', '/api/host/support/canned', body), 'Canned reply added.');
  if (!done) return;
  resetCannedForm();
  loadCanned();
}

// -- FAQ rules -------------------------------------------------------------------------------

async function loadFaq() {
  const got = await guarded(() => call('GET', '/api/host/support/faq'));
  if (!got) return;
  $('#faq-list').replaceChildren(...got.items.map((f) => el('li', { 'data-faq': f.id },
    el('strong', {}, f.keywords.join(', ')), ` (priority ${f.priority}) — `, f.answer, ' ',
    el('button', { type: 'button', class: 'link', 'aria-label': `Delete answer for ${f.keywords[0]}`, onclick: async () => {
      await guarded(() => call('DELETE', `/api/host/support/faq/${f.id}`), 'FAQ answer deleted.');
      loadFaq();
    } }, 'Delete'))));
}

async function saveFaq(ev) {
  ev.preventDefault();
  const keywords = $('#faq-keywords').value.split(/[,，]/).map((k) => k.trim()).filter(Boolean);
  if (!keywords.length) { notify('Enter at least one keyword.'); return; }
  const body = { keywords, answer: $('#faq-answer').value.trim(), priority: Number($('#faq-priority').value || 0) };
  if (!await guarded(() => call('POST', '/api/host/support/faq', body), 'FAQ answer added.')) return;
  $('#faq-form').reset();
  loadFaq();
}

// -- wiring ----------------------------------------------------------------------------------

function mirror(rooms, section) {
  const visible = !rooms.hidden;
  if (visible && section.hidden) { loadAgents(); loadCanned(); loadFaq(); }
  show(section, visible);
}

function mount() {
  const rooms = $('#rooms');
  if (!rooms || $('#support')) return;
  const section = build();
  rooms.after(section);
  new MutationObserver(() => mirror(rooms, section)).observe(rooms, { attributes: true, attributeFilter: ['hidden'] });
  mirror(rooms, section);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
else mount();
