"""The python-socketio side of bench/fanout_vs_socketio.py: an AsyncServer on aiohttp.

Viewers connect to ``/socket.io/?EIO=4&transport=websocket&room=R`` and are put in room R;
``POST /push?room=R`` emits one ``goods_push`` event to the room — the same JSON our server
publishes, with ``seq`` (per room) and ``ts`` (ms at emit) first — and answers ``{"seq": N}``
once the emit returned. This is the straightforward way a team would build it on python-socketio.

    python bench/fanout_socketio_server.py PORT
"""

from __future__ import annotations

import sys
import time
from urllib.parse import parse_qs

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
app = web.Application()
sio.attach(app)
seqs: dict[str, int] = {}


@sio.event
async def connect(sid: str, environ: dict[str, str], auth: object = None) -> None:
    room = parse_qs(environ.get("QUERY_STRING", "")).get("room", ["1"])[0]
    await sio.enter_room(sid, room)


async def push(request: web.Request) -> web.Response:
    room = request.query.get("room", "1")
    seq = seqs[room] = seqs.get(room, 0) + 1
    data = {
        "seq": seq,
        "ts": int(time.time() * 1000),
        "type": "goods_push",
        "push_id": f"p{seq}",
        "goods": {"id": 1, "title": "Load test goods", "price_fen": 990, "image": "", "stock": 9},
        "show_seconds": 30,
    }
    await sio.emit("goods_push", data, room=room)
    return web.json_response({"seq": seq}, status=201)


app.router.add_post("/push", push)

if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, backlog=4096)
