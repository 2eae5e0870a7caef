-- WeChat Pay v3 JSAPI prepay per order (POST /api/orders/{id}/pay).
--
-- prepay_id is reused while prepay_valid_until is ahead (WeChat keeps a prepay ~2 h and the
-- order's time_expire caps it); a new one is asked for only after that. prepay_at is when the
-- current one was made: the payment checker queries WeChat for unpaid orders whose prepay is
-- older than wechatpay.stale_prepay_seconds (a lost notification), at most once per that age
-- (pay_checked_at). pay_closed_at: when the WeChat order of a cancelled order was closed (so
-- nobody can pay it); a cancelled order with a prepay and no pay_closed_at is closed by the
-- reaper, whichever path cancelled it.
ALTER TABLE orders
    ADD COLUMN prepay_id           text,
    ADD COLUMN prepay_at           timestamptz,
    ADD COLUMN prepay_valid_until  timestamptz,
    ADD COLUMN pay_checked_at      timestamptz,
    ADD COLUMN pay_closed_at       timestamptz;

CREATE INDEX orders_stale_prepay_idx ON orders (prepay_at)
    WHERE status = 'pending_payment' AND prepay_id IS NOT NULL;
CREATE INDEX orders_unclosed_prepay_idx ON orders (id)
    WHERE status = 'cancelled' AND prepay_id IS NOT NULL AND pay_closed_at IS NULL;
