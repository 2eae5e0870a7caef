"""The commerce and live-room fixtures serve the notification tests."""

from tests.commerce.conftest import shop
from tests.realtime.conftest import world

__all__ = ["shop", "world"]
