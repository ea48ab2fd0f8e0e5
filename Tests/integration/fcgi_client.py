"""A minimal FastCGI responder client (one request per connection).

Used to talk to a hookguard started without nginx in front of it
(test_lifecycle.py). Follows the FastCGI 1.0 specification.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1


def _record(rtype: int, request_id: int, content: bytes) -> bytes:
    padding = (-len(content)) % 8
    return struct.pack(">BBHHBx", FCGI_VERSION_1, rtype, request_id, len(content), padding) \
        + content + b"\0" * padding


def _stream(rtype: int, request_id: int, data: bytes) -> bytes:
    out = b"".join(_record(rtype, request_id, data[i:i + 65535])
                   for i in range(0, len(data), 65535))
    return out + _record(rtype, request_id, b"")  # empty record ends the stream


def _length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params: dict[str, str]) -> bytes:
    out = b""
    for k, v in params.items():
        kb, vb = k.encode("latin-1"), v.encode("latin-1")
        out += _length(len(kb)) + _length(len(vb)) + kb + vb
    return out


@dataclass
class FcgiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    stderr: bytes = b""
    app_status: int | None = None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"FastCGI peer closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def request(socket_path: str, params: dict[str, str], body: bytes = b"",
            timeout: float = 10.0) -> FcgiResponse:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        return _exchange(sock, params, body, flags=0)


class KeptConnection:
    """One connection carrying several requests (FCGI_KEEP_CONN), as nginx's
    fastcgi_keep_conn and Apache's enablereuse do."""

    def __init__(self, socket_path: str, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(socket_path)

    def request(self, params: dict[str, str], body: bytes = b"") -> FcgiResponse:
        return _exchange(self.sock, params, body, flags=FCGI_KEEP_CONN)

    def peer_closed(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "KeptConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _exchange(sock: socket.socket, params: dict[str, str], body: bytes, flags: int,
              request_id: int = 1) -> FcgiResponse:
    msg = _record(FCGI_BEGIN_REQUEST, request_id, struct.pack(">HB5x", FCGI_RESPONDER, flags))
    msg += _stream(FCGI_PARAMS, request_id, encode_params(params))
    msg += _stream(FCGI_STDIN, request_id, body)
    sock.sendall(msg)
    stdout, stderr, app_status = b"", b"", None
    while True:
        version, rtype, rid, clen, plen = struct.unpack(">BBHHBx", _recv_exact(sock, 8))
        content = _recv_exact(sock, clen)
        _recv_exact(sock, plen)
        if rtype == FCGI_STDOUT:
            stdout += content
        elif rtype == FCGI_STDERR:
            stderr += content
        elif rtype == FCGI_END_REQUEST:
            app_status = struct.unpack(">I", content[:4])[0]
            break
    head, sep, body_out = stdout.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body_out = stdout.partition(b"\n\n")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return FcgiResponse(status, headers, body_out, stderr, app_status)


# -- pieces of a request, for clients that stop half-way (test_transport.py)

def begin_request(flags: int = 0, request_id: int = 1) -> bytes:
    """A BEGIN_REQUEST record for the responder role."""
    return _record(FCGI_BEGIN_REQUEST, request_id, struct.pack(">HB5x", FCGI_RESPONDER, flags))


def params_stream(params: dict[str, str], request_id: int = 1) -> bytes:
    """The whole PARAMS stream, ended by its empty record."""
    return _stream(FCGI_PARAMS, request_id, encode_params(params))


def record_header(rtype: int, length: int, request_id: int = 1) -> bytes:
    """Only the header of a record announcing `length` content bytes: a client
    that sends it and part of the content has stalled inside that record."""
    return struct.pack(">BBHHBx", FCGI_VERSION_1, rtype, request_id, length, 0)
