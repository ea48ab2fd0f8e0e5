"""pytest fixtures for the hookguard integration tests (see harness.py).

  prefix  session: a rendered PREFIX (nginx config, secrets, spools); no processes
  env     session: hookguard and nginx running on that PREFIX (harness.Env)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Env, Prefix, check_binary, free_port_pair, start_hookguard,  # noqa: E402
                     start_nginx, stop, tail, wait_hookguard_ready)


@pytest.fixture(scope="session")
def prefix() -> Prefix:
    path = Path(tempfile.mkdtemp(prefix="hookguard-it-"))
    p = Prefix(path, free_port_pair())
    p.render()
    yield p
    if os.environ.get("HOOKGUARD_KEEP_PREFIX"):
        print(f"\nhookguard integration PREFIX kept at {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def env(prefix: Prefix):
    check_binary()
    hookguard = start_hookguard(prefix.socket, prefix.log, prefix.path,
                                extra_args=["--metrics-listen", f"127.0.0.1:{prefix.metrics_port}"])
    try:
        wait_hookguard_ready(hookguard, prefix.socket, prefix.log)
    except RuntimeError as e:
        stop(hookguard, signal.SIGKILL, 5)
        pytest.fail(str(e), pytrace=False)

    try:
        nginx = start_nginx(prefix)
    except RuntimeError as e:
        stop(hookguard, signal.SIGTERM, 10)
        pytest.fail(str(e), pytrace=False)

    e = Env(prefix, hookguard, nginx)
    yield e

    stop(nginx, signal.SIGQUIT, 10)
    code = stop(hookguard, signal.SIGTERM, 10)
    assert code == 0, f"hookguard did not exit 0 on SIGTERM (got {code})\n{tail(prefix.log)}"
    assert not prefix.socket.exists(), f"hookguard left its socket {prefix.socket} behind"
