-- Server-side analytics event ids can no longer be forged by a client (issue 16).
--
-- Client event ids and the deterministic ids of server events (md5 of '<type>:<row id>' here,
-- uuid5 in the app) share analytics_event_ids, so a viewer who sent an event with the id of a
-- coming server event (predictable: sequential order ids, a public namespace) kept that server
-- event from being recorded. Server ids now carry the UUID variant reserved for future use
-- (the top three bits of byte 8 are 111), which no RFC 9562 generator produces, and the server
-- refuses client ids of any variant but RFC 9562's (10) with `bad_uuid`
-- (growth/analytics/events.py), so the two never meet. Events stored before keep their ids: an
-- action recorded before this migration and again after it (an order refunded twice across
-- it) is recorded twice.
CREATE OR REPLACE FUNCTION lc_analytics_server_event(
    p_type text, p_key text, p_user bigint, p_goods bigint, p_order bigint, p_amount bigint,
    p_props jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_hash bytea := decode(md5(p_type || ':' || p_key), 'hex');
    v_id uuid := encode(set_byte(v_hash, 8, (get_byte(v_hash, 8) & 31) | 224), 'hex')::uuid;
BEGIN
    INSERT INTO analytics_event_ids (event_id) VALUES (v_id) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO analytics_events (event_id, type, occurred_at, received_at, source, actor,
                                  user_id, goods_id, order_id, amount_fen, props)
    VALUES (v_id, p_type, clock_timestamp(), clock_timestamp(), 'server',
            CASE WHEN p_user IS NULL THEN 'server' ELSE 'user:' || p_user END,
            p_user, p_goods, p_order, p_amount, p_props);
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'analytics: no partition for %, event % not recorded', clock_timestamp(), p_type;
END $$;
