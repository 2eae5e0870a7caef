"""The fake WeChat's plain answers: errcode/errmsg JSON like WeChat's (as text/plain, like its
login API) and the JSON of the dev endpoints. WeChat Pay's signed answers are in
:mod:`~livecommerce.devtools.fake_wechat.pay_wire`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

_ERRMSG = {
    40029: "invalid code",
    40163: "code been used",
    45011: "api minute-quota reach limit mustslower retry next minute",
    40226: "invalid user: high risk user",
    -1: "system error",
}


def text_json(body: Any) -> web.Response:
    # WeChat's login API answers JSON with a text/plain content type; clients must cope.
    return web.Response(body=orjson.dumps(body), content_type="text/plain")


def json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def err(code: int, message: str | None = None) -> web.Response:
    return text_json({"errcode": code, "errmsg": message or _ERRMSG.get(code, "error")})
