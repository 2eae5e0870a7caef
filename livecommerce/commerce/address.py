"""The shipping address of an order: the shape ``wx.chooseAddress`` returns, validated.

The phone number and street are personal data: they are stored on the order, answered only to
the buyer and the order's host, and never logged — :func:`masked` is what a log line may show.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from livecommerce.api.contract import Body
from livecommerce.api.types import NO_NUL

Name = Annotated[str, Meta(min_length=1, max_length=50), NO_NUL]
Region = Annotated[str, Meta(min_length=1, max_length=50), NO_NUL]
Phone = Annotated[
    str,
    Meta(
        pattern=r"^\+?[0-9][0-9 -]{4,19}(?!\n)$",
        description="Mobile or landline, digits/space/-",
    ),
]


class ShippingAddress(Body):
    """A postal address as `wx.chooseAddress` gives it (field names as WeChat spells them)."""

    userName: Name
    telNumber: Phone
    provinceName: Region
    cityName: Region
    detailInfo: Annotated[str, Meta(min_length=1, max_length=200), NO_NUL]
    countyName: Annotated[str, Meta(max_length=50), NO_NUL] = ""
    postalCode: Annotated[str, Meta(pattern=r"^[0-9]{6}(?!\n)$")] | None = None
    nationalCode: Annotated[str, Meta(max_length=10), NO_NUL] | None = None


def masked(address: dict[str, Any] | None) -> str:
    """What a log line may say about an address: the city, a masked name and phone tail."""
    if not address:
        return "-"
    name = str(address.get("userName", ""))
    phone = str(address.get("telNumber", ""))
    return f"{address.get('cityName', '')} {name[:1]}** ***{phone[-4:]}"
