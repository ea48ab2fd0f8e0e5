"""Independent signers for the public-key presets (issue 16): Discord's Ed25519
with PyNaCl, SendGrid's ECDSA P-256/SHA-256 with `cryptography`, each from the
sender's documentation; never hookguard."""

from __future__ import annotations

import base64
import time

import nacl.signing
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

HEADERS = {
    "discord": ("X-Signature-Ed25519", "X-Signature-Timestamp"),
    "sendgrid": ("X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"),
}


class KeyPair:
    """A sender's key pair: what the location holds, and a PEM for `hookguard sign`."""

    def __init__(self, name: str):
        self.name = name
        if name == "discord":
            self.signing = nacl.signing.SigningKey.generate()
            self.public_text = self.signing.verify_key.encode().hex()
            pem_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(self.signing))
        else:
            self.signing = ec.generate_private_key(ec.SECP256R1())
            spki = self.signing.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
            self.public_text = base64.b64encode(spki).decode()
            pem_key = self.signing
        self.private_pem = pem_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())

    def signature(self, message: bytes) -> str:
        if self.name == "discord":
            return self.signing.sign(message).signature.hex()
        return base64.b64encode(self.signing.sign(message, ec.ECDSA(hashes.SHA256()))).decode()

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        sig_header, ts_header = HEADERS[self.name]
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {ts_header: ts, sig_header: self.signature(ts.encode() + body)}


def verify(name: str, public_text: str, headers: dict[str, str], body: bytes) -> bool:
    """The sender's construction checked by the libraries, for `hookguard sign`'s output."""
    sig_header, ts_header = HEADERS[name]
    h = {k.lower(): v for k, v in headers.items()}
    message = h[ts_header.lower()].encode() + body
    try:
        if name == "discord":
            nacl.signing.VerifyKey(bytes.fromhex(public_text)).verify(message, bytes.fromhex(h[sig_header.lower()]))
        else:
            key = serialization.load_der_public_key(base64.b64decode(public_text))
            key.verify(base64.b64decode(h[sig_header.lower()]), message, ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


class V1aKey:
    """A Standard Webhooks asymmetric (v1a) signer: Ed25519 over "<id>.<timestamp>.<body>"
    with PyNaCl, the public key written whpk_<base64>."""

    def __init__(self):
        self.signing = nacl.signing.SigningKey.generate()
        self.whpk = "whpk_" + base64.b64encode(self.signing.verify_key.encode()).decode()
        self.private_pem = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(self.signing)).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def entry(self, msg_id: str, ts: str, body: bytes) -> str:
        return "v1a," + base64.b64encode(self.signing.sign(f"{msg_id}.{ts}.".encode() + body).signature).decode()

    def verifies(self, headers: dict[str, str], body: bytes) -> bool:
        message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        for entry in headers["webhook-signature"].split(" "):
            if entry.startswith("v1a,"):
                try:
                    self.signing.verify_key.verify(message, base64.b64decode(entry[4:]))
                    return True
                except Exception:
                    pass
        return False
