"""Independent signers for every scheme hookguard's sample site knows.

Everything here is computed with the standard library (hmac, hashlib,
base64) from the published description of each sender's scheme, never by
asking hookguard, so a test compares hookguard against an outside reference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

from senders import changed


@dataclass(frozen=True)
class Scheme:
    name: str
    header: str  # HTTP request header that carries the signature
    algorithm: str  # hashlib name
    encoding: str  # "hex", "base64" or "hex|base64" (either accepted)
    prefix: str = ""  # literal text before the encoded digest
    event_header: str | None = None  # header whose value becomes "event"
    path: str = ""  # location in the sample site

    @property
    def encodings(self) -> list[str]:
        return self.encoding.split("|")


def _s(name, header, algorithm, encoding, prefix="", event_header=None) -> Scheme:
    return Scheme(name, header, algorithm, encoding, prefix, event_header, f"/hooks/{name}")


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in [
        _s("ticketspot", "X-TS-Signature-256", "sha256", "hex", "sha256="),
        _s("tito", "Tito-Signature", "sha256", "base64", event_header="X-Webhook-Name"),
        _s("x-signature", "X-Signature", "sha256", "hex"),
        _s("tikkl", "X-Tikkl-Signature", "sha256", "hex|base64"),
        _s("x-signature-256", "X-Signature-256", "sha256", "hex", "sha256="),
        _s("github", "X-Hub-Signature-256", "sha256", "hex", "sha256=", event_header="X-GitHub-Event"),
        _s("shopify", "X-Shopify-Hmac-Sha256", "sha256", "base64", event_header="X-Shopify-Topic"),
        _s("custom", "X-Custom-Signature", "sha512", "base64", "v1="),
    ]
}

HEX_SCHEMES = [s.name for s in SCHEMES.values() if "hex" in s.encodings]
EVENT_SCHEMES = [s.name for s in SCHEMES.values() if s.event_header]


def _bytes(x: str | bytes) -> bytes:
    return x.encode("utf-8") if isinstance(x, str) else x


def digest(secret: str | bytes, body: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(_bytes(secret), body, getattr(hashlib, algorithm)).digest()


def encode(raw: bytes, encoding: str, *, upper: bool = False) -> str:
    if encoding == "hex":
        text = raw.hex()
        return text.upper() if upper else text
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    raise ValueError(f"unknown encoding {encoding!r}")


def signature(
    scheme: str | Scheme,
    secret: str | bytes,
    body: bytes,
    *,
    encoding: str | None = None,
    upper: bool = False,
) -> str:
    """The full header value (prefix included) a genuine sender would send."""
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    enc = encoding or s.encodings[0]
    assert enc in s.encodings, f"{s.name} does not use {enc}"
    return s.prefix + encode(digest(secret, body, s.algorithm), enc, upper=upper)


def sign(scheme: str | Scheme, secret: str | bytes, body: bytes, **kw) -> dict[str, str]:
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    return {s.header: signature(s, secret, body, **kw)}


def all_encodings_of_expected(scheme: str | Scheme, secret: str | bytes, body: bytes) -> list[str]:
    """Every text form of the genuine digest: none may leak into a reject."""
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    raw = digest(secret, body, s.algorithm)
    b64 = base64.b64encode(raw).decode("ascii")
    return [raw.hex(), raw.hex().upper(), b64, b64.rstrip("="),
            base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")]


def malformed_values(scheme: str | Scheme) -> list[str]:
    """Header values that are not a signature at all for this scheme
    (bad hex, bad base64, wrong or missing prefix)."""
    s = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    size = hashlib.new(s.algorithm).digest_size
    values: list[str] = []
    if s.encodings == ["hex"]:
        values += [s.prefix + "g" * (2 * size), s.prefix + "zz" + "0" * (2 * size - 2)]
    elif s.encodings == ["base64"]:
        values += [s.prefix + "*" * 44, s.prefix + "not base64 at all!"]
    else:  # hex or base64: must be neither
        values += ["%" * (2 * size), "not hex, not base64!"]
    if s.prefix:
        genuine_shape = encode(b"\x01" * size, s.encodings[0])
        values.append(genuine_shape)  # prefix missing
        values.append("bogus=" + genuine_shape)  # wrong prefix
    return values


# --------------------------------------------------------------------------
# Schemes that sign more than the body (issue 5), each written out from its
# sender's own description rather than from a shared table:
#   Standard Webhooks / Svix: base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" under the
#     base64-decoded key after "whsec_"; "v1,<sig>" entries, space-separated
#   Stripe: "t=<ts>,v1=<hex>[,v1=<hex>]", hex HMAC-SHA256 of "<ts>.<body>" under the
#     whole "whsec_..." string
#   Slack: "v0=" + hex HMAC-SHA256 of "v0:<ts>:<body>", timestamp in its own header
#   Tito (newer API): hex HMAC-SHA256 of "<ts>.<body>", timestamp in its own header
#   GitLab: the secret token itself in X-Gitlab-Token


@dataclass(frozen=True)
class Stamped:
    name: str
    signature_header: str
    timestamp_header: str | None  # None: inside the signature header (Stripe's t=)
    id_header: str | None = None  # part of the signed message for Standard Webhooks
    event_header: str | None = None

    @property
    def path(self) -> str:
        return f"/hooks/{self.name}"

    @property
    def multi(self) -> bool:
        """Whether one header can carry several signatures."""
        return self.name in ("standard-webhooks", "svix", "stripe")


STAMPED: dict[str, Stamped] = {
    s.name: s
    for s in [
        Stamped("standard-webhooks", "webhook-signature", "webhook-timestamp", "webhook-id"),
        Stamped("svix", "svix-signature", "svix-timestamp", "svix-id"),
        Stamped("stripe", "Stripe-Signature", None),
        Stamped("slack", "X-Slack-Signature", "X-Slack-Request-Timestamp"),
        Stamped("tito-timestamp", "X-Tito-Signature", "X-Tito-Timestamp", event_header="X-Tito-Webhook-Event"),
    ]
}

# GitLab: the token itself; Idempotency-Key stays the same across retries.
GITLAB = {"header": "X-Gitlab-Token", "id_header": "Idempotency-Key", "event_header": "X-Gitlab-Event"}

# The sender's delivery id header, for the schemes that have one.
ID_HEADERS = {"github": "X-GitHub-Delivery", "shopify": "X-Shopify-Webhook-Id", "gitlab": "Idempotency-Key",
              "standard-webhooks": "webhook-id", "svix": "svix-id"}

ALL_NAMES = [*SCHEMES, *STAMPED, "gitlab"]


def new_secret(name: str) -> str:
    """A fresh secret in the form the sender hands out."""
    if name in ("standard-webhooks", "svix"):
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    if name == "stripe":
        return "whsec_" + os.urandom(16).hex()
    return f"{name}-secret-{os.urandom(8).hex()}"


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _whsec_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign_stamped(name: str, secrets: str | list[str], body: bytes, *, timestamp: int | None = None,
                 delivery_id: str | None = None) -> dict[str, str]:
    """The headers a genuine sender adds. With several secrets, the header
    carries one signature per secret, in order (a sender rotating its secret)."""
    s = STAMPED[name]
    secrets = [secrets] if isinstance(secrets, str) else secrets
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers: dict[str, str] = {}
    if name in ("standard-webhooks", "svix"):
        delivery_id = delivery_id or f"msg_{os.urandom(8).hex()}"
        message = f"{delivery_id}.{ts}.".encode() + body
        headers[s.id_header] = delivery_id
        headers[s.timestamp_header] = ts
        headers[s.signature_header] = " ".join(
            "v1," + base64.b64encode(hmac.new(_whsec_key(k), message, hashlib.sha256).digest()).decode()
            for k in secrets)
    elif name == "stripe":
        message = f"{ts}.".encode() + body
        headers[s.signature_header] = f"t={ts}," + ",".join("v1=" + _hex(k.encode(), message) for k in secrets)
    elif name == "slack":
        headers[s.timestamp_header] = ts
        headers[s.signature_header] = "v0=" + _hex(secrets[0].encode(), f"v0:{ts}:".encode() + body)
    elif name == "tito-timestamp":
        headers[s.timestamp_header] = ts
        headers[s.signature_header] = _hex(secrets[0].encode(), f"{ts}.".encode() + body)
    else:
        raise ValueError(name)
    return headers


def malformed_stamped(name: str, genuine: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(what, headers, log reason) for every malformed form of a genuine set."""
    s = STAMPED[name]
    sig = genuine[s.signature_header]

    def change(header, value):
        return changed(genuine, header, value)

    cases = [("no signature header", change(s.signature_header, None), "signature-missing")]
    if s.timestamp_header:
        cases += [
            ("no timestamp header", change(s.timestamp_header, None), "signature-missing"),
            ("timestamp not Unix seconds", change(s.timestamp_header, "2023-11-14T22:13:20Z"), "signature-malformed"),
            ("timestamp in milliseconds with a fraction", change(s.timestamp_header, "1700000000.5"),
             "signature-malformed"),
        ]
    if s.id_header:
        cases.append(("no id header", change(s.id_header, None), "signature-missing"))
    if name in ("standard-webhooks", "svix"):
        raw = base64.b64decode(sig.split(",", 1)[1])
        cases += [
            ("no v1, prefix", change(s.signature_header, sig.split(",", 1)[1]), "signature-malformed"),
            ("only other versions", change(s.signature_header, "v2," + sig.split(",", 1)[1] + " v1a,AAAA"),
             "signature-malformed"),
            ("not base64", change(s.signature_header, "v1,*** v1,!!!"), "signature-malformed"),
            ("hex instead of base64", change(s.signature_header, "v1," + raw.hex()), "signature-malformed"),
        ]
    elif name == "stripe":
        t, v1 = sig.split(",", 1)
        cases += [
            ("no t=", change(s.signature_header, v1), "signature-malformed"),
            ("t= not a number", change(s.signature_header, "t=soon," + v1), "signature-malformed"),
            ("only a v0 (test mode) entry", change(s.signature_header, t + ",v0=" + v1[3:]), "signature-malformed"),
            ("v1= not hex", change(s.signature_header, t + ",v1=" + "zz" * 32), "signature-malformed"),
            ("v1= too short", change(s.signature_header, t + ",v1=abcd"), "signature-malformed"),
        ]
    elif name == "slack":
        cases += [
            ("no v0= prefix", change(s.signature_header, sig[3:]), "signature-malformed"),
            ("v0= not hex", change(s.signature_header, "v0=" + "g" * 64), "signature-malformed"),
        ]
    elif name == "tito-timestamp":
        cases += [
            ("base64 instead of hex",
             change(s.signature_header, base64.b64encode(bytes.fromhex(sig)).decode()), "signature-malformed"),
            ("not hex", change(s.signature_header, "z" * 64), "signature-malformed"),
        ]
    return cases
