"""The API tests reuse the commerce fixtures (a running shop with hosts, goods, users)."""

from tests.commerce.conftest import shop  # noqa: F401
