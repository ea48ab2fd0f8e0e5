"""Independent signers for the catalog's presets (issue 16), written from each
sender's own documentation with Python's hmac, hashlib and base64 — never from
hookguard's code. Used by the integration tests and by the vector generator
(Tests/HookguardTests/Vectors/make_catalog.py).

A sender is described by: the signature header, the HMAC's hash and encoding,
the text before each MAC, the signed message as a template over {id}, {ts} and
{body}, where the timestamp is (own header, or a field of the signature list)
and how it is written, the list separator, and how the secret becomes a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Sender:
    name: str
    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"  # hex | base64
    prefix: str = ""
    template: str = "{body}"
    ts_header: str | None = None
    ts_field: str | None = None  # an entry of the signature header, e.g. "t="
    ts_format: str = "seconds"  # seconds | milliseconds | rfc3339
    separator: str | None = None  # between the entries of the signature header
    id_header: str | None = None
    event_header: str | None = None
    key: str = "raw"  # raw: the secret's bytes; whsec: base64 after "whsec_"
    tolerance: int = 300

    @property
    def timed(self) -> bool:
        return "{ts}" in self.template

    @property
    def multi(self) -> bool:
        """Whether one header can carry several signatures (rotation)."""
        return self.separator is not None

    @property
    def digest_size(self) -> int:
        return hashlib.new(self.algorithm).digest_size


def _svix(name: str) -> Sender:
    return Sender(name, "svix-signature", encoding="base64", prefix="v1,", template="{id}.{ts}.{body}",
                  ts_header="svix-timestamp", separator=" ", id_header="svix-id", key="whsec")


def _stripe_like(name: str, header: str, **kw) -> Sender:
    return Sender(name, header, prefix="v1=", template="{ts}.{body}", ts_field="t=", separator=",", **kw)


SENDERS: dict[str, Sender] = {s.name: s for s in [
    # docs.github.com "Webhook events and payloads": X-Hub-Signature, sha1= + hex
    Sender("github-sha1", "X-Hub-Signature", "sha1", prefix="sha1=", id_header="X-GitHub-Delivery",
           event_header="X-GitHub-Event"),
    # Bitbucket Cloud "Manage webhooks": X-Hub-Signature: sha256=<hex>
    Sender("bitbucket", "X-Hub-Signature", prefix="sha256=", id_header="X-Request-UUID", event_header="X-Event-Key"),
    # docs.gitea.com: X-Gitea-Signature, hex HMAC-SHA256 of the body
    Sender("gitea", "X-Gitea-Signature", id_header="X-Gitea-Delivery", event_header="X-Gitea-Event"),
    Sender("forgejo", "X-Forgejo-Signature", id_header="X-Forgejo-Delivery", event_header="X-Forgejo-Event"),
    # Meta Graph API webhooks: X-Hub-Signature-256: sha256=<hex> under the app secret
    Sender("meta", "X-Hub-Signature-256", prefix="sha256="),
    # Intercom: X-Hub-Signature: sha1=<hex> under the client secret
    Sender("intercom", "X-Hub-Signature", "sha1", prefix="sha1="),
    # Lemon Squeezy: X-Signature, hex HMAC-SHA256
    Sender("lemonsqueezy", "X-Signature", event_header="X-Event-Name"),
    # Typeform: Typeform-Signature: sha256=<base64>
    Sender("typeform", "Typeform-Signature", encoding="base64", prefix="sha256="),
    # Vercel: x-vercel-signature, hex HMAC-SHA1
    Sender("vercel", "x-vercel-signature", "sha1"),
    # Coinbase Commerce: X-CC-Webhook-Signature, hex HMAC-SHA256
    Sender("coinbase", "X-CC-Webhook-Signature"),
    # Dropbox: X-Dropbox-Signature, hex HMAC-SHA256 under the app secret
    Sender("dropbox", "X-Dropbox-Signature"),
    # Sentry integration platform: Sentry-Hook-Signature, hex HMAC-SHA256 under the client secret
    Sender("sentry", "Sentry-Hook-Signature", id_header="Request-ID", event_header="Sentry-Hook-Resource"),
    # DocuSign Connect HMAC: X-DocuSign-Signature-1, base64 HMAC-SHA256
    Sender("docusign", "X-DocuSign-Signature-1", encoding="base64"),
    # Razorpay: X-Razorpay-Signature, hex HMAC-SHA256
    Sender("razorpay", "X-Razorpay-Signature", id_header="X-Razorpay-Event-Id"),
    # WooCommerce: X-WC-Webhook-Signature, base64 HMAC-SHA256
    Sender("woocommerce", "X-WC-Webhook-Signature", encoding="base64", id_header="X-WC-Webhook-Delivery-ID",
           event_header="X-WC-Webhook-Topic"),
    # Xero: x-xero-signature, base64 HMAC-SHA256
    Sender("xero", "x-xero-signature", encoding="base64"),
    # Linear: Linear-Signature, hex HMAC-SHA256
    Sender("linear", "Linear-Signature", id_header="Linear-Delivery", event_header="Linear-Event"),
    # PagerDuty v3: X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]
    Sender("pagerduty", "X-PagerDuty-Signature", prefix="v1=", separator=","),
    # Clerk and Resend deliver through Svix
    _svix("clerk"),
    _svix("resend"),
    # Paddle Billing: Paddle-Signature: ts=<unix>;h1=<hex> over "<ts>:<body>" (its SDK allows 5 s)
    Sender("paddle", "Paddle-Signature", prefix="h1=", template="{ts}:{body}", ts_field="ts=", separator=";",
           tolerance=5),
    # Zoom: x-zm-signature: v0=<hex> of "v0:<ts>:<body>", x-zm-request-timestamp
    Sender("zoom", "x-zm-signature", prefix="v0=", template="v0:{ts}:{body}", ts_header="x-zm-request-timestamp"),
    # Twitch EventSub: sha256=<hex> of id + timestamp + body, RFC 3339 timestamps, 10 minutes
    Sender("twitch", "Twitch-Eventsub-Message-Signature", prefix="sha256=", template="{id}{ts}{body}",
           ts_header="Twitch-Eventsub-Message-Timestamp", ts_format="rfc3339",
           id_header="Twitch-Eventsub-Message-Id", event_header="Twitch-Eventsub-Subscription-Type", tolerance=600),
    # Calendly: Calendly-Webhook-Signature: t=<unix>,v1=<hex> of "<t>.<body>" (3 minutes)
    _stripe_like("calendly", "Calendly-Webhook-Signature", tolerance=180),
    # Mux: Mux-Signature: t=<unix>,v1=<hex>
    _stripe_like("mux", "Mux-Signature"),
    # Zendesk: base64 HMAC-SHA256 of timestamp + body, ISO 8601 timestamp header
    Sender("zendesk", "X-Zendesk-Webhook-Signature", encoding="base64", template="{ts}{body}",
           ts_header="X-Zendesk-Webhook-Signature-Timestamp", ts_format="rfc3339",
           id_header="X-Zendesk-Webhook-Invocation-Id"),
    # WorkOS: WorkOS-Signature: t=<unix ms>, v1=<hex> of "<t>.<body>" (its SDKs allow 180 s)
    _stripe_like("workos", "WorkOS-Signature", ts_format="milliseconds", tolerance=180),
]}


def timestamp_text(sender: Sender, seconds: int, *, nanos: int = 0) -> str:
    if sender.ts_format == "seconds":
        return str(seconds)
    if sender.ts_format == "milliseconds":
        return str(seconds * 1000 + nanos // 1_000_000)
    when = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return when + (f".{nanos:09d}" if nanos else "") + "Z"


def key_of(sender: Sender, secret: str) -> bytes:
    if sender.key == "whsec":
        text = secret.removeprefix("whsec_")
        return base64.b64decode(text + "=" * (-len(text) % 4))
    return secret.encode()


def mac(sender: Sender, secret: str, message: bytes) -> str:
    raw = hmac.new(key_of(sender, secret), message, getattr(hashlib, sender.algorithm)).digest()
    return raw.hex() if sender.encoding == "hex" else base64.b64encode(raw).decode()


def message(sender: Sender, body: bytes, ts: str, delivery_id: str) -> bytes:
    head, tail = sender.template.split("{body}")
    return head.format(id=delivery_id, ts=ts).encode() + body + tail.format(id=delivery_id, ts=ts).encode()


def new_secret(name: str) -> str:
    sender = SENDERS[name]
    if sender.key == "whsec":
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    return f"{name}-{os.urandom(10).hex()}"


def sign(name: str, secrets: str | list[str], body: bytes, *, timestamp: int | None = None,
         delivery_id: str | None = None, nanos: int | None = None) -> dict[str, str]:
    """The headers a genuine sender adds. With several secrets, a sender that
    can list signatures carries one per secret; others sign with the first."""
    s = SENDERS[name]
    secrets = [secrets] if isinstance(secrets, str) else secrets
    seconds = int(time.time()) if timestamp is None else timestamp
    ts = timestamp_text(s, seconds, nanos=os.getpid() * 7919 % 999_999_999 if nanos is None else nanos)
    delivery_id = delivery_id or f"dlv-{os.urandom(8).hex()}"
    msg = message(s, body, ts, delivery_id)
    signatures = [s.prefix + mac(s, k, msg) for k in (secrets if s.multi else secrets[:1])]
    headers: dict[str, str] = {}
    if s.id_header:
        headers[s.id_header] = delivery_id
    if s.ts_header:
        headers[s.ts_header] = ts
    value = s.separator.join(signatures) if s.multi else signatures[0]
    if s.ts_field:
        value = f"{s.ts_field}{ts}{s.separator}{value}"
    headers[s.header] = value
    return headers


def changed(headers: dict[str, str], header: str, value: str | None) -> dict[str, str]:
    """A copy of `headers` with one header set to `value`, or removed (None)."""
    h = dict(headers)
    if value is None:
        h.pop(header, None)
    else:
        h[header] = value
    return h


def malformed(name: str, genuine: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(what, headers, log reason) for every malformed form of a genuine set."""
    s = SENDERS[name]

    def change(header, value):
        return changed(genuine, header, value)

    size = s.digest_size
    good_shape = (b"\x01" * size).hex() if s.encoding == "hex" else base64.b64encode(b"\x01" * size).decode()
    other_shape = base64.b64encode(b"\x01" * size).decode() if s.encoding == "hex" else (b"\x01" * size).hex()
    ts_part = f"{s.ts_field}{genuine[s.header].split(s.separator)[0][len(s.ts_field):]}{s.separator}" if s.ts_field else ""
    cases = [
        ("no signature header", change(s.header, None), "signature-missing"),
        ("not the encoding", change(s.header, ts_part + s.prefix + "*" * (2 * size)), "signature-malformed"),
        ("the other encoding", change(s.header, ts_part + s.prefix + other_shape), "signature-malformed"),
        ("too short", change(s.header, ts_part + s.prefix + good_shape[:8]), "signature-malformed"),
    ]
    if s.prefix:
        cases.append(("no prefix", change(s.header, ts_part + good_shape), "signature-malformed"))
    if s.ts_header:
        cases += [
            ("no timestamp header", change(s.ts_header, None), "signature-missing"),
            ("timestamp in another format", change(s.ts_header, "yesterday"), "signature-malformed"),
        ]
    if s.ts_field:
        rest = genuine[s.header].split(s.separator, 1)[1]
        cases += [
            (f"no {s.ts_field}", change(s.header, rest), "signature-malformed"),
            (f"{s.ts_field} not a time", change(s.header, f"{s.ts_field}soon{s.separator}{rest}"), "signature-malformed"),
        ]
    if s.id_header and "{id}" in s.template:
        cases.append(("no id header", change(s.id_header, None), "signature-missing"))
    return cases
