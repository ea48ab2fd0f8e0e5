"""A real HTTP service on loopback for the `drain --to-url` tests
(test_drain_http.py): Python's http.server, HTTP/1.1 with keep-alive, over
TCP (optionally TLS) or a Unix socket. It records every request it reads
(arrival time, client connection, headers in order, body) and answers as the
test's `answer(request)` says.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Request:
    at: float
    connection: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    done: float | None = None

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def count(self, name: str) -> int:
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    @property
    def id(self) -> str | None:
        return self.header("Hookguard-Id")


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Service:
    """The recording service; `answer` may be replaced while it runs."""

    def __init__(self, answer=None, *, unix_path: Path | None = None, tls: ssl.SSLContext | None = None,
                 port: int = 0):
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self.answer = answer or (lambda request: Answer())
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else 40 ms of delayed ACK per request

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                peer = self.client_address
                request = Request(time.time(), f"{peer!r}:{id(self.connection)}", self.path,
                                  list(self.headers.items()), body)
                with service.lock:
                    service.requests.append(request)
                    answer = service.answer(request)
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    self.wfile.write(answer.body)
                    self.wfile.flush()
                except OSError:
                    pass
                request.done = time.time()

            def log_message(self, *args):
                pass

        if unix_path is not None:
            class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True

                def get_request(self):
                    conn, _ = super().get_request()
                    return conn, ("unix", 0)

            class UnixHandler(Handler):
                disable_nagle_algorithm = False  # TCP_NODELAY is TCP's only

            self.server = Server(str(unix_path), UnixHandler)
            self.url = None
        else:
            class Server(http.server.ThreadingHTTPServer):
                daemon_threads = True
                allow_reuse_address = True

            self.server = Server(("127.0.0.1", port), Handler)
            if tls is not None:
                self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.port = self.server.server_address[1]
            self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hooks/in"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def by_id(self) -> dict[str, list[Request]]:
        result: dict[str, list[Request]] = {}
        for request in self.snapshot():
            result.setdefault(request.id or "", []).append(request)
        return result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def make_tls(directory: Path, names: list[str]) -> tuple[Path, ssl.SSLContext]:
    """A self-signed CA (its PEM file returned) and a server context whose
    certificate, signed by it, names only `names` (DNS names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookguard test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / f"server-{names[0]}.pem"
    key_file = directory / f"server-{names[0]}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


def closed_port() -> int:
    """A loopback port nothing listens on (for now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
