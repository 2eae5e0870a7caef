"""The message-push endpoint over real HTTP: verification, formats, modes, signatures, once."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from livecommerce import keys
from livecommerce.support.context import DEV_TOKEN
from livecommerce.support.crypto import signature
from tests.support import http
from tests.support_cs.conftest import Desk

KEY_OLD = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
KEY_NEW = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"


async def _rows(desk: Desk) -> list[dict[str, object]]:
    rows = await desk.pool.fetch("SELECT * FROM support_inbox ORDER BY id")
    return [dict(r) for r in rows]


async def test_get_verification_echoes_echostr_as_text(desk: Desk) -> None:
    """A right signature gets echostr back as text/plain, not JSON."""
    ts, nonce = "1714036504", "1514711492"
    sig = signature(DEV_TOKEN, ts, nonce)
    url = f"{desk.push_url}?signature={sig}&timestamp={ts}&nonce={nonce}&echostr=abc123"
    status, body = await http("GET", url)
    assert (status, body) == (200, "abc123")


@pytest.mark.parametrize("sig", ["0" * 40, None])
async def test_get_verification_refuses_bad_or_missing_signature(
    desk: Desk, sig: str | None
) -> None:
    """A wrong or missing signature is a 401 and echoes nothing."""
    query = "timestamp=1&nonce=2&echostr=abc123" + (f"&signature={sig}" if sig else "")
    status, body = await http("GET", f"{desk.push_url}?{query}")
    assert status == 401
    assert "abc123" not in str(body)


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
async def test_text_message_in_each_format_and_mode_is_stored_once(
    desk: Desk, fmt: str, mode: str
) -> None:
    """XML and JSON, plaintext, compatible and safe mode: `success`, one stored row."""
    sent = await desk.push(user="alice", type="text", content="你好", format=fmt, mode=mode)
    assert sent["answers"] == [{"status": 200, "body": "success"}]
    if mode != "plain":
        assert "Encrypt" in sent["body"]
        assert sent["query"]["encrypt_type"] == "aes"
    if mode == "safe":
        assert "你好" not in sent["body"]
    await desk.settled()
    rows = await _rows(desk)
    assert len(rows) == 1
    assert rows[0]["openid"] == desk.openid("alice")
    assert rows[0]["content"] == "你好"
    assert rows[0]["dedup_key"] == f"m:{sent['msg_id']}"
    assert rows[0]["processed_at"] is not None


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("how", ["bad", "missing"])
async def test_bad_or_missing_signature_is_401_and_nothing_stored(
    desk: Desk, mode: str, how: str
) -> None:
    """A wrong or absent (msg_)signature: 401, and no row."""
    sent = await desk.push(user="eve", type="text", content="hi", mode=mode, signature=how)
    assert sent["answers"][0]["status"] == 401
    assert await _rows(desk) == []


async def test_tampered_ciphertext_is_401(desk: Desk) -> None:
    """A safe-mode body whose Encrypt was changed after signing is refused (401)."""
    sent = await desk.push(user="eve", type="text", content="hi", mode="safe", format="json")
    body = sent["body"].replace('"Encrypt":"', '"Encrypt":"AAAA')
    url = desk.push_url + "?" + "&".join(f"{k}={v}" for k, v in sent["query"].items())
    status, _ = await http("POST", url, data=body.encode())
    assert status == 401


async def test_key_rotation_accepts_the_previous_key(make_server, pool, settings) -> None:  # type: ignore[no-untyped-def]
    """During a rotation, messages sealed with the previous EncodingAESKey still get in."""
    from tests.commerce.conftest import Shop

    support = dataclasses.replace(
        settings.support, encoding_aes_key=KEY_NEW, previous_encoding_aes_key=KEY_OLD
    )
    server = await make_server(dataclasses.replace(settings, support=support))
    desk = Desk(Shop(server, pool))
    old = await desk.push(user="bob", type="text", content="old key", mode="safe", key=1)
    new = await desk.push(user="bob", type="text", content="new key", mode="safe", key=0)
    assert old["answers"][0] == {"status": 200, "body": "success"}
    assert new["answers"][0] == {"status": 200, "body": "success"}
    await desk.settled()
    assert [r["content"] for r in await _rows(desk)] == ["old key", "new key"]


async def test_unknown_key_is_401(make_server, pool, settings) -> None:  # type: ignore[no-untyped-def]
    """After the rotation ends (previous key dropped), the old key is refused."""
    from tests.commerce.conftest import Shop

    server = await make_server(
        dataclasses.replace(
            settings, support=dataclasses.replace(settings.support, encoding_aes_key=KEY_NEW)
        )
    )
    fake_cs = server.app[keys.FAKE_WECHAT].cs
    from livecommerce.support.crypto import MessageCrypt

    fake_cs.crypt = MessageCrypt.from_settings(fake_cs.app_id, KEY_OLD)
    desk = Desk(Shop(server, pool))
    sent = await desk.push(user="bob", type="text", content="x", mode="safe")
    assert sent["answers"][0]["status"] == 401
    assert await _rows(desk) == []


async def test_foreign_appid_is_401(desk: Desk) -> None:
    """The right key but another app id inside the ciphertext: 401, nothing stored."""
    fake_cs = desk.server.app[keys.FAKE_WECHAT].cs
    assert fake_cs.crypt is not None
    fake_cs.crypt = dataclasses.replace(fake_cs.crypt, app_id="wxsomeoneelse")
    sent = await desk.push(user="eve", type="text", content="x", mode="safe")
    assert sent["answers"][0]["status"] == 401
    assert await _rows(desk) == []


async def test_image_card_and_enter_event_are_stored(desk: Desk) -> None:
    """image, miniprogrampage and user_enter_tempsession (with SessionFrom) are all kept."""
    await desk.push(user="carol", type="event", session_from="goods:7", format="json")
    await desk.push(user="carol", type="image", format="xml")
    await desk.push(user="carol", type="miniprogrampage", title="Tea", page_path="pages/goods?id=7")
    await desk.settled()
    rows = await _rows(desk)
    assert [r["msg_type"] for r in rows] == ["event", "image", "miniprogrampage"]
    assert rows[0]["dedup_key"].startswith(f"e:{desk.openid('carol')}:")
    conv = await desk.pool.fetchrow(
        "SELECT * FROM support_conversations WHERE openid = $1", desk.openid("carol")
    )
    assert conv["session_from"] == "goods:7"


async def test_wechat_retries_are_processed_once(desk: Desk) -> None:
    """3 tries of one MsgId (WeChat's retries): each answered success, one row."""
    sent = await desk.push(user="dave", type="text", content="hi", tries=3, mode="safe")
    assert [a["body"] for a in sent["answers"]] == ["success"] * 3
    again = await desk.push(user="dave", type="text", content="hi", msg_id=sent["msg_id"])
    assert again["answers"][0]["body"] == "success"
    await desk.settled()
    assert len(await _rows(desk)) == 1


async def test_events_dedup_by_sender_and_create_time(desk: Desk) -> None:
    """Two enter events with the same sender and CreateTime are one; another time is another."""
    now = int(time.time())
    for ct in (now, now, now - 1):
        await desk.push(user="erin", type="event", create_time=ct)
    await desk.settled()
    assert len(await _rows(desk)) == 2


async def test_two_nodes_process_each_message_once(desk: Desk, make_server) -> None:  # type: ignore[no-untyped-def]
    """The same messages pushed to two nodes at once: one row each, processed once."""
    other = await make_server()
    urls = [desk.push_url, other.url + desk.push_url.removeprefix(desk.shop.url)]
    pushes = []
    for i in range(20):
        sent = await desk.push(user=f"u{i}", type="text", content=str(i), url=urls[0])
        pushes.append(desk.push(user=f"u{i}", type="text", content=str(i), url=urls[1],
                                msg_id=sent["msg_id"]))  # fmt: skip
    answers = await asyncio.gather(*pushes)
    assert all(a["answers"][0]["body"] == "success" for a in answers)
    await desk.settled()
    assert len(await _rows(desk)) == 20
    processed = desk.server.app[keys.SUPPORT].worker.processed
    processed += other.app[keys.SUPPORT].worker.processed
    assert processed == 20


async def test_rows_left_by_a_crash_are_processed_after_restart(desk: Desk, make_server) -> None:  # type: ignore[no-untyped-def]
    """A stored but unprocessed row (a node died after the ack) is swept by another node once."""
    await desk.pool.execute(
        """INSERT INTO support_inbox (dedup_key, openid, msg_type, content, payload)
           VALUES ('m:1', 'oabc', 'text', 'hi', $1)""",
        {
            "to_user": "gh",
            "from_user": "oabc",
            "create_time": 1,
            "msg_type": "text",
            "content": "hi",
            "msg_id": 1,
        },
    )
    app = desk.server.app
    await app[keys.SUPPORT].worker.sweep()
    await app[keys.SUPPORT].worker.sweep()
    await desk.settled()
    assert app[keys.SUPPORT].worker.processed == 1


async def test_ack_does_not_wait_for_processing(desk: Desk) -> None:
    """`success` comes back while processing is still blocked (work runs after the ack)."""
    worker = desk.server.app[keys.SUPPORT].worker
    release = asyncio.Event()
    original = worker.decide

    async def slow(conn, msg, conv):  # type: ignore[no-untyped-def]
        await release.wait()
        return await original(conn, msg, conv)

    worker.decide = slow
    started = time.monotonic()
    sent = await desk.push(user="fay", type="text", content="hi")
    assert sent["answers"][0]["body"] == "success"
    assert time.monotonic() - started < 2
    assert (
        await desk.pool.fetchval("SELECT count(*) FROM support_inbox WHERE processed_at IS NULL")
        == 1
    )
    release.set()
    await desk.settled()


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<xml><Content>x</Content></xml>",
        b"[1,2]",
        b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>',
        # Signed but beyond what WeChat sends: these were 500s (index row size, timestamp
        # out of range) and WeChat retried them.
        b'{"FromUserName":"o' + b"x" * 5000 + b'","CreateTime":1,"MsgType":"event"}',
        b'{"FromUserName":"oA","CreateTime":4611686018427387904,"MsgType":"text","MsgId":1}',
    ],
)
async def test_malformed_body_with_good_signature_is_400(desk: Desk, body: bytes) -> None:
    """A signed request whose body is not a WeChat message: 400 JSON error, nothing stored."""
    ts, nonce = "1", "2"
    url = (
        f"{desk.push_url}?signature={signature(DEV_TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}"
    )
    status, answer = await http("POST", url, data=body)
    assert status == 400
    assert isinstance(answer, dict)
    assert answer["error"]["field"] == "body"
    assert await _rows(desk) == []


async def test_unknown_query_parameters_are_ignored(desk: Desk) -> None:
    """WeChat may add parameters: an unknown one neither breaks nor bypasses the signature."""
    status, _ = await http("POST", desk.push_url + "?timestamp=&x-new=42", data=b"<xml/>")
    assert status == 401
    ts, nonce = "1714036504", "1514711492"
    sig = signature(DEV_TOKEN, ts, nonce)
    url = f"{desk.push_url}?signature={sig}&timestamp={ts}&nonce={nonce}&echostr=e1&x-new=1"
    assert await http("GET", url) == (200, "e1")
