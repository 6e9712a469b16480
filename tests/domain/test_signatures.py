"""Webhook and API signatures against published vectors: each passes, and one changed byte fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.signatures import (
    HMAC_SHA1,
    HMAC_SHA256,
    SignatureError,
    aliyun_percent_encode,
    aliyun_signature,
    aliyun_string_to_sign,
    body_sha256,
    signature_algorithm,
    twilio_signature,
    twilio_signing_string,
    twilio_url_variants,
    verify_aliyun_signature,
    verify_twilio_signature,
)

# A byte-identical copy of shared/oracles/twilio-signature-vectors.json.
VECTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "twilio-signature-vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
IDS = [v["name"] for v in VECTORS]


def _params(vector: dict) -> list[tuple[str, str]]:
    return [(name, value) for name, value in vector["form_params"]]


def _verify(vector: dict, *, url=None, params=None, token=None, signature=None, raw_body=None) -> bool:
    body = vector.get("raw_body")
    raw = raw_body if raw_body is not None else (body.encode("utf-8") if body is not None else None)
    return verify_twilio_signature(
        url if url is not None else vector["signed_url"],
        params if params is not None else _params(vector),
        token if token is not None else vector["auth_token"],
        signature if signature is not None else vector["expected_signature"],
        raw_body=raw,
        algorithm=vector["algorithm"],
    )


def _one_byte_changes(text: str):
    """Every string that differs from ``text`` in exactly one character (a few replacements per position)."""
    for i, ch in enumerate(text):
        for repl in {"a", "0", "%", chr(ord(ch) ^ 1)} - {ch}:
            yield text[:i] + repl + text[i + 1 :]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_vector_computes_the_expected_signature(vector):
    params = () if "raw_body" in vector else _params(vector)
    assert (
        twilio_signature(vector["signed_url"], params, vector["auth_token"], vector["algorithm"])
        == vector["expected_signature"]
    )


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_vector_verifies(vector):
    assert _verify(vector)


def test_all_ten_vectors_are_covered():
    assert len(VECTORS) == 10
    assert {v["algorithm"] for v in VECTORS} == {HMAC_SHA1, HMAC_SHA256}


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_one_byte_change_in_the_url_fails(vector):
    if "raw_body" in vector:  # the bodySHA256 in the URL is covered by the body test below
        url = vector["signed_url"]
        cut = url.index("bodySHA256=")
        changes = [u for u in _one_byte_changes(url[:cut])]
        changes = [u + url[cut:] for u in changes]
    else:
        changes = list(_one_byte_changes(vector["signed_url"]))
    assert changes
    passed = [u for u in changes if _verify(vector, url=u)]
    assert passed == []


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["form_params"] and "raw_body" not in v],
    ids=[v["name"] for v in VECTORS if v["form_params"] and "raw_body" not in v],
)
def test_one_byte_change_in_any_param_name_or_value_fails(vector):
    params = _params(vector)
    for index, (name, value) in enumerate(params):
        for new_name in _one_byte_changes(name):
            changed = params[:index] + [(new_name, value)] + params[index + 1 :]
            assert not _verify(vector, params=changed), (name, new_name)
        for new_value in _one_byte_changes(value):
            changed = params[:index] + [(name, new_value)] + params[index + 1 :]
            assert not _verify(vector, params=changed), (name, new_value)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_one_byte_change_in_the_token_or_the_signature_fails(vector):
    assert not any(_verify(vector, token=t) for t in _one_byte_changes(vector["auth_token"]))
    assert not any(_verify(vector, signature=s) for s in _one_byte_changes(vector["expected_signature"]))


def test_one_byte_change_in_a_json_body_fails():
    vector = next(v for v in VECTORS if "raw_body" in v)
    body = vector["raw_body"]
    assert body_sha256(body.encode()) == vector["body_sha256_hex"]
    assert not any(_verify(vector, raw_body=b.encode()) for b in _one_byte_changes(body))


def test_a_json_body_needs_its_hash_in_the_url():
    vector = next(v for v in VECTORS if "raw_body" in v)
    url = vector["signed_url"].split("&bodySHA256=")[0]
    signature = twilio_signature(url, (), vector["auth_token"])
    assert not verify_twilio_signature(url, (), vector["auth_token"], signature, raw_body=vector["raw_body"].encode())


def test_added_or_dropped_parameter_fails():
    vector = VECTORS[6]  # the local inbound SMS webhook
    assert not _verify(vector, params=_params(vector) + [("Extra", "")])
    assert not _verify(vector, params=_params(vector)[1:])


def test_order_of_parameters_does_not_matter():
    vector = VECTORS[6]
    assert _verify(vector, params=list(reversed(_params(vector))))


def test_an_http_url_rejects_an_https_signature():
    vector = VECTORS[7]  # signed on https://bot.example.test/...
    assert not _verify(vector, url=vector["signed_url"].replace("https://", "http://"))


def test_port_quirk_accepts_the_signature_made_without_the_port():
    # Like twilio-python: our app at :8080 validating https://host:8080/x accepts a signature on https://host/x.
    vector = VECTORS[0]
    assert _verify(vector, url=vector["signed_url"].replace("mycompany.com/", "mycompany.com:8080/"))


def test_url_variants():
    assert twilio_url_variants("https://h.test/x?a=1") == ("https://h.test/x?a=1", "https://h.test:443/x?a=1")
    assert twilio_url_variants("http://h.test:8080/x") == ("http://h.test/x", "http://h.test:8080/x")
    assert twilio_url_variants("http://u:p@h.test:81/") == ("http://u:p@h.test/", "http://u:p@h.test:81/")
    assert twilio_url_variants("http://[::1]:8080/x") == ("http://[::1]/x", "http://[::1]:8080/x")
    with pytest.raises(ValueError):
        twilio_url_variants("http://h.test:port/x")


def test_signing_string_sorts_names_and_values_and_drops_duplicate_values():
    s = twilio_signing_string("U", [("b", "2"), ("a", "9"), ("b", "1"), ("b", "2")])
    assert s == "Ua9b1b2"
    assert twilio_signing_string("U", {"b": ["2", "1"], "a": "9"}) == s


def test_empty_token_or_signature_and_unknown_algorithm_never_verify():
    v = VECTORS[0]
    assert not _verify(v, token="")
    assert not verify_twilio_signature(v["signed_url"], _params(v), v["auth_token"], "")
    assert not verify_twilio_signature(v["signed_url"], _params(v), v["auth_token"], None)
    assert not verify_twilio_signature(
        v["signed_url"], _params(v), v["auth_token"], v["expected_signature"], algorithm="HMAC-MD5"
    )
    with pytest.raises(SignatureError):
        twilio_signature("U", (), "t", "HMAC-MD5")


def test_signature_settings_header():
    assert signature_algorithm(None) == HMAC_SHA1
    assert signature_algorithm("") == HMAC_SHA1
    assert signature_algorithm("key=KS123,algorithm=HMAC_SHA256") == HMAC_SHA256
    assert signature_algorithm("key=KS123, Algorithm = hmac_sha256") == HMAC_SHA256
    assert signature_algorithm("algorithm=RSA") == "RSA"


@given(
    url=st.text(), params=st.lists(st.tuples(st.text(), st.text()), max_size=5), token=st.text(), signature=st.text()
)
def test_verify_never_raises(url, params, token, signature):
    assert verify_twilio_signature(url, params, token, signature) in (True, False)
    assert verify_twilio_signature(url, params, token, signature, raw_body=signature.encode()) in (True, False)


@given(
    path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz/", max_size=20),
    params=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=20)), max_size=6),
    token=st.text(min_size=1, max_size=20),
)
def test_sign_then_verify_round_trips(path, params, token):
    url = "https://bot.example.test/" + path
    signature = twilio_signature(url, params, token)
    assert verify_twilio_signature(url, list(reversed(params)), token, signature)
    assert not verify_twilio_signature(url, params, token + "x", signature)


# --- Alibaba Cloud RPC signature (V2) -----------------------------------------------------------
# Worked examples published by Alibaba Cloud: the RPC signature page (ECS DescribeRegions) and the
# dysmsapi "HTTP protocol and signature" page (SendSms). Not part of shared/oracles; reproduced by
# several independent implementations.
ALIYUN_DOC_EXAMPLE = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
ALIYUN_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
    "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)
ALIYUN_SMS_EXAMPLE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
ALIYUN_VECTORS = [
    (ALIYUN_DOC_EXAMPLE, "testsecret", "OLeaidS1JvxuMvnyHOwuJ+uX5qY="),
    (ALIYUN_SMS_EXAMPLE, "testSecret", "zJDF+Lrzhj/ThnlvIToysFRq6t4="),
]


def test_aliyun_string_to_sign_matches_the_documented_one():
    assert aliyun_string_to_sign("GET", ALIYUN_DOC_EXAMPLE) == ALIYUN_DOC_STRING_TO_SIGN


@pytest.mark.parametrize("params,secret,expected", ALIYUN_VECTORS, ids=["ecs-doc", "sendsms-doc"])
def test_aliyun_documented_signatures(params, secret, expected):
    assert aliyun_signature("GET", params, secret) == expected
    assert verify_aliyun_signature("GET", {**params, "Signature": expected}, secret)


@pytest.mark.parametrize("params,secret,expected", ALIYUN_VECTORS, ids=["ecs-doc", "sendsms-doc"])
def test_aliyun_one_byte_change_fails(params, secret, expected):
    signed = {**params, "Signature": expected}
    assert not verify_aliyun_signature("POST", signed, secret)
    assert not any(verify_aliyun_signature("GET", signed, s) for s in _one_byte_changes(secret))
    for name, value in params.items():
        for changed in _one_byte_changes(value):
            assert not verify_aliyun_signature("GET", {**signed, name: changed}, secret), (name, changed)


def test_aliyun_percent_encoding_rules():
    assert aliyun_percent_encode("a b") == "a%20b"
    assert aliyun_percent_encode("*") == "%2A"
    assert aliyun_percent_encode("~-_.") == "~-_."
    assert aliyun_percent_encode("/=&+") == "%2F%3D%26%2B"
    assert aliyun_percent_encode("派") == "%E6%B4%BE"


def test_aliyun_without_secret_or_signature_never_verifies():
    assert not verify_aliyun_signature("GET", ALIYUN_DOC_EXAMPLE, "testsecret")
    assert not verify_aliyun_signature("GET", {**ALIYUN_DOC_EXAMPLE, "Signature": "x"}, "")
