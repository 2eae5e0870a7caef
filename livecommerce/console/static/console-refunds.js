// The orders table's after-sales column: a buyer's pending request with Approve / Reject, and a
// goodwill refund (all that is left, or an amount in yuan) of a paid, shipped or completed order;
// above them, the order's refunds that did not pay the buyer (closed by WeChat Pay, abnormal).
// Endpoints: docs/api.md, "Refunds and after-sales". console.js passes its call / guarded.
import { el, randomKey, yuan } from '/static/api.js';

// One line per refund WeChat Pay closed (the buyer was not paid back) or left abnormal.
function refundIssue(o, r) {
  const what = `Refund ${r.out_refund_no} of ${yuan(r.amount_fen)} (${r.reason})`;
  if (r.status === 'abnormal') {
    return el('p', { class: 'refund-issue', role: 'status' },
      `⚠ ${what} is ABNORMAL: the buyer's account refused the money. Settle it by hand in the WeChat Pay merchant platform (Transactions → Refunds → abnormal refunds).`);
  }
  if (r.next_refund_id) {
    return el('p', { class: 'hint' }, `${what} was closed by WeChat Pay (not paid back); refund #${r.next_refund_id} asks for it again.`);
  }
  return el('p', { class: 'refund-issue', role: 'status' },
    `⚠ ${what} was closed by WeChat Pay: the buyer was NOT paid back${r.last_error ? ' — ' + r.last_error : ''}. ` +
    (REFUNDABLE.has(o.status) ? 'Top up the merchant balance, then refund again below.' : 'Top up the merchant balance.'));
}

const REFUNDABLE = new Set(['paid', 'shipped', 'completed']);

// order id -> the pending after-sales request (status "requested") of this host.
export async function pendingRequests(call) {
  const byOrder = new Map();
  try {
    const page = await call('GET', '/api/host/after-sales?status=requested&limit=50');
    for (const a of page.items) byOrder.set(a.order_id, a);
  } catch (e) { /* the column stays empty; the next refresh tries again */ }
  return byOrder;
}

// The cell's content for order `o` (`request`: its pending after-sales request, if any).
export function afterSalesCell(o, request, ctx) {
  const issues = (o.refund_issues || []).map((r) => refundIssue(o, r));
  const actions = afterSalesActions(o, request, ctx);
  return issues.length ? el('div', {}, ...issues, actions) : actions;
}

function afterSalesActions(o, request, { call, guarded, refresh }) {
  if (request) {
    const decide = (verb, done) => async () => {
      await guarded(() => call('POST', `/api/host/after-sales/${request.id}/${verb}`, {}), done);
      document.activeElement.blur(); // the table refreshes only when nothing in it has focus
      refresh();
    };
    return el('div', { class: 'aftersale' },
      el('p', {}, `Buyer asks: “${request.reason}”${request.return_goods ? ' (returns the goods)' : ''}`),
      el('div', { class: 'row' },
        el('button', { type: 'button', onclick: decide('approve', `Order #${o.id}: refund approved.`),
          'aria-label': `Approve the refund of order ${o.id}` }, 'Approve'),
        el('button', { type: 'button', class: 'secondary', onclick: decide('reject', `Order #${o.id}: request rejected.`),
          'aria-label': `Reject the refund request of order ${o.id}` }, 'Reject')));
  }
  if (!REFUNDABLE.has(o.status)) return '';
  // Two steps, so one click never refunds: "Refund…" shows the amount and the confirm button.
  const amount = el('input', { type: 'number', min: '0.01', step: '0.01', placeholder: 'all',
    'aria-label': `Refund amount for order ${o.id} in yuan (empty: all that is left)` });
  const form = el('form', { class: 'row', hidden: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {};
    if (amount.value.trim()) body.amount_fen = Math.round(Number(amount.value) * 100);
    await guarded(() => call('POST', `/api/host/orders/${o.id}/refunds`, body, { 'Idempotency-Key': key }),
      `Order #${o.id}: refund started.`);
    document.activeElement.blur();
    refresh();
  } }, amount, el('button', { type: 'submit', class: 'danger' }, 'Confirm refund'));
  const key = randomKey(); // one per opened form: a double submit refunds once
  const open = el('button', { type: 'button', class: 'secondary', 'aria-label': `Refund order ${o.id}`,
    onclick: () => { open.hidden = true; form.hidden = false; amount.focus(); } }, 'Refund…');
  return el('div', {}, open, form);
}
