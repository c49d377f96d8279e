"""Whether sandboxing works on this machine: bubblewrap present and able to make its
namespaces.

A `sandbox` decision is only worth giving when the command can really be contained: without
bubblewrap, or where the kernel or a container refuses user namespaces, it becomes `ask`
with this module's reason (fail closed: never run uncontained because the sandbox was
unavailable). Probing runs bubblewrap once (a few milliseconds); a success is remembered in
the runtime's state directory, keyed by the bubblewrap binary, the boot and the user, so
the hook path probes once per boot, not once per call.
"""

from __future__ import annotations

import os
from pathlib import Path

BWRAP_CANDIDATES = ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap")
# What every sandbox needs: a read-only root, all namespaces, no capabilities, a new session.
PROBE_ARGS = ("--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--disable-userns",
              "--cap-drop", "ALL", "--new-session", "--die-with-parent", "--proc", "/proc",
              "--dev", "/dev", "--", "true")


def bwrap_path() -> str | None:
    """bubblewrap's binary: $RUNESTONE_BWRAP, else the first of the usual places on PATH."""
    override = os.environ.get("RUNESTONE_BWRAP")
    if override:
        return override if os.access(override, os.X_OK) else None
    for candidate in BWRAP_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    from shutil import which

    return which("bwrap")


def _key(bwrap: str) -> str:
    stat = os.stat(bwrap)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{bwrap}:{stat.st_ino}:{stat.st_mtime_ns}:{boot}:{os.getuid()}"


def unavailable(state_dir: Path | None = None) -> str:
    """'' when a sandbox can start here; otherwise why not, in words for a person."""
    import sys

    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}"
    bwrap = bwrap_path()
    if bwrap is None:
        return ("bubblewrap is not installed (`apt-get install bubblewrap`, `dnf install "
                "bubblewrap`)")
    try:
        key = _key(bwrap)
    except OSError as exc:
        return f"bubblewrap at {bwrap} cannot be read ({exc.strerror})"
    cache = state_dir / "sandbox-probe" if state_dir is not None else None
    if cache is not None:
        try:
            if cache.read_text(encoding="utf-8") == key:
                return ""
        except OSError:
            pass
    import subprocess  # only when the cache does not answer

    try:
        done = subprocess.run([bwrap, *PROBE_ARGS], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run ({exc})"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = said[-1] if said else f"exit status {done.returncode}"
        return (f"bubblewrap cannot create its namespaces here ({detail}); user namespaces "
                "may be disabled (sysctl kernel.unprivileged_userns_clone, "
                "user.max_user_namespaces) or refused by the container")
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(key, encoding="utf-8")
        except OSError:
            pass  # only the cache is lost; the answer stands
    return ""
