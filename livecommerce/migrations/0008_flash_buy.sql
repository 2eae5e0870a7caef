-- A flash-sale purchase as one statement (called in autocommit by livecommerce/social/flashsale.py).
--
-- Every winner of a sale updates the same two rows (the goods' stock and the sale's sold count).
-- As one statement, their row locks are held only while PostgreSQL runs the rest of this
-- function and commits, never across a round trip to a busy application event loop, so the
-- winners of a rush queue on them for well under a millisecond each.
--
-- Refusals abort the whole statement (nothing written) with SQLSTATE P0001 and the refusal code
-- as the message: sold_out, limit_reached, not_on_sale, goods_not_found, replay (an order with
-- this idempotency key committed meanwhile). The order row mirrors orders.create_order
-- (livecommerce/commerce/orders.py); keep the two in step.
CREATE FUNCTION lc_flash_buy(
    p_sale bigint, p_user bigint, p_qty integer, p_key text, p_claim text, p_timeout float8
) RETURNS TABLE (order_id bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_sale  record;
    v_goods record;
    v_order bigint;
BEGIN
    SELECT o.id INTO v_order FROM orders o
    WHERE o.user_id = p_user AND o.idempotency_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT v_order, false;
        RETURN;
    END IF;
    SELECT s.goods_id, s.sale_price_fen, s.per_user_limit INTO v_sale FROM flash_sales s
    WHERE s.id = p_sale AND s.sold + p_qty <= s.stock AND now() >= s.starts_at AND now() < s.ends_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sold_out';
    END IF;
    INSERT INTO flash_sale_buyers AS b (sale_id, user_id, quantity) VALUES (p_sale, p_user, p_qty)
    ON CONFLICT (sale_id, user_id) DO UPDATE SET quantity = b.quantity + p_qty
    WHERE b.quantity + p_qty <= v_sale.per_user_limit;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'limit_reached';
    END IF;
    SELECT g.host_id, g.title, g.images, g.status, g.stock INTO v_goods FROM goods g
    WHERE g.id = v_sale.goods_id;
    IF NOT FOUND OR v_goods.status = 'draft' THEN
        RAISE EXCEPTION 'goods_not_found';
    ELSIF v_goods.status <> 'on_sale' THEN
        RAISE EXCEPTION 'not_on_sale';
    END IF;
    INSERT INTO orders (user_id, goods_id, host_id, quantity, unit_price_fen, total_fen, title,
                        image, idempotency_key, expires_at)
    VALUES (p_user, v_sale.goods_id, v_goods.host_id, p_qty, v_sale.sale_price_fen,
            v_sale.sale_price_fen * p_qty, v_goods.title, coalesce(v_goods.images[1], ''), p_key,
            now() + make_interval(secs => p_timeout))
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id INTO v_order;
    IF v_order IS NULL THEN
        RAISE EXCEPTION 'replay';
    END IF;
    INSERT INTO flash_sale_orders (order_id, sale_id, user_id, quantity, claim)
    VALUES (v_order, p_sale, p_user, p_qty, p_claim);
    -- The two rows every winner updates, last: goods then sale (the order a cancel takes them).
    UPDATE goods SET stock = stock - p_qty, updated_at = now()
    WHERE id = v_sale.goods_id AND status = 'on_sale' AND stock >= p_qty;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sold_out';
    END IF;
    UPDATE flash_sales SET sold = sold + p_qty WHERE id = p_sale AND sold + p_qty <= stock;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sold_out';
    END IF;
    RETURN QUERY SELECT v_order, true;
END
$$;
