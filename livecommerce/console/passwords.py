"""Password hashing: scrypt from ``cryptography`` (a maintained OpenSSL binding), no new dependency.

Stored as ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>`` so the cost can be raised later
without breaking old hashes. Hashing costs ~50 ms of CPU and 32 MiB: call it off the event loop
(:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import base64
import functools
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LOG2_N, R, P = 15, 8, 1
KEY_BYTES, SALT_BYTES = 32, 16
MIN_LENGTH, MAX_LENGTH = 8, 200


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """The stored form of ``password`` (a fresh random salt each call)."""
    salt = os.urandom(SALT_BYTES)
    key = Scrypt(salt=salt, length=KEY_BYTES, n=2**LOG2_N, r=R, p=P).derive(password.encode())
    return f"scrypt${LOG2_N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a malformed or foreign hash."""
    try:
        scheme, log2_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(
            salt=base64.b64decode(salt), length=KEY_BYTES, n=2 ** int(log2_n), r=int(r), p=int(p)
        )
        expected = base64.b64decode(key)
        kdf.verify(password.encode(), expected)
    except (ValueError, InvalidKey):
        return False
    return True


def dummy_verify(password: str) -> None:
    """Spend what a verification costs, so an unknown name is not told apart by timing."""
    verify_password(_dummy_hash(), password)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not-a-password")
