"""Tests/answers.json, the answers table test_answers.py shares with the
Swift handler tests: one nginx location per case, /t/answers/<name>, with
the case's own parameters, written beside nginx-extra.conf (which includes it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import signing

TABLE = Path(__file__).resolve().parent.parent / "answers.json"


def load() -> dict:
    with open(TABLE) as f:
        return json.load(f)


def cases() -> list[dict]:
    """The cases this suite runs (a case without `suites` is for both)."""
    return [c for c in load()["cases"] if "python" in c.get("suites", ["swift", "python"])]


def location(case: dict) -> str:
    return f"/t/answers/{case['name']}"


def spool_name(case: dict) -> str:
    """The case's own spool, as Env.spool() names it."""
    return f"answers-{case['name']}"


def files_dir(prefix: Path) -> Path:
    return prefix / "answers"


def filled(text: str, prefix: Path, case: dict) -> str:
    return text.replace("{dir}", str(files_dir(prefix))) \
        .replace("{spool}", str(prefix / "spool" / spool_name(case)))


def body(case: dict) -> bytes | None:
    request = case["request"]
    if request.get("body") is None:
        return None
    b = request["body"].encode()
    size = request.get("bodySize")
    return b if size is None else (b + b" " * size)[:size]


def signature_headers(case: dict) -> dict[str, str]:
    """The signature headers the case sends, from the independent signers in signing.py."""
    request, params = case["request"], case["params"]
    signature = request.get("signature")
    if signature == "missing":
        return {}
    if signature is not None:
        return {signing.SCHEMES[params["HOOKGUARD_SCHEME"]].header: signature}
    secret = request.get("signingSecret", params.get("HOOKGUARD_SECRET", ""))
    schemes = request.get("signedAs", [params["HOOKGUARD_SCHEME"]] if "HOOKGUARD_SCHEME" in params else [])
    headers = {}
    for scheme in schemes:
        headers.update(signing.sign(scheme, secret, body(case) or b""))
    return headers


def _nginx_string(value: str) -> str:
    assert "$" not in value and "\n" not in value, f"no nginx string: {value!r}"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(prefix: Path) -> None:
    """The table's files in PREFIX/answers and its locations in
    PREFIX/conf/answers-locations.conf (after render-nginx)."""
    table = load()
    files = files_dir(prefix)
    files.mkdir(exist_ok=True)
    for name, text in table["files"].items():
        (files / name).write_text(text)
        os.chmod(files / name, 0o600)  # hookguard refuses a secret file everyone can read
    blocks = []
    for case in cases():
        lines = [f"location = {location(case)} {{"]
        lines += [f"    fastcgi_param {name} {_nginx_string(filled(value, prefix, case))};"
                  for name, value in case["params"].items()]
        if "clientSends" in case["request"]:
            # The body streams to hookguard as it arrives, so a client that goes away
            # mid-body leaves hookguard short (the snippet buffers it, and allows no second
            # fastcgi_request_buffering).
            lines += ["    fastcgi_pass hookguard;", "    include fastcgi_params;",
                      "    fastcgi_request_buffering off;"]
        else:
            lines.append(f"    include {prefix}/conf/hookguard-fastcgi.conf;")
        blocks.append("\n".join(lines) + "\n}\n")
    (prefix / "conf" / "answers-locations.conf").write_text(
        "# Written by Tests/integration/answers_table.py from Tests/answers.json.\n\n"
        + "\n".join(blocks))
