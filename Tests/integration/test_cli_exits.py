"""Exit statuses of the subcommands: 1 with the system's reason (strerror) when
they fail at run time on I/O, 64 (argument-parser's usage error) for bad flags."""
import errno
import os
import subprocess

import pytest

from harness import HOOKGUARD_BIN


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOOKGUARD_BIN), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


MISSING = "/nonexistent-hookguard-test/file"
NO_SUCH = os.strerror(errno.ENOENT)


@pytest.mark.parametrize("args, words", [
    (["spool", MISSING], f"cannot read the spool: stat({MISSING}): {NO_SUCH}"),
    (["sign", "--scheme", "github", "--secret", "x", MISSING], f"cannot read the body: open({MISSING}): {NO_SUCH}"),
    (["verify", "--scheme", "github", "--secret", "x", MISSING], f"cannot read the body: open({MISSING}): {NO_SUCH}"),
    (["doctor", "--nginx", MISSING], f"open({MISSING}): {NO_SUCH}"),
    (["doctor", "--env-file", MISSING], f"open({MISSING}): {NO_SUCH}"),
    (["nats-publish", "nats://127.0.0.1:4222", "hooks.{scheme}", MISSING],
     f"cannot read the envelope: open({MISSING}): {NO_SUCH}"),
    (["drain", "/tmp", "--to-url", "http://127.0.0.1:9/", "--ca-file", MISSING], f"--ca-file: open({MISSING}): {NO_SUCH}"),
    (["drain", "/tmp", "--to-url", "http://127.0.0.1:9/", "--header-file", f"X-Token:{MISSING}"],
     f"--header-file: open({MISSING}): {NO_SUCH}"),
    (["sign", "--scheme", "discord", "--private-key-file", MISSING, "/dev/null"],
     f"--private-key-file: open({MISSING}): {NO_SUCH}"),
    (["serve", "--listen", "unix:/nonexistent-hookguard-test/hg.sock", "--log-file", MISSING],
     f"cannot open --log-file {MISSING}: {NO_SUCH}"),
])
def test_a_runtime_io_failure_exits_1_with_the_system_reason(args, words):
    r = run(*args)
    assert r.returncode == 1, (args, r)
    assert words in r.stderr, (args, r)
    assert "Usage:" not in r.stderr, (args, r)


def test_a_directory_given_as_a_file_says_is_a_directory(tmp_path):
    r = run("sign", "--scheme", "github", "--secret", "x", str(tmp_path))
    assert r.returncode == 1, r
    assert f"read({tmp_path}): {os.strerror(errno.EISDIR)}" in r.stderr, r


@pytest.mark.parametrize("args, words", [
    (["spool", "--no-such-flag", "/tmp"], "--no-such-flag"),
    (["sign", "--scheme", "github", "--secret", "x", "--timestamp", "-1", "/dev/null"], "--timestamp"),
    (["drain", "/tmp", "--concurrency", "0", "--", "true"], "--concurrency"),
    (["nats-publish", "http://127.0.0.1:4222", "hooks.x", "/dev/null"], "nats:// URL"),
])
def test_a_bad_flag_still_exits_64_with_the_usage(args, words):
    r = run(*args)
    assert r.returncode == 64, (args, r)
    assert words in r.stderr and "Usage:" in r.stderr, (args, r)
