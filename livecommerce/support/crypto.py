"""WeChat message-push signatures and safe-mode (AES) encryption.

* ``signature = SHA1(sorted(token, timestamp, nonce))`` (GET verification and plaintext POSTs);
  ``msg_signature = SHA1(sorted(token, timestamp, nonce, Encrypt))`` in safe/compatible mode.
* ``key = base64(EncodingAESKey + "=")`` (43 characters -> 32 bytes); AES-256-CBC with
  ``iv = key[:16]``; PKCS#7 padding to a multiple of **32** bytes (WeChat's, not AES's 16);
  plaintext ``random(16) + len(msg) as 4 bytes big-endian + msg + appid``.
* During an EncodingAESKey rotation the previous key is still tried; the key that worked is the
  one to answer with.

Source: WeChat Open Platform "message encryption" technical plan (see
docs/support.md for the links); the worked examples are in tests/support_cs/test_crypto.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BITS = 256  # WeChat pads to 32 bytes


class CryptoError(Exception):
    """A body that does not decrypt with any known key, or names another app id."""


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """SHA-1 hex of the sorted, concatenated ``token, timestamp, nonce[, Encrypt]``."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, *extra))).encode()).hexdigest()


def signature_ok(expected: str, token: str, timestamp: str, nonce: str, *extra: str) -> bool:
    """Constant-time check of a signature (case-insensitive hex)."""
    return hmac.compare_digest(expected.lower(), signature(token, timestamp, nonce, *extra))


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key from a 43-character EncodingAESKey.

    Raises:
        ValueError: not 43 base64 characters.
    """
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


@dataclass(frozen=True, slots=True)
class MessageCrypt:
    """The app's keys: ``keys[0]`` is current, ``keys[1:]`` previous ones still accepted."""

    app_id: str
    keys: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, app_id: str, current: str, previous: str = "") -> MessageCrypt:
        keys = [aes_key(current)]
        if previous:
            keys.append(aes_key(previous))
        return cls(app_id, tuple(keys))

    def encrypt(self, message: bytes, key_index: int = 0, random16: bytes | None = None) -> str:
        """Base64 ciphertext of ``message`` as WeChat builds it (for the fake and for tests)."""
        key = self.keys[key_index]
        rand = random16 if random16 is not None else os.urandom(16)
        plain = rand + struct.pack(">I", len(message)) + message + self.app_id.encode()
        padder = padding.PKCS7(BLOCK_BITS).padder()
        padded = padder.update(plain) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(enc.update(padded) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> tuple[bytes, int]:
        """(message, index of the key that worked) from a base64 ``Encrypt`` value.

        Raises:
            CryptoError: not base64, no key decrypts it, or the trailing app id is not ours.
        """
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise CryptoError("Encrypt has a bad length")
        foreign = False
        for index, key in enumerate(self.keys):
            dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            padded = dec.update(data) + dec.finalize()
            unpadder = padding.PKCS7(BLOCK_BITS).unpadder()
            try:
                plain = unpadder.update(padded) + unpadder.finalize()
            except ValueError:
                continue  # wrong key: the padding is garbage
            if len(plain) < 20:
                continue
            (length,) = struct.unpack(">I", plain[16:20])
            message, app_id = plain[20 : 20 + length], plain[20 + length :]
            if len(message) != length:
                continue
            if app_id != self.app_id.encode():
                foreign = True
                continue
            return message, index
        raise CryptoError("names another app id" if foreign else "does not decrypt with our keys")
