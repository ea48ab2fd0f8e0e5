"""Independent signers for every scheme hookguard's sample site knows.

Everything here is computed with the standard library (hmac, hashlib,
base64) from the published description of each sender's scheme, never by
asking hookguard, so a test compares hookguard against an outside reference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


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
