"""The API tests reuse the commerce and social fixtures (a running shop with hosts, goods, users)."""

from tests.commerce.conftest import shop  # noqa: F401
from tests.social.conftest import social  # noqa: F401
