"""Enrolling with a control plane, and pulling the policy it publishes for this runtime.

A pulled policy is used only after three checks: the server's Ed25519 signature (the key
received at enrollment), the policy compiling with this runtime's own loader, and the
compiled hash matching the hash the server announced. Until a newer one passes, the last
verified policy stays in force, so the runtime keeps deciding when the server is away.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runestone.audit.checkpoint import verify_signature
from runestone.home import Layout
from runestone.identity import load_identity
from runestone.remote.signing import policy_message

TIMEOUT = 10.0


class RemoteError(RuntimeError):
    """The control plane could not be used; the message says why."""


class ServerUnreachable(RemoteError):
    """The control plane did not answer at all (as opposed to answering with a refusal)."""


class CredentialRefused(RemoteError):
    """The control plane refused this runtime's credential (401/403: revoked, or never
    valid): nothing it says about this runtime's requests will change until that does."""


def remote_file(layout: Layout) -> Path:
    return layout.config_dir / "remote.json"


def credential_file(layout: Layout) -> Path:
    return layout.keys_dir / "remote.credential"


def cached_policy_file(layout: Layout) -> Path:
    return layout.remote_policy_file


def state_file(layout: Layout) -> Path:
    return layout.state_dir / "remote-state.json"


def _request(url: str, *, method: str = "GET", body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)
    except (urllib.error.URLError, OSError) as exc:
        raise ServerUnreachable(f"the server at {url.split('/api/')[0]} does not answer: "
                                f"{exc}") \
            from exc


def enroll(layout: Layout, server: str, token: str, labels: dict[str, str]) -> dict[str, Any]:
    identity = load_identity(layout)
    server = server.rstrip("/")
    all_labels = {"host": socket.gethostname(), "user": getpass.getuser(), **labels}
    status, body, _ = _request(f"{server}/api/v1/enroll", method="POST", body={
        "token": token, "runtime_id": identity.runtime_id, "public_key": identity.public_key,
        "labels": all_labels})
    if status != 201:
        raise RemoteError(f"enrollment refused (HTTP {status}): {body.decode()[:300]}")
    answer = json.loads(body)
    layout.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(credential_file(layout), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(answer["credential"])
    config = {"server": server, "team_id": answer["team_id"], "labels": all_labels,
              "server_public_key": answer["server_public_key"],
              "runtime_id": identity.runtime_id}
    remote_file(layout).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config


def load_remote(layout: Layout) -> dict[str, Any] | None:
    try:
        return json.loads(remote_file(layout).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_state(layout: Layout) -> dict[str, Any]:
    try:
        return json.loads(state_file(layout).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _write_state(layout: Layout, state: dict[str, Any]) -> None:
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_file(layout).with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(temporary, state_file(layout))


def pull(layout: Layout) -> dict[str, Any]:
    """Fetch, verify and cache the assigned policy; returns the new state."""
    config = load_remote(layout)
    if config is None:
        raise RemoteError("this runtime is not enrolled; run `runestone enroll`")
    state = read_state(layout)
    state["checked"] = time.time()
    headers = {"Authorization": f"Bearer {credential_file(layout).read_text().strip()}"}
    if state.get("hash") and cached_policy_file(layout).exists() and not cached_problem(
            layout, config):
        headers["If-None-Match"] = f'"{state["hash"]}"'
    try:
        status, body, _ = _request(f"{config['server']}/api/v1/runtime/policy",
                                   headers=headers)
    except RemoteError as exc:
        state["last_error"] = str(exc)
        _write_state(layout, state)
        raise
    if status == 304:
        state["last_error"] = ""
    elif status == 204:
        state["last_error"] = "no policy is published for this runtime"
    elif status == 200:
        _accept(layout, config, json.loads(body), state)
        # The signed record follows the file at once (not after the grants' request): until
        # it lands, a load compares the new file with the old record and refuses it.
        _write_state(layout, state)
    else:
        state["last_error"] = f"HTTP {status}: {body.decode()[:200]}"
        _write_state(layout, state)
        raise RemoteError(state["last_error"])
    _pull_grants(layout, state)
    _write_state(layout, state)
    return state


def _pull_grants(layout: Layout, state: dict[str, Any]) -> None:
    """Grants follow the policy (remote/grants.py); a failure leaves the last verified
    ones and is said in the state, never failing the policy's pull."""
    from runestone.remote.grants import ServerGrants

    grants = ServerGrants.from_layout(layout)
    if grants is None:
        return
    try:
        state["grants"] = grants.pull()
        state["grants_error"] = ""
    except RemoteError as exc:
        state["grants_error"] = str(exc)


def _accept(layout: Layout, config: dict[str, Any], answer: dict[str, Any],
            state: dict[str, Any]) -> None:
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text

    message = policy_message(config["runtime_id"], int(answer["number"]), answer["hash"],
                             answer["text"])
    if answer.get("runtime_id") != config["runtime_id"] or not verify_signature(
            config["server_public_key"], message, answer.get("signature", "")):
        raise RemoteError("the policy's signature does not verify; the cached policy stays")
    try:
        compiled = compile_policy_text(answer["text"], source="control plane")
    except PolicyError as exc:
        raise RemoteError(f"the pulled policy does not load here; the cached one stays: "
                          f"{exc}") from exc
    if compiled.hash != answer["hash"]:
        raise RemoteError("the pulled policy compiles to another hash than announced; the "
                          "cached policy stays")
    temporary = cached_policy_file(layout).with_suffix(".tmp")
    temporary.write_text(answer["text"], encoding="utf-8")
    os.replace(temporary, cached_policy_file(layout))
    # The server's signed record of the cached text: every load compares the policy's hash
    # with it, `status` checks the signature (runestone.remote.pinned).
    state.update({"number": answer["number"], "hash": answer["hash"], "fetched": time.time(),
                  "signature": answer.get("signature", ""), "runtime_id": config["runtime_id"],
                  "source": config["server"], "last_error": ""})


def cached_problem(layout: Layout, config: dict[str, Any]) -> str:
    """'' when the cached policy is the one the server signed (its hash matches the record
    and the record's signature verifies over the cached text); else what is wrong. Used by
    `pull` (a cache that fails is fetched whole again) and `status`; not by the hook."""
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text
    from runestone.remote import pinned

    path = cached_policy_file(layout)
    try:
        text = path.read_text(encoding="utf-8")
        compiled = compile_policy_text(text, source=str(path))
    except (OSError, UnicodeDecodeError, PolicyError) as exc:
        return f"the cached team policy {path} cannot be loaded: {exc}"
    refused = pinned.mismatch(layout, compiled.hash)
    if refused:
        return refused
    record = pinned.signed_record(layout)
    try:
        message = policy_message(config["runtime_id"], int(record["number"]), record["hash"],
                                 text)
    except (KeyError, TypeError, ValueError):
        return f"the signed record of the cached team policy {path} is incomplete"
    if not verify_signature(config["server_public_key"], message,
                            str(record.get("signature", ""))):
        return (f"the cached team policy {path} and its record do not carry the control "
                "plane's signature (both were changed on disk); it is refused. Run "
                "`runestone policy pull` to restore it.")
    return ""
