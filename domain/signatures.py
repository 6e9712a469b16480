"""Webhook and API request signatures of the SMS gateways. Pure: stdlib only, no I/O.

Twilio signs every webhook it sends with ``X-Twilio-Signature`` (see
shared/oracles/sms-gateway-twilio.md §4): HMAC-SHA1, keyed by the account's auth token, over the
full URL Twilio requested followed by every POST parameter as ``name + value``, names sorted by
code point (several values of one name: sorted, exact duplicates dropped), base64-encoded. A JSON
body is not signed as parameters: the URL carries ``bodySHA256=<hex sha256 of the raw body>`` and
the signature covers the URL alone. Like twilio-python's ``RequestValidator`` we accept a signature
made on the URL with its port removed or with the default port added.

Alibaba Cloud's RPC APIs (SendSms) are signed with "signature method V2" (HMAC-SHA1 over
``METHOD&%2F&<percent-encoded canonical query>``, keyed by ``AccessKeySecret + "&"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

HMAC_SHA1 = "HMAC-SHA1"
HMAC_SHA256 = "HMAC-SHA256"
_DIGESTS = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}

Params = Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]


class SignatureError(ValueError):
    """An input that cannot be signed (unknown algorithm); never raised by the ``verify_*`` functions."""


# --- Twilio -------------------------------------------------------------------------------------


def _signed_params(params: Params) -> str:
    """``name + value`` of every parameter, sorted by name then value, exact duplicates dropped."""
    pairs: set[tuple[str, str]] = set()
    for name, value in params.items() if isinstance(params, Mapping) else params:
        if isinstance(value, str):
            pairs.add((name, value))
        else:  # several values of one name
            pairs.update((name, v) for v in value)
    # sorting the (name, value) pairs sorts by name, then a name's values: Twilio's order
    return "".join([name + value for name, value in sorted(pairs)])


def twilio_signing_string(url: str, params: Params = ()) -> str:
    """The string Twilio signs: the URL, then ``name + value`` for each parameter, sorted."""
    return url + _signed_params(params)


def _digest(algorithm: str) -> Callable[[], hashlib._Hash]:
    digest = _DIGESTS.get(algorithm)
    if digest is None:
        raise SignatureError(f"unknown signature algorithm {algorithm!r}")
    return digest


def _b64(mac: hmac.HMAC) -> str:
    return base64.b64encode(mac.digest()).decode("ascii")


def twilio_signature(url: str, params: Params, token: str, algorithm: str = HMAC_SHA1) -> str:
    """The ``X-Twilio-Signature`` value for a request to ``url`` with form ``params``."""
    return _b64(hmac.new(token.encode("utf-8"), twilio_signing_string(url, params).encode("utf-8"), _digest(algorithm)))


def body_sha256(raw_body: bytes) -> str:
    """Hex SHA-256 of a raw JSON body, as Twilio puts it in the ``bodySHA256`` query parameter."""
    return hashlib.sha256(raw_body).hexdigest()


@lru_cache(maxsize=256)  # one webhook URL or a few: worked out once, not per request
def twilio_url_variants(url: str) -> tuple[str, str]:
    """The URL without an explicit port and with the default port, the two forms Twilio may have signed.

    Raises ValueError for a URL whose port is not a number."""
    parts = urlsplit(url)
    port = parts.port  # ValueError on a malformed port
    userinfo, _, hostport = parts.netloc.rpartition("@")
    prefix = userinfo + "@" if userinfo else ""
    host = hostport
    if port is not None:
        host = hostport[: hostport.rfind(":")]
    without = urlunsplit(parts._replace(netloc=prefix + host))
    if port is not None:
        with_port = url
    else:
        default = 443 if parts.scheme == "https" else 80
        with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))
    return without, with_port


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that never raises (non-ASCII text is compared as UTF-8 bytes)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def verify_twilio_signature(
    url: str,
    params: Params,
    token: str,
    signature: str | None,
    *,
    raw_body: bytes | None = None,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """True when ``signature`` is what Twilio would send for this request; never raises.

    ``params`` are the form parameters of a form POST (ignored when ``raw_body`` is given); pass
    ``raw_body`` for an ``application/json`` POST, whose URL must then carry a matching
    ``bodySHA256``. An empty token or signature never verifies."""
    if not token or not signature or algorithm not in _DIGESTS:
        return False
    try:
        variants = twilio_url_variants(url)
    except ValueError:
        return False
    if raw_body is not None:
        hashes = parse_qs(urlsplit(url).query, keep_blank_values=True).get("bodySHA256")
        if not hashes or not _same(body_sha256(raw_body), hashes[0]):
            return False
        params = ()
    # the parameters' part is built once; the MAC is keyed once and copied for each URL form
    keyed = hmac.new(token.encode("utf-8"), digestmod=_DIGESTS[algorithm])
    tail = _signed_params(params).encode("utf-8")
    ok = False
    for candidate in variants:  # both computed: the time taken does not say which one matched
        mac = keyed.copy()
        mac.update(candidate.encode("utf-8"))
        mac.update(tail)
        ok |= _same(_b64(mac), signature)
    return ok


def signature_algorithm(settings_header: str | None) -> str:
    """The algorithm named by ``X-Twilio-Webhooks-Signature-Settings`` (``key=…,algorithm=HMAC_SHA256``).

    A missing header means HMAC-SHA1; an unknown algorithm is returned as written, so a caller's
    check fails closed."""
    if not settings_header:
        return HMAC_SHA1
    for item in settings_header.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "algorithm":
            return value.strip().upper().replace("_", "-")
    return HMAC_SHA1


# --- Alibaba Cloud RPC (signature method V2) ---------------------------------------------------


def aliyun_percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding as Alibaba Cloud wants it: only ``A-Z a-z 0-9 - _ . ~`` stay literal."""
    return quote(value, safe="-_.~")


def aliyun_canonical_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs sorted by name, each side percent-encoded, joined by ``&`` (``Signature`` left out)."""
    return "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&<percent-encoded canonical query>``."""
    return f"{method.upper()}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(aliyun_canonical_query(params))}"


def aliyun_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed by ``AccessKeySecret + "&"``."""
    mac = hmac.new(
        (access_key_secret + "&").encode("utf-8"), aliyun_string_to_sign(method, params).encode("utf-8"), hashlib.sha1
    )
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_aliyun_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> bool:
    """True when ``params["Signature"]`` signs the other parameters; never raises."""
    signature = params.get("Signature")
    if not access_key_secret or not signature:
        return False
    return _same(aliyun_signature(method, params, access_key_secret), signature)
