"""HTTP: the admin endpoints — create hosts and reset their passwords while the server runs.

They take ``Authorization: Bearer <security.admin_token>`` (``route(..., admin=True)``: checked
by the contract before the body is read, ``auth/http.py``); with no admin token configured they
answer a token 403 ``admin_disabled``. A generated password is answered once and never stored in
clear.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Reply
from livecommerce.api.types import NO_NUL
from livecommerce.console import hosts
from livecommerce.console.passwords import MAX_LENGTH, MIN_LENGTH
from livecommerce.console.session_api import HostName
from livecommerce.errors import ValidationError

NewPassword = Annotated[
    str,
    Meta(min_length=MIN_LENGTH, max_length=MAX_LENGTH, description="Omit to have one generated"),
    NO_NUL,
]


class HostCreate(Body):
    name: HostName
    password: NewPassword | None = None


class PasswordReset(Body):
    password: NewPassword | None = None


class HostAccount(Model):
    """A host account and its password (answered only here, once)."""

    id: int
    name: str
    password: str


async def create_host(call: Call[HostCreate, None]) -> Reply[HostAccount]:
    """Create a host account (admin token). 409 ``host_exists`` if the name is taken."""
    # Trimmed like `livecommerce host create` and the console's sign-in form: " Alice " could
    # never sign in there (the form sends "Alice").
    name = call.body.name.strip()
    if not name:
        raise ValidationError("name", "must not be blank")
    password = call.body.password or hosts.new_password()
    host = await hosts.create_host(call.app[keys.PG_POOL], name, password)
    return Reply(HostAccount(id=host.id, name=host.name, password=password), status=201)


async def reset_password(call: Call[PasswordReset, None]) -> HostAccount:
    """Set a host's password (admin token); omitted, a new one is generated and answered."""
    password = (call.body.password if call.body else None) or hosts.new_password()
    host = await hosts.set_password(call.app[keys.PG_POOL], password, host_id=call.id("host_id"))
    return HostAccount(id=host.id, name=host.name, password=password)
