"""The live-room fixtures serve the timer tests too."""

from tests.realtime.conftest import world

__all__ = ["world"]
