"""The experiments route table (hosts: define, run, read results; users: assignments, exposures)."""

from __future__ import annotations

from aiohttp import web

from livecommerce.api.contract import HOST, USER, add_routes, route
from livecommerce.growth.experiments import api

TAG = "experiments"
_SHAPE_RULES = (
    "`weights` need one positive weight per variant summing to 1",
    "variant keys must be unique; `namespace.end` must be after `namespace.start`",
    "`ends_at` must be after `starts_at`; times must be in range in UTC",
)

ROUTES = (
    route(
        "POST",
        "/api/host/experiments",
        api.create,
        auth=HOST,
        status=201,
        errors=(409,),
        tag=TAG,
        rules=_SHAPE_RULES,
    ),
    route("GET", "/api/host/experiments", api.list_experiments, auth=HOST, tag=TAG),
    route("GET", "/api/host/experiments/{id}", api.read, auth=HOST, tag=TAG),
    route(
        "PATCH",
        "/api/host/experiments/{id}",
        api.update,
        auth=HOST,
        errors=(409,),
        tag=TAG,
        rules=_SHAPE_RULES,
    ),
    route("POST", "/api/host/experiments/{id}/start", api.start, auth=HOST, errors=(409,), tag=TAG),
    route("POST", "/api/host/experiments/{id}/stop", api.stop, auth=HOST, errors=(409,), tag=TAG),
    route("GET", "/api/host/experiments/{id}/results", api.read_results, auth=HOST, tag=TAG),
    route(
        "GET",
        "/api/experiments/assignments",
        api.my_assignments,
        auth=USER,
        errors=(404,),
        tag=TAG,
        rules=("`host_id` and `room_id` do not go together",),
    ),
    route(
        "POST",
        "/api/experiments/{id}/exposures",
        api.expose,
        auth=USER,
        status=201,
        also=(200,),
        errors=(409,),
        tag=TAG,
    ),
)


def setup(app: web.Application) -> None:
    """Add the experiments routes (they use the commerce PostgreSQL pool)."""
    add_routes(app, ROUTES)
