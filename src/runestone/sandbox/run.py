"""Run one command in the sandbox: set up the proxy if the profile grants hosts, run
bubblewrap, pass the output through, and say what the sandbox refused.

Fail closed: if bubblewrap is missing, cannot make its namespaces, or refuses the set-up,
the command is not run at all (exit 126 with the reason); it is never run uncontained
instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from runestone.sandbox import bwrap as bw
from runestone.sandbox.probe import bwrap_path, unavailable
from runestone.sandbox.profiles import Profile

NOT_RUN = 126
BRIDGE = Path(__file__).with_name("bridge.py")
_TAIL = 64 * 1024
# What a program prints when the sandbox refused it something (the errno texts of EROFS,
# EACCES, EPERM, and of a network that is not there). Compiled only when there is error
# output to read.
_REFUSALS = (
    r"Read-only file system|Permission denied|Operation not permitted|Network is unreachable"
    r"|Could not resolve host|Temporary failure in name resolution|Name or service not known"
    r"|No address associated with hostname|getaddrinfo|Device or resource busy"
    r"|runestone sandbox .*refused")


class Outcome(NamedTuple):
    """What happened: the exit status and what the sandbox refused (empty: nothing seen)."""

    exit_code: int
    blocked: tuple[str, ...]
    profile: str
    profile_hash: str

    def audit_fields(self) -> dict[str, object]:
        return {"exit_code": self.exit_code,
                "sandbox": {"profile": self.profile, "profile_hash": self.profile_hash,
                            "blocked": bool(self.blocked), "refused": list(self.blocked)}}


class Prepared(NamedTuple):
    """A sandbox ready to start: bubblewrap's command line, its environment, and the
    proxy (when the profile grants hosts), which runs until the `prepare` block ends."""

    argv: list[str]
    env: dict[str, str]
    proxy: Any
    hidden: list[str]
    project: str
    had_git: bool  # whether the project had a .git before (if not, one made inside is moved)
    fds: tuple[int, ...] = ()  # descriptors bubblewrap must inherit (the seccomp program)


@contextmanager
def prepare(command: list[str], profile: Profile, *, project: str, cwd: str | None = None,
            state_dir: Path | None = None, env: Mapping[str, str] | None = None,
            home: str | None = None) -> Iterator[Prepared]:
    """Set up a sandbox for `command`. Raises bw.SandboxError (nothing runs) when the
    sandbox cannot start here."""
    why = unavailable(state_dir)
    if why:
        raise bw.SandboxError(why)
    bwrap = bwrap_path()
    assert bwrap is not None  # unavailable() said it is there
    places = bw.default_places(project, home)
    cwd = os.path.realpath(cwd or os.getcwd())
    source = dict(os.environ if env is None else env)
    hidden = [p for pattern in profile.hide if "*" not in pattern
              for p in bw.expand(pattern, places)]
    with _scratch(profile.networked) as scratch:
        proxy = None
        inner = list(command)
        socket_path = None
        if scratch is not None:
            from runestone.sandbox.proxy import FilteringProxy

            socket_path = os.path.join(scratch, "proxy.sock")
            proxy = FilteringProxy(socket_path, profile.hosts, profile.name).start()
            inner = [sys.executable, "-I", str(BRIDGE), bw.PROXY_SOCKET, str(bw.PROXY_PORT),
                     "--", *inner]
        seccomp_fd = _seccomp_fd()
        try:
            args = bw.argv(bwrap, profile, places, cwd, inner, proxy_socket=socket_path,
                           seccomp_fd=seccomp_fd)
            child_env = bw.environment(profile, source, networked=profile.networked)
            had_git = os.path.lexists(os.path.join(places.project, ".git"))
            yield Prepared(args, child_env, proxy, hidden, places.project, had_git,
                           () if seccomp_fd is None else (seccomp_fd,))
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            if proxy is not None:
                proxy.close()


def _seccomp_fd() -> int | None:
    """A readable, inheritable descriptor holding the seccomp program (a pipe: the
    program is a few hundred bytes, far below a pipe's buffer), or None where there is
    no filter for this machine."""
    from runestone.sandbox.seccomp import program

    code = program()
    if code is None:
        return None
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, code)
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


@contextmanager
def _scratch(needed: bool) -> Iterator[str | None]:
    """A private directory for the proxy's socket, only when there is a proxy."""
    if not needed:
        yield None
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="runestone-sandbox-") as directory:
        yield directory


def outcome_of(prepared: Prepared, profile: Profile, code: int, tail: bytes) -> Outcome:
    """What happened, from the exit status and the end of the error output. Raises
    bw.SandboxError when bubblewrap itself refused the set-up (the command never ran)."""
    if code == 1 and tail.startswith(b"bwrap: "):
        raise bw.SandboxError(tail.decode("utf-8", "replace").strip().splitlines()[0])
    refused = list(prepared.proxy.refused) if prepared.proxy is not None else []
    blocked = tuple(dict.fromkeys(
        [f"deny network-outbound {host}" for host in refused]
        + _quarantine_git(prepared)
        + _refusals(tail, prepared.hidden, prepared.project)))
    return Outcome(code, blocked[:20], profile.name, profile.hash)


def run_contained(command: list[str], profile: Profile, *, project: str, cwd: str | None = None,
                  state_dir: Path | None = None, env: Mapping[str, str] | None = None,
                  home: str | None = None, stdin: int | None = None,
                  stdout: int | None = None, stderr: object = None) -> Outcome:
    """Run `command` contained by `profile`. Raises bw.SandboxError (the command did not
    run) when the sandbox cannot start. `stderr`: a binary file for the command's error
    output (default: this process's)."""
    with prepare(command, profile, project=project, cwd=cwd, state_dir=state_dir, env=env,
                 home=home) as prepared:
        code, tail = _run(prepared.argv, prepared.env, stdin, stdout, stderr)
        return outcome_of(prepared, profile, code, tail)


def _quarantine_git(prepared: Prepared) -> list[str]:
    """A project without .git leaves the sandbox free to make one, with hooks or a config
    that the next git command outside would run; so one made inside is moved aside."""
    git = os.path.join(prepared.project, ".git")
    if prepared.had_git or not os.path.lexists(git):
        return []
    aside = f"{git}.sandboxed-{os.urandom(4).hex()}"
    try:
        os.rename(git, aside)
    except OSError as exc:
        return [f"a .git made inside the sandbox could not be moved aside ({exc}); do not "
                "run git in this project before checking its hooks and config"]
    return [f"deny git-init: the .git made inside the sandbox was moved to {aside} (a "
            "repository made there could hold hooks for the next git command outside; run "
            "`git init` outside the sandbox)"]


def _run(args: list[str], env: dict[str, str], stdin: int | None, stdout: int | None,
         stderr: object) -> tuple[int, bytes]:
    """Run bubblewrap, copying its error output through while keeping its tail. Read to
    the end here, then wait: when the command exits its PID namespace ends, so nothing
    inside keeps the pipe open. `os.posix_spawn`, not `subprocess`: every sandboxed
    command pays this process's start-up, and subprocess brings threading, signal's enums
    and selectors (about 20 ms here) for one child and one pipe."""
    out = stderr if stderr is not None else sys.stderr.buffer
    read_end, write_end = os.pipe()
    actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, write_end, 2),
                                      (os.POSIX_SPAWN_CLOSE, read_end)]
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
    if stdout is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdout, 1))
    try:
        pid = os.posix_spawn(args[0], args, env, file_actions=actions)
    except OSError as exc:
        os.close(read_end)
        raise bw.SandboxError(f"bubblewrap could not start ({exc})") from exc
    finally:
        os.close(write_end)
    tail = bytearray()
    try:
        while chunk := os.read(read_end, 65536):
            tail.extend(chunk)
            del tail[:-_TAIL]
            try:
                out.write(chunk)  # type: ignore[attr-defined]
                out.flush()  # type: ignore[attr-defined]
            except (OSError, ValueError):
                pass
    finally:
        os.close(read_end)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
    code = os.waitstatus_to_exitcode(status)
    return (code if code >= 0 else 128 - code), bytes(tail)


_MISSING = r"No such file or directory|cannot access|not found"
_PATHS = r"'(/[^']+)'|\"(/[^\"]+)\"|(?<![\w.])(/[^\s:'\"]+)"


def _refusals(tail: bytes, hidden: list[str], project: str) -> list[str]:
    """Error lines that show a refusal: an errno text of one, a hidden path named, or a
    path reported missing inside that exists outside (the private /tmp, a hidden file)."""
    if not tail:
        return []
    import re

    refusal, missing = re.compile(_REFUSALS, re.I), re.compile(_MISSING, re.I)
    lines = tail.decode("utf-8", "replace").splitlines()
    found = [" ".join(line.split())[:200] for line in lines
             if refusal.search(line) or any(h in line for h in hidden)
             or (missing.search(line) and _exists_outside(line, project))]
    return list(dict.fromkeys(found))[:10]


def _exists_outside(line: str, project: str) -> bool:
    """Whether a path the line names exists out here, where this process runs, or would be
    made in a directory that does and that the sandbox's private /tmp hides: then it was
    the sandbox that made it missing."""
    import re

    for match in re.finditer(_PATHS, line):
        path = next(group for group in match.groups() if group).rstrip("/")
        parent = os.path.dirname(path)
        if bw._within(path, project):
            continue  # the project is the same inside and out
        if os.path.lexists(path):
            return True
        private = any(bw._within(parent, t) and parent != t for t in ("/tmp", "/var/tmp"))
        if private and os.path.isdir(parent):
            return True
    return False


def explanation(outcome: Outcome, profile: Profile, project: str) -> str:
    """What the agent reads after a command the sandbox refused something: what was
    refused, what the sandbox allows, and how to get more."""
    network = (f"only {', '.join(profile.hosts)} through its proxy" if profile.hosts
               else "no network")
    refused = "\n".join(f"  - {item}" for item in outcome.blocked)
    return (f"<sandbox_violations>\nrunestone sandbox (profile {profile.name}) refused:\n"
            f"{refused}\n</sandbox_violations>\n"
            f"The command ran in Runestone's sandbox: it may write only in {project} and a "
            "private /tmp, secrets (~/.ssh, cloud credentials, .env files, the agent's and "
            f"Runestone's settings) are hidden, and it has {network}. If the command really "
            "needs what was refused, do not work around the sandbox: tell the user what it "
            "needs and why, so they can approve it outside the sandbox or change the "
            "policy's profile.\n")
