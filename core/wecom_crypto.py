"""WeCom's callback encryption (the WXBizMsgCrypt scheme), with ``cryptography`` for AES.

- ``msg_signature`` = hex SHA-1 of the sorted concatenation of token, timestamp, nonce and the
  encrypted text;
- the AES key is base64(EncodingAESKey + "="), 32 bytes; AES-256-CBC with iv = key[:16];
- the plaintext is random(16) + length(4 bytes, network order) + message + receive id (the CorpID
  for a self-built application), padded PKCS#7 to a multiple of **32** bytes (not AES's 16).

Used by the WeCom channel (inbound callbacks) and by its simulator (which sends them), so both
sides speak the one implementation tested against WeCom's published sample values
(tests/channels/test_wecom_crypto.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32 bytes


class WecomCryptoError(Exception):
    """A callback that does not verify or decrypt: wrong signature, key, padding or CorpID."""


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


class WecomCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").encode()):
            raise WecomCryptoError("signature")

    def decrypt(self, encrypt: str) -> str:
        """The message in ``encrypt`` (base64), checking padding, length and the receive id."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WecomCryptoError("base64") from exc
        if not data or len(data) % 16:
            raise WecomCryptoError("length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise WecomCryptoError("padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise WecomCryptoError("length")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise WecomCryptoError("length")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise WecomCryptoError("receive_id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WecomCryptoError("encoding") from exc

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Signature check, then decryption: the plaintext, or WecomCryptoError."""
        self.check(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        body = message.encode("utf-8")
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def seal(self, message: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """(encrypt, msg_signature) for ``message``: what WeCom posts (and the simulator sends)."""
        encrypt = self.encrypt(message)
        return encrypt, signature(self.token, timestamp, nonce, encrypt)
