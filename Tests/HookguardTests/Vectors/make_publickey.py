#!/usr/bin/env python3
"""Writes publickey.json: known answers for discord (Ed25519, PyNaCl) and
sendgrid (ECDSA P-256/SHA-256, cryptography), plus SendGrid's own SDK test
vector and RFC 8032's Ed25519 test vectors 1-3. Never from hookguard.
Run from this directory: python3 make_publickey.py"""
import base64
import json

import nacl.signing
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

BODY = '{"type":2,"id":"evt_1","data":{"name":"Paul Campbell","note":"caf\u00e9"}}'
TS = 1700000000
out = {"schemes": [], "rfc8032": []}

# Discord: Ed25519 over timestamp + body; the public key in hex. A fixed seed, so the
# signature (deterministic) is the same on every run, and hookguard's signer must match it.
seed = bytes(range(1, 33))
key = nacl.signing.SigningKey(seed)
pem = ed25519.Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
signature = key.sign(f"{TS}{BODY}".encode()).signature.hex()
other = nacl.signing.SigningKey(bytes(range(101, 133))).verify_key.encode().hex()
out["schemes"].append({"scheme": "discord", "public_key": key.verify_key.encode().hex(), "other_public_key": other,
                       "private_key_pem": pem, "now": TS, "body": BODY,
                       "headers": {"X-Signature-Timestamp": str(TS), "X-Signature-Ed25519": signature},
                       "deterministic": True, "note": "PyNaCl"})

# SendGrid: ECDSA P-256 / SHA-256 over timestamp + body, base64 DER signature; the key is
# base64 of the DER SubjectPublicKeyInfo.
def spki(k):
    return base64.b64encode(k.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
ec_key = ec.derive_private_key(0x5EED5EED5EED5EED5EED, ec.SECP256R1())
ec_other = ec.derive_private_key(0xBADBAD, ec.SECP256R1())
ec_pem = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
ec_sig = base64.b64encode(ec_key.sign(f"{TS}{BODY}".encode(), ec.ECDSA(hashes.SHA256()))).decode()
out["schemes"].append({"scheme": "sendgrid", "public_key": spki(ec_key), "other_public_key": spki(ec_other),
                       "private_key_pem": ec_pem, "now": TS, "body": BODY,
                       "headers": {"X-Twilio-Email-Event-Webhook-Timestamp": str(TS),
                                   "X-Twilio-Email-Event-Webhook-Signature": ec_sig},
                       "deterministic": False, "note": "cryptography"})

# SendGrid's own test vector (sendgrid-python test/unit/test_eventwebhook.py).
sg_payload = json.dumps([{"email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
                          "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                          "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                          "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                          "timestamp": 1600112492}], sort_keys=True, separators=(",", ":")) + "\r\n"
out["schemes"].append({
    "scheme": "sendgrid",
    "public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
    "other_public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==",
    "private_key_pem": None, "now": 1600112502, "body": sg_payload,
    "headers": {"X-Twilio-Email-Event-Webhook-Timestamp": "1600112502",
                "X-Twilio-Email-Event-Webhook-Signature": "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="},
    "deterministic": False, "note": "published example (sendgrid-python test_eventwebhook.py)"})

# Standard Webhooks v1a: Ed25519 over "<id>.<timestamp>.<body>", "v1a,<base64>" entries; the public
# key is "whpk_<base64 raw key>" (the spec's asymmetric form). PyNaCl, fixed seed (deterministic).
sw_seed = bytes(range(33, 65))
sw_key = nacl.signing.SigningKey(sw_seed)
sw_pem = ed25519.Ed25519PrivateKey.from_private_bytes(sw_seed).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
sw_public = "whpk_" + base64.b64encode(sw_key.verify_key.encode()).decode()
sw_other = "whpk_" + base64.b64encode(nacl.signing.SigningKey(bytes(range(65, 97))).verify_key.encode()).decode()
sw_sig = "v1a," + base64.b64encode(sw_key.sign(f"msg_v1a.{TS}.{BODY}".encode()).signature).decode()
out["standard_webhooks_v1a"] = {"public_key": sw_public, "other_public_key": sw_other, "private_key_pem": sw_pem,
                                "now": TS, "body": BODY,
                                "headers": {"webhook-id": "msg_v1a", "webhook-timestamp": str(TS),
                                            "webhook-signature": sw_sig}}

# RFC 8032 section 7.1, tests 1-3 (public key, message, signature).
out["rfc8032"] = [
    {"public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "message": "",
     "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"public_key": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "message": "72",
     "signature": "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"public_key": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "message": "af82",
     "signature": "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
]
for v in out["rfc8032"]:  # checked here with PyNaCl too
    nacl.signing.VerifyKey(bytes.fromhex(v["public_key"])).verify(bytes.fromhex(v["message"]), bytes.fromhex(v["signature"]))

with open("publickey.json", "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(out["schemes"]), "scheme vectors,", len(out["rfc8032"]), "RFC 8032 vectors, 1 v1a vector")
