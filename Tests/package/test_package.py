"""The Debian package, as an operator meets it (issue 14): scripts/package
builds hookguard_<version>_<arch>.deb, `apt-get install ./…` installs it, and
the installed hookguard runs with the Swift toolchain hidden (an empty
directory bind-mounted over it in a private mount namespace), started as the
packaged units would start it (systemd-socket-activate with the installed
.socket's ListenStream and the .service's ExecStart, User= and UMask=), behind
a private nginx that includes the installed snippet. Then `man hookguard`,
and `dpkg --remove` and `--purge`: nothing of the package is left, and the
spool's contents survive the remove.

Root only (it installs a package and makes a system user); run once, not
once per sanitizer (scripts/test). HOOKGUARD_DEB names a package already
built; otherwise the test builds one with scripts/package. Everything the
test installs, makes or starts is removed at the end."""

from __future__ import annotations

import configparser
import grp
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

import signing  # noqa: E402
from checks import UUID7  # noqa: E402
from harness import NGINX, free_port, port_open, stop, tail, wait_until  # noqa: E402

PACKAGE = "hookguard"
USER = "hookguard"
WEB_USER = "www-data"
SPOOL_ROOT = Path("/var/spool/hookguard")
SECRETS = Path("/etc/hookguard")
UNITS = Path("/lib/systemd/system")
SNIPPET = Path("/etc/nginx/snippets/hookguard-fastcgi.conf")
# Where deb-systemd-helper keeps what it enabled or masked, and a2enconf what it enabled.
STATE_DIRS = [Path("/etc/systemd/system"), Path("/var/lib/systemd/deb-systemd-helper-enabled"),
              Path("/var/lib/systemd/deb-systemd-helper-masked"), Path("/etc/apache2/conf-enabled")]
# a2enconf's record of the administrator's own choice, which purge leaves (as
# Debian's apache2 helper does for every package): the test's to remove.
A2ENCONF_RECORD = Path("/var/lib/apache2/conf/enabled_by_admin/hookguard")
DPKG_LOCK_WAIT = 300  # seconds: other apt or dpkg runs on a shared machine

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs a Debian package: root only")


def run(*argv: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def dpkg(*args: str) -> subprocess.CompletedProcess:
    """dpkg, waiting (bounded) while another apt or dpkg holds its lock."""
    deadline = time.monotonic() + DPKG_LOCK_WAIT
    while True:
        r = run("dpkg", *args, check=False)
        locked = "lock" in r.stderr and ("held by" in r.stderr or "locked" in r.stderr)
        if r.returncode == 0 or not locked or time.monotonic() > deadline:
            assert r.returncode == 0, f"dpkg {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}"
            return r
        time.sleep(2)


def installed() -> bool:
    r = run("dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE, check=False)
    return r.returncode == 0 and r.stdout == "installed"


def known_to_dpkg() -> bool:
    """Installed, or removed with its conffiles left: anything but purged."""
    r = run("dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE, check=False)
    return r.returncode == 0 and r.stdout not in ("", "not-installed")


def state_names() -> set[Path]:
    return {p for d in STATE_DIRS if d.exists() for p in d.rglob("*hookguard*")}


def unit_setting(path: Path, section: str, key: str) -> str:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser[section][key]


def toolchain_root() -> Path:
    swift = shutil.which("swift")
    assert swift, "no swift on PATH: the test hides the toolchain, so it needs to know where it is"
    return Path(os.path.realpath(swift)).parent.parent.parent


class Installed:
    """What the module's tests share: the package, where it came from, and
    the state of the machine before it was installed."""

    def __init__(self, deb: Path, work: Path):
        self.deb = deb
        self.work = work
        self.files: list[Path] = []  # dpkg -L once installed
        self.existed_before: set[Path] = set()
        self.spool_entries: dict[Path, bytes] = {}  # what must survive `dpkg --remove`
        self.a2enconf_record = False  # the test's a2enconf made A2ENCONF_RECORD


@pytest.fixture(scope="module")
def package():
    if known_to_dpkg():
        pytest.fail(f"{PACKAGE} is already known to dpkg on this machine; the test installs and "
                    f"purges its own (dpkg --purge {PACKAGE} first)", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="hookguard-package-"))
    os.chmod(work, 0o711)  # nginx's workers (www-data) reach the socket under it
    user_existed = _user_exists(USER)
    p = None
    try:
        p = Installed(built_package(work), work)
        p.existed_before = {Path(x) for x in _paths_in(p.deb) if Path(x).exists()} \
            | state_names()
        # The README's route: apt installs it and whatever it depends on.
        run("apt-get", "install", "-y", "-q", "--no-install-recommends",
            "-o", "DPkg::Lock::Timeout=600", str(p.deb.resolve()), timeout=900,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        p.files = [Path(x) for x in run("dpkg", "-L", PACKAGE).stdout.splitlines() if x != "/."]
        yield p
    finally:
        if known_to_dpkg():
            dpkg("--purge", PACKAGE)
        if p is not None and p.a2enconf_record:
            A2ENCONF_RECORD.unlink(missing_ok=True)
        if not user_existed and _user_exists(USER):
            run("deluser", "--quiet", "--system", USER, check=False)
            if _group_exists(USER):
                run("delgroup", "--quiet", "--system", USER, check=False)
        shutil.rmtree(work, ignore_errors=True)


def built_package(work: Path) -> Path:
    """HOOKGUARD_DEB, or what scripts/package builds into work/out."""
    started = time.monotonic()
    if os.environ.get("HOOKGUARD_DEB"):
        deb = Path(os.environ["HOOKGUARD_DEB"])
    else:
        r = run(str(REPO / "scripts" / "package"), str(work / "out"), timeout=1800, cwd=REPO)
        deb = Path(r.stdout.strip().splitlines()[-1])
        # lintian's findings (warnings and notes; an error fails scripts/package)
        findings = [l for l in r.stderr.splitlines() if re.match(r"[EWIPX]: ", l)]
        print(f"\nlintian: {len(findings)} findings", *findings, sep="\n")
    assert deb.is_file() and re.fullmatch(r"hookguard_[^_]+_[a-z0-9]+\.deb", deb.name), deb
    print(f"\npackage {deb.name}: {deb.stat().st_size} bytes, built in "
          f"{time.monotonic() - started:.1f} s")
    return deb


def _paths_in(deb: Path) -> list[str]:
    """Every path in the package, as dpkg would install it."""
    listing = run("sh", "-c", f"dpkg-deb --fsys-tarfile {shlex.quote(str(deb))} | tar -t").stdout
    return ["/" + x.removeprefix("./").rstrip("/") for x in listing.splitlines() if x.strip("./")]


def _user_exists(name: str) -> bool:
    return _known(pwd.getpwnam, name)


def _group_exists(name: str) -> bool:
    return _known(grp.getgrnam, name)


def _known(lookup, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


# --------------------------------------------------------------------------
# what was installed


def test_package_fields(package):
    fields = {name: run("dpkg-deb", "-f", str(package.deb), name).stdout.strip()
              for name in ("Package", "Version", "Architecture", "Depends", "Installed-Size")}
    print(f"\n{fields}")
    version = run("/usr/bin/hookguard", "--version").stdout.strip()
    assert fields["Version"] == version, (fields, version)
    assert package.deb.name == f"hookguard_{version}_{fields['Architecture']}.deb"
    assert fields["Architecture"] == run("dpkg", "--print-architecture").stdout.strip()
    # dpkg-shlibdeps: Debian's libraries, each with the version the binary needs.
    depends = {d.split()[0] for d in re.split(r",\s*", fields["Depends"])}
    for library in ("libc6", "libfcgi0ldbl", "libssl3"):
        assert library in depends, fields["Depends"]
    assert any(d.startswith("libnats") for d in depends), fields["Depends"]
    assert "adduser" in depends, fields["Depends"]
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE).stdout
    for conffile in (SNIPPET, Path("/etc/apache2/conf-available/hookguard.conf")):
        assert f" {conffile} " in conffiles, conffiles


def test_installed_layout(package):
    files = set(package.files)
    for path in ("/usr/bin/hookguard", f"{UNITS}/hookguard.socket", f"{UNITS}/hookguard.service",
                 str(SNIPPET), "/etc/apache2/conf-available/hookguard.conf",
                 "/usr/share/doc/hookguard/copyright", "/usr/share/doc/hookguard/changelog.gz",
                 "/usr/share/doc/hookguard/examples/nginx/hookguard-site.conf",
                 "/usr/share/doc/hookguard/examples/apache/hookguard-proxy-fcgi.conf",
                 "/usr/share/doc/hookguard/README.md.gz",
                 "/usr/share/doc/hookguard/docs/configuration.md.gz",
                 "/usr/share/man/man1/hookguard.1.gz", "/usr/share/man/man1/hookguard-serve.1.gz"):
        assert Path(path) in files and Path(path).exists(), f"{path} not installed"

    # The README's modes: the spool hookguard's alone, the secrets readable by its group.
    user = pwd.getpwnam(USER)
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user
    assert grp.getgrgid(user.pw_gid).gr_name == USER
    for path, owner, group in ((SPOOL_ROOT, USER, USER), (SECRETS, "root", USER)):
        st = path.stat()
        assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                oct(st.st_mode & 0o7777)) == (owner, group, "0o750"), path

    # The units name the installed binary; the socket unit is enabled (Debian's convention).
    assert unit_setting(UNITS / "hookguard.service", "Service", "ExecStart") \
        == "/usr/bin/hookguard serve"
    assert Path("/etc/systemd/system/sockets.target.wants/hookguard.socket").is_symlink()
    units = [str(UNITS / "hookguard.socket"), str(UNITS / "hookguard.service")]
    r = run("systemd-analyze", "verify", "--man=no", *units, check=False)
    assert r.returncode == 0, r


APACHE_CONF = """
ServerRoot "{work}"
ServerName 127.0.0.1
PidFile "{work}/apache2.pid"
DefaultRuntimeDir "{work}"
Mutex file:{work} default
ErrorLog "{work}/apache-error.log"
Listen 127.0.0.1:{port}
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
Include "{conf}"
"""


def test_apache_conf_available_parses(package):
    """/etc/apache2/conf-available/hookguard.conf as a2enconf would enable
    it (with proxy_fcgi and env, as its header says), its sample Location
    uncommented: Apache accepts it."""
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    if not Path(apache).exists():
        pytest.skip("apache2 is not installed")
    installed_conf = Path("/etc/apache2/conf-available/hookguard.conf")
    work = Path(tempfile.mkdtemp(prefix="apache-", dir=package.work))
    enabled = work / "hookguard.conf"
    enabled.write_text(re.sub(r"(?m)^    # ( *<|    SetEnv|    ProxyPass)", r"    \1",
                              installed_conf.read_text()))
    assert "\n    <Location \"/hooks/tito\">" in enabled.read_text(), enabled.read_text()
    (work / "httpd.conf").write_text(APACHE_CONF.format(work=work, port=free_port(),
                                                        conf=enabled))
    r = run(apache, "-t", "-f", str(work / "httpd.conf"), check=False)
    assert r.returncode == 0 and "Syntax OK" in r.stderr, r


def test_binary_needs_no_toolchain(package):
    toolchain = toolchain_root()
    libraries = run("ldd", "/usr/bin/hookguard").stdout
    assert str(toolchain) not in libraries, libraries
    assert "libswift" not in libraries and "libFoundation" not in libraries, libraries
    version = run("/usr/bin/hookguard", "--version").stdout.strip()
    hidden = hide_toolchain("/usr/bin/hookguard", "--version")
    assert hidden.returncode == 0 and hidden.stdout.strip() == version, hidden
    # The hiding is real: the toolchain's own swift is gone in there...
    swift = hide_toolchain(str(toolchain / "usr" / "bin" / "swift"), "--version")
    assert swift.returncode != 0, swift
    # ...and a hookguard linked against the toolchain's runtime cannot start.
    dynamic = Path(os.environ.get("HOOKGUARD_BIN") or REPO / ".build" / "debug" / "hookguard")
    if dynamic.exists() and "libswiftCore" in run("ldd", str(dynamic)).stdout:
        r = hide_toolchain(str(dynamic), "--help")
        assert r.returncode != 0 and "error while loading shared libraries: libswift" in r.stderr, r


def hide_toolchain(*argv: str) -> subprocess.CompletedProcess:
    empty = tempfile.mkdtemp(prefix="hookguard-empty-")
    try:
        return run(*hidden_command(Path(empty), list(argv)), check=False, timeout=60)
    finally:
        os.rmdir(empty)


def hidden_command(empty: Path, argv: list[str], umask: str = "0022") -> list[str]:
    """argv in a private mount namespace with an empty directory over the toolchain."""
    script = 'mount --bind "$1" "$2" && umask "$3" && shift 3 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(empty), str(toolchain_root()), umask, *argv]


# --------------------------------------------------------------------------
# the installed units, behind nginx with the installed snippet


NGINX_CONF = """
user {web_user};
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    fastcgi_temp_path {work}/fastcgi_temp;
    proxy_temp_path {work}/proxy_temp;
    uwsgi_temp_path {work}/uwsgi_temp;
    scgi_temp_path {work}/scgi_temp;
    upstream hookguard {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port};
        location = /hooks/github {{
            fastcgi_param HOOKGUARD_SCHEME      github;
            fastcgi_param HOOKGUARD_SECRET_FILE {secret_file};
            fastcgi_param HOOKGUARD_SPOOL       {spool};
            include {snippet};
        }}
    }}
}}
"""


def post(port: int, body: bytes, headers: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("POST", "/hooks/github", body=body,
                     headers={"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_genuine_and_forged_delivery_through_the_installed_units(package):
    work = package.work
    tag = os.urandom(4).hex()
    secret = f"package-secret-{os.urandom(8).hex()}"
    secret_file = SECRETS / f"package-test-{tag}.secret"
    spool = SPOOL_ROOT / f"package-test-{tag}"
    # As an administrator does (README, docs/apache-cgi-systemd.md): root:hookguard 0640.
    secret_file.write_text(f"# GitHub\n{secret}\n")
    shutil.chown(secret_file, "root", USER)
    os.chmod(secret_file, 0o640)

    # The socket unit's ListenStream and owner, moved under the test's directory.
    socket_unit, service_unit = UNITS / "hookguard.socket", UNITS / "hookguard.service"
    listen = Path(unit_setting(socket_unit, "Socket", "ListenStream"))
    socket_path = work / "run" / listen.name
    socket_path.parent.mkdir(mode=0o755)
    exec_start = shlex.split(unit_setting(service_unit, "Service", "ExecStart"))
    assert exec_start[0] == "/usr/bin/hookguard", exec_start
    # User=, Group= and UMask= as systemd applies them; the socket made by the
    # launcher (root), as systemd makes it.
    as_user = ["setpriv", f"--reuid={unit_setting(service_unit, 'Service', 'User')}",
               f"--regid={unit_setting(service_unit, 'Service', 'Group')}", "--init-groups"]
    empty = work / "empty"
    empty.mkdir()
    log_path = work / "hookguard.log"
    command = hidden_command(empty, ["systemd-socket-activate", "-l", str(socket_path),
                                     *as_user, *exec_start],
                             umask=unit_setting(service_unit, "Service", "UMask"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HOOKGUARD_", "LISTEN_")) and k not in ("GATEWAY_INTERFACE",
                                                                        "REQUEST_METHOD")}
    with open(log_path, "ab") as log:
        launcher = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, cwd="/")
    nginx = None
    try:
        assert wait_until(lambda: launcher.poll() is not None or socket_path.exists(), 15), \
            tail(log_path)
        assert launcher.poll() is None, tail(log_path)
        shutil.chown(socket_path, unit_setting(socket_unit, "Socket", "SocketUser"),
                     unit_setting(socket_unit, "Socket", "SocketGroup"))
        os.chmod(socket_path, int(unit_setting(socket_unit, "Socket", "SocketMode"), 8))

        port = free_port()
        conf_dir = work / "conf"
        conf_dir.mkdir()
        (conf_dir / "fastcgi_params").symlink_to("/etc/nginx/fastcgi_params")  # the snippet's include
        (conf_dir / "nginx.conf").write_text(NGINX_CONF.format(
            web_user=WEB_USER, work=work, socket=socket_path, port=port,
            secret_file=secret_file, spool=spool, snippet=SNIPPET))
        with open(work / "nginx.stderr", "ab") as err:
            nginx = subprocess.Popen([NGINX, "-p", str(work), "-c", str(conf_dir / "nginx.conf"),
                                      "-e", str(work / "nginx-error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        assert wait_until(lambda: nginx.poll() is not None or port_open(port), 10) \
            and nginx.poll() is None, tail(work / "nginx.stderr") + tail(work / "nginx-error.log")

        diag = lambda: f"\n--- hookguard\n{tail(log_path)}\n--- nginx\n{tail(work / 'nginx-error.log')}"
        body = json.dumps({"action": "opened", "tag": tag, "note": "caf\u00e9"}).encode()
        status, answer = post(port, body, {"X-GitHub-Event": "push",
                                           **signing.sign("github", secret, body)})
        assert status == 200, f"{status} {answer!r}" + diag()
        delivery_id = json.loads(answer)["id"]
        assert UUID7.match(delivery_id), answer
        entry = spool / "new" / f"{delivery_id}.json"
        st = entry.stat()
        assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name) == (USER, USER), \
            f"{entry} is not {USER}'s"
        assert st.st_mode & 0o007 == 0, oct(st.st_mode)
        envelope = json.loads(entry.read_bytes())
        assert envelope["body"] == body.decode() and envelope["event"] == "push", envelope

        forged = body.replace(b"opened", b"closed")
        status, answer = post(port, forged, signing.sign("github", secret, body))
        assert status == 500, f"forged delivery: {status} {answer!r}" + diag()
        assert sorted(os.listdir(spool / "new")) == [entry.name], diag()
        assert os.listdir(spool / "tmp") == []

        # hookguard itself runs as the unit's user, with the toolchain out of sight.
        hookguard_pid = launcher.pid  # systemd-socket-activate and setpriv exec it in place
        status_text = Path(f"/proc/{hookguard_pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status_text, re.M).group(1))
        assert pwd.getpwuid(uid).pw_name == USER, status_text
        assert os.readlink(f"/proc/{hookguard_pid}/exe") == "/usr/bin/hookguard"
        package.spool_entries[entry] = entry.read_bytes()
    finally:
        if nginx is not None:
            stop(nginx, signal.SIGQUIT, 10)
        code = stop(launcher, signal.SIGTERM, 10)
        secret_file.unlink(missing_ok=True)
    assert code == 0, f"hookguard did not exit 0 on SIGTERM (got {code})\n{tail(log_path)}"


def test_man_page_renders(package):
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8"}
    r = run("man", "--warnings", "hookguard", env=env)
    assert r.stderr.strip() == "", r.stderr
    text = r.stdout
    for heading in ("NAME", "SYNOPSIS", "PARAMETERS", "SCHEMES", "ENVIRONMENT", "FILES"):
        assert re.search(rf"^{heading}$", text, re.M), f"no {heading} section:\n{text[:2000]}"
    # Every parameter of docs/configuration.md's table is in the page.
    page = (REPO / "docs" / "configuration.md").read_text()
    table = page.split("## Parameters (per location)", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(HOOKGUARD_[A-Z_]+)`", table))
    assert len(names) > 15, names
    missing = {n for n in names if n not in text}
    assert not missing, f"not in man hookguard: {sorted(missing)}"
    serve = run("man", "--warnings", "hookguard-serve", env=env)
    assert "--socket-group" in serve.stdout and serve.stderr.strip() == "", serve


# --------------------------------------------------------------------------
# remove, then purge


def test_remove_keeps_the_spool_then_purge_leaves_nothing(package):
    assert package.spool_entries, "no delivery was spooled (the delivery test failed)"
    # An administrator enabled the Apache configuration: purge disables it, or
    # its link in conf-enabled/ would point at nothing and stop Apache.
    enabled_conf = Path("/etc/apache2/conf-enabled/hookguard.conf")
    a2enconf = shutil.which("a2enconf")
    if a2enconf and not enabled_conf.is_symlink():
        package.a2enconf_record = not A2ENCONF_RECORD.exists()
        run(a2enconf, "-q", "hookguard")
        assert enabled_conf.is_symlink()
    dpkg("--remove", PACKAGE)
    assert not installed()
    assert not Path("/usr/bin/hookguard").exists()
    for entry, content in package.spool_entries.items():
        assert entry.read_bytes() == content, f"{entry} changed or went on remove"
    assert _user_exists(USER), "remove deleted the hookguard user"

    dpkg("--purge", PACKAGE)
    assert not known_to_dpkg()
    assert not enabled_conf.is_symlink(), "purge left the Apache configuration enabled"
    left = [p for p in package.files if p.exists() and p not in package.existed_before]
    assert not left, f"left behind by the package: {left}"
    assert not SPOOL_ROOT.exists() and not SECRETS.exists()
    assert state_names() <= package.existed_before, state_names()
    overrides = run("dpkg-statoverride", "--list").stdout
    assert "hookguard" not in overrides, overrides
