"""The bubblewrap command line for a profile: what a contained command sees.

Order matters, because bubblewrap applies its arguments in order and a later mount covers
an earlier one: the readable paths first (read-only), then a private /tmp, /proc of the new
PID namespace and a minimal /dev (with Runestone's own interpreter shown again, read-only,
if it lives in a temp directory); then the writable project; then the read-only places
inside it (`.git/hooks`, `.git/config`), so the sandbox cannot leave code behind for the
next unsandboxed git command; then the hidden paths, each covered by an empty read-only
tmpfs (a directory) or by /dev/null (a file). A hidden path that contains the project is
hidden before the project is bound, so the project stays visible inside it.

Every namespace is new (user, mount, PID, network, IPC, UTS, cgroup), every capability is
dropped, the command gets a new session (no TIOCSTI keystrokes into the terminal), and it
dies with its parent. When the command ends, the PID namespace ends with it: nothing it
started in the background outlives it.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from runestone.sandbox.profiles import Profile

PROXY_PORT = 3128  # inside the sandbox's own network namespace
# Where the proxy's socket is bound inside: in the private /tmp, the one writable place
# outside the project that every sandbox has (/run is hidden).
PROXY_SOCKET = "/tmp/.runestone-proxy.sock"
ENV_FILES_LIMIT = 200_000  # directory entries walked to find `**` hide patterns
PRIVATE_TEMP = ("/tmp", "/var/tmp")  # replaced inside by empty directories of its own


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as the profile says; the command is not run."""


class Places(NamedTuple):
    """What the placeholders of a profile stand for."""

    project: str
    home: str
    runestone: tuple[str, ...]  # the runtime's own directories (config and state)
    tmp: str = "/tmp"


def expand(pattern: str, places: Places) -> list[str]:
    """One profile path with its placeholders filled in; `{runestone}` may be several."""
    if "{runestone}" in pattern:
        return [p for d in places.runestone for p in expand(pattern.replace("{runestone}", d),
                                                               places)]
    return [pattern.replace("{project}", places.project).replace("{home}", places.home)
            .replace("{tmp}", places.tmp)]


def _walk_matches(pattern: str) -> Iterator[str]:
    """Existing paths matching a `DIR/**/NAME` pattern, walking DIR (bounded)."""
    base, _, rest = pattern.partition("/**/")
    wild = any(c in rest for c in "*?[")
    seen = 0
    for root, dirs, files in os.walk(base):
        seen += len(dirs) + len(files)
        if seen > ENV_FILES_LIMIT:
            raise SandboxError(f"more than {ENV_FILES_LIMIT} entries under {base} to search "
                               f"for {rest!r}; hide them by exact path in the profile")
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in (*files, *dirs):
            if name == rest or (wild and fnmatch.fnmatchcase(name, rest)):
                yield os.path.join(root, name)


def paths(patterns: tuple[str, ...], places: Places) -> list[str]:
    """Existing paths, resolved through symlinks, that the patterns name."""
    found: dict[str, None] = {}
    for pattern in patterns:
        for expanded in expand(pattern, places):
            candidates = (_walk_matches(expanded) if "/**/" in expanded
                          else [expanded] if os.path.lexists(expanded) else [])
            for candidate in candidates:
                # Where it leads: a symlinked ~/.ssh is hidden at its target, which the link
                # then shows (bubblewrap mounts on the resolved place anyway).
                real = os.path.realpath(candidate)
                if os.path.exists(real):
                    found.setdefault(real, None)
    return list(found)


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def argv(bwrap: str, profile: Profile, places: Places, cwd: str, command: list[str],
         *, proxy_socket: str | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The full command line: bubblewrap, its arguments, then the command.
    `seccomp_fd`: a descriptor holding the filter of `runestone.sandbox.seccomp`."""
    project = os.path.realpath(places.project)
    # --unshare-user (not only --unshare-all's "try") so that --disable-userns holds: the
    # command cannot make a user namespace of its own, with the capabilities inside it.
    args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            "--new-session", "--die-with-parent", "--hostname", "sandbox"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for path in paths(profile.read, places):
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for temp in PRIVATE_TEMP:
        args += ["--tmpfs", temp]
    for path in runtime_in_private_temp():
        args += ["--ro-bind", path, path]
    writable = paths(profile.write, places)
    hidden = _needed(paths(profile.hide, places), writable)
    covering = [h for h in hidden if _within(project, h)]
    for path in covering:
        args += _hide(path)
    for path in writable:
        args += ["--bind", path, path]
    for path in paths(profile.readonly, places):
        args += ["--ro-bind", path, path]
    for path in hidden:
        if path not in covering:
            args += _hide(path)
    if proxy_socket is not None:
        args += ["--bind", proxy_socket, PROXY_SOCKET]
    args += ["--chdir", cwd, "--", *command]
    return args


def runtime_in_private_temp() -> list[str]:
    """Runestone's own interpreter and code where they lie in /tmp or /var/tmp (a virtual
    environment or a checkout made there): the sandbox's private temp directories would
    hide them, and the network bridge runs with them inside, so a networked command would
    fail for a reason it is never told. Shown read-only, as every readable place is.

    Only what the bridge needs: the package's own directory, not the checkout around it;
    and never a temp directory's root itself (a runtime placed directly in /tmp), which
    would bring the host's whole /tmp, and the sockets kept there, back into reach."""
    import runestone

    package = os.path.dirname(os.path.abspath(runestone.__file__))
    found: dict[str, None] = {}
    for place in (sys.prefix, sys.exec_prefix, sys.base_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), package):
        real = os.path.realpath(place)
        if real in PRIVATE_TEMP or not os.path.isdir(real):
            continue
        if any(_within(real, temp) for temp in PRIVATE_TEMP):
            found.setdefault(real, None)
    return [path for path in found
            if not any(other != path and _within(path, other) for other in found)]


def _needed(hidden: list[str], writable: list[str]) -> list[str]:
    """The hidden paths that need a mount: not inside another hidden one (already empty),
    and not inside the private temp directories unless a writable place shows them."""
    kept = []
    for path in hidden:
        if any(other != path and _within(path, other) for other in hidden):
            continue
        private = any(_within(path, temp) for temp in PRIVATE_TEMP)
        if private and not any(_within(path, w) for w in writable):
            continue
        kept.append(path)
    return kept


def _hide(path: str) -> list[str]:
    if os.path.isdir(path):
        return ["--tmpfs", path, "--remount-ro", path]
    return ["--ro-bind", "/dev/null", path]


def environment(profile: Profile, source: Mapping[str, str], *, networked: bool) -> dict[str, str]:
    """The variables that pass: those the profile names (names or globs), and no others;
    inside, temp files go to the private /tmp and traffic to the proxy."""
    exact = {p for p in profile.env if not any(c in p for c in "*?[")}
    prefixes = tuple(p[:-1] for p in profile.env
                     if p.endswith("*") and not any(c in p[:-1] for c in "*?["))
    others = [p for p in profile.env if p not in exact and p[:-1] not in prefixes]
    # Names and `PREFIX*` without fnmatch's regular expressions: this runs for every
    # sandboxed command, and compiling two dozen patterns cost more than the sandbox.
    env = {name: value for name, value in source.items()
           if name in exact or name.startswith(prefixes)
           or any(fnmatch.fnmatchcase(name, pattern) for pattern in others)}
    env["TMPDIR"] = "/tmp"
    env["RUNESTONE_SANDBOX"] = profile.name
    if networked:
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy
        env["NO_PROXY"] = env["no_proxy"] = ""
    return env


def default_places(project: str, home: str | None = None) -> Places:
    """Places for a project on this machine: the user's home and the runtime's own home."""
    from runestone.home import layout

    dirs = layout()
    return Places(project=os.path.realpath(project),
                  home=home or os.environ.get("HOME") or str(Path.home()),
                  runestone=tuple(dict.fromkeys((str(dirs.config_dir), str(dirs.state_dir)))))
