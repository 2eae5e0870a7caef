"""livecommerce: an asyncio live-commerce server."""

__version__ = "0.1.0"
