"""WeCom's callback crypto against the sample values WeCom publishes (tests/data/wecom-callback-samples.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.wecom_crypto import WecomCrypto, WecomCryptoError, signature

SAMPLES = json.loads((Path(__file__).parent.parent / "data" / "wecom-callback-samples.json").read_text("utf-8"))
MSG, URL = SAMPLES["message"], SAMPLES["verify_url"]


def crypto(sample: dict, corp_id: str | None = None) -> WecomCrypto:
    return WecomCrypto(sample["token"], sample["encoding_aes_key"], corp_id or sample["corp_id"])


def test_signature_of_the_official_samples() -> None:
    assert signature(MSG["token"], MSG["timestamp"], MSG["nonce"], MSG["encrypt"]) == MSG["msg_signature"]
    assert signature(URL["token"], URL["timestamp"], URL["nonce"], URL["echostr"]) == URL["msg_signature"]


def test_official_message_decrypts() -> None:
    plain = crypto(MSG).verify(MSG["msg_signature"], MSG["timestamp"], MSG["nonce"], MSG["encrypt"])
    for part in MSG["plaintext_contains"]:
        assert part in plain
    assert "<FromUserName><![CDATA[mycreate]]></FromUserName>" in plain


def test_official_echostr_decrypts() -> None:
    assert crypto(URL).verify(URL["msg_signature"], URL["timestamp"], URL["nonce"], URL["echostr"]) == URL["plaintext"]


@pytest.mark.parametrize("field", ["msg_signature", "timestamp", "nonce", "encrypt"])
def test_one_changed_character_fails_the_signature(field: str) -> None:
    values = {k: MSG[k] for k in ("msg_signature", "timestamp", "nonce", "encrypt")}
    v = values[field]
    values[field] = v[:-3] + ("0" if v[-3] != "0" else "1") + v[-2:]
    with pytest.raises(WecomCryptoError):
        crypto(MSG).verify(**values)


def test_wrong_corp_id_is_refused() -> None:
    with pytest.raises(WecomCryptoError, match="receive_id"):
        crypto(MSG, corp_id="wx0000000000000000").decrypt(MSG["encrypt"])


def test_wrong_token_is_refused() -> None:
    c = WecomCrypto("other", MSG["encoding_aes_key"], MSG["corp_id"])
    with pytest.raises(WecomCryptoError, match="signature"):
        c.verify(MSG["msg_signature"], MSG["timestamp"], MSG["nonce"], MSG["encrypt"])


@pytest.mark.parametrize(
    "encrypt", ["", "not base64!", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 32).decode()]
)
def test_garbage_is_refused_not_crashing(encrypt: str) -> None:
    with pytest.raises(WecomCryptoError):
        crypto(MSG).decrypt(encrypt)


@pytest.mark.parametrize("message", ["", "hello", "中文消息" * 50, "x" * 31, "x" * 32, "x" * 33])
def test_round_trip_and_block_of_32(message: str) -> None:
    c = crypto(MSG)
    enc = c.encrypt(message)
    assert len(base64.b64decode(enc)) % 32 == 0
    assert c.decrypt(enc) == message
    sealed, sig = c.seal(message, "1", "2")
    assert c.verify(sig, "1", "2", sealed) == message


def test_bad_encoding_aes_key() -> None:
    with pytest.raises(ValueError):
        WecomCrypto("t", "short", "c")
