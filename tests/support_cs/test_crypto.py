"""WeChat message-push signatures and safe-mode AES, against worked examples."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from livecommerce.support.crypto import CryptoError, MessageCrypt, aes_key, signature

KEY_A = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
KEY_B = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"


def test_signature_worked_example() -> None:
    """Token AAAAA, ts 1714036504, nonce 1514711492: SHA-1 of the sorted concatenation."""
    joined = "15147114921714036504AAAAA"
    assert (
        signature("AAAAA", "1714036504", "1514711492") == hashlib.sha1(joined.encode()).hexdigest()
    )
    got = signature("AAAAA", "1714036504", "1514711492")
    assert got.startswith("f464b24f")
    assert got.endswith("1696")


def test_msg_signature_sorts_the_encrypt_field_too() -> None:
    """msg_signature includes Encrypt among the sorted values."""
    expected = hashlib.sha1("".join(sorted(["tok", "1", "2", "ENC"])).encode()).hexdigest()
    assert signature("tok", "1", "2", "ENC") == expected


def test_aes_key_is_base64_of_the_43_characters() -> None:
    """EncodingAESKey + '=' decodes to the 32-byte key; other lengths are refused."""
    assert aes_key(KEY_A) == base64.b64decode(KEY_A + "=")
    assert len(aes_key(KEY_A)) == 32
    with pytest.raises(ValueError, match="43"):
        aes_key(KEY_A[:-1])


def test_ciphertext_layout_matches_wechat() -> None:
    """random(16) + big-endian length + msg + appid, PKCS#7 to 32 bytes, IV = key[:16]."""
    crypt = MessageCrypt.from_settings("wxapp123", KEY_A)
    message = b"<xml><Content><![CDATA[hi]]></Content></xml>"
    encrypted = crypt.encrypt(message, random16=b"R" * 16)
    key = aes_key(KEY_A)
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    assert len(plain) % 32 == 0
    pad = plain[-1]
    body_len = 16 + 4 + len(message) + len(b"wxapp123")
    assert pad == 32 - body_len % 32
    assert plain[-pad:] == bytes([pad]) * pad
    assert plain[:16] == b"R" * 16
    assert struct.unpack(">I", plain[16:20])[0] == len(message)
    assert plain[20 : 20 + len(message)] == message
    assert plain[20 + len(message) : -pad] == b"wxapp123"
    assert crypt.decrypt(encrypted) == (message, 0)


def test_previous_key_accepted_during_rotation() -> None:
    """A body sealed with the previous key opens, and says which key worked."""
    old = MessageCrypt.from_settings("wxapp", KEY_A)
    rotated = MessageCrypt.from_settings("wxapp", KEY_B, previous=KEY_A)
    assert rotated.decrypt(old.encrypt(b"{}")) == (b"{}", 1)
    with pytest.raises(CryptoError):
        MessageCrypt.from_settings("wxapp", KEY_B).decrypt(old.encrypt(b"{}"))


def test_foreign_app_id_is_refused() -> None:
    """The right key but another app id at the end: refused."""
    other = MessageCrypt.from_settings("wxother", KEY_A)
    with pytest.raises(CryptoError, match="another app id"):
        MessageCrypt.from_settings("wxapp", KEY_A).decrypt(other.encrypt(b"x"))


@pytest.mark.parametrize("bad", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_garbage_is_refused(bad: str) -> None:
    """Anything that is not a ciphertext of ours raises CryptoError, not another exception."""
    with pytest.raises(CryptoError):
        MessageCrypt.from_settings("wxapp", KEY_A).decrypt(bad)
