"""`runestone daemon`: one long-lived process that keeps the policy compiled and the audit log
open, and answers hooks in about a millisecond instead of a process start-up.

Routes (127.0.0.1 and a Unix socket in the state directory):
  POST /hooks/<host>          the host's hook JSON in, the host's answer out
  GET|POST /approve/<token>   the approval page
  GET /api/health             liveness, policy hash, pid
  GET /metrics                decisions and hook latency, Prometheus text format
  POST /api/check             a PreToolUse-shaped action in, a decision out (bearer token)
  POST /tools/<name>          run shell.exec, files.write or http.request (bearer token)

Browsers are kept out: the Host must be local, any Origin header is refused on hook and API
routes, and the API needs the daemon's bearer token (a file only this user can read). The
policy file is watched; a new policy that fails to load is refused loudly and the last good
one stays in force.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

from runestone.approvals.page import (
    QuietAboutHangUps,
    QuietHTTPServer,
    approval_handler,
    csrf_key,
)
from runestone.daemon.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runestone.daemon.metrics import DaemonMetrics
from runestone.daemon.paths import daemon_socket
from runestone.gatekeeper import Gatekeeper, decision_json
from runestone.home import Layout
from runestone.integrations.hook import handle_hook
from runestone.integrations.hosts import host
from runestone.integrations.links import DeferredCallLinks
from runestone.whole_numbers import whole_number

DEFAULT_PORT = 8765
MAX_BODY = 1024 * 1024


def socket_path(layout: Layout) -> Path:
    return daemon_socket(layout)


def api_token(layout: Layout) -> str:
    """The daemon's bearer token for its local API, created on first use (mode 0600)."""
    path = layout.keys_dir / "daemon.token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        layout.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        return path.read_text(encoding="utf-8").strip()


class _UnixHTTPServer(QuietAboutHangUps, socketserver.ThreadingMixIn,
                      socketserver.UnixStreamServer):
    daemon_threads = True


class Daemon:
    def __init__(self, layout: Layout, *, port: int = DEFAULT_PORT,
                 policy_file: str | None = None, preset: str | None = None,
                 approval_mode: str | None = None, unix_socket: bool = True) -> None:
        self.layout = layout
        self._explicit_policy_file = Path(policy_file) if policy_file else None
        self.preset = preset
        self.approval_mode = approval_mode
        self.gatekeeper = Gatekeeper.from_layout(layout, policy_file=policy_file, preset=preset,
                                                 approval_mode=approval_mode)
        if self.gatekeeper.approvals is None:
            raise RuntimeError("the runtime is not initialised; run `runestone init` first")
        self.approvals = self.gatekeeper.approvals
        self.key = csrf_key(layout.keys_dir)
        self.token = api_token(layout)
        self.links = DeferredCallLinks(layout.state_dir / "calls")
        from runestone.tools.settings import ToolSettings

        self.tool_settings = ToolSettings.load(layout.config_file)
        self.started = time.time()
        self.metrics = DaemonMetrics()
        self.policy_error = ""
        handler = _daemon_handler(self)
        self.http = QuietHTTPServer(("127.0.0.1", port), handler)
        self.port = self.http.server_address[1]
        self.approvals.settings = _with_page_url(self.approvals.settings,
                                                 f"http://127.0.0.1:{self.port}")
        self.unix: _UnixHTTPServer | None = None
        if unix_socket:
            path = socket_path(layout)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                path.unlink()
            old_umask = os.umask(0o177)
            try:
                self.unix = _UnixHTTPServer(str(path), handler)
            finally:
                os.umask(old_umask)
            self._socket_inode = path.stat().st_ino
        self._last_active = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        servers: list[Any] = [self.http, *([self.unix] if self.unix else [])]
        for server in servers:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        watcher = threading.Thread(target=self._watch_policy, daemon=True)
        watcher.start()
        self._threads.append(watcher)
        if self._explicit_policy_file is None and not self.preset:
            from runestone.daemon.sync import PolicySync

            syncer = threading.Thread(target=PolicySync(self.layout, self._stop).run,
                                      name="runestone-policy-sync", daemon=True)
            syncer.start()
            self._threads.append(syncer)
        from runestone.remote.shipper import ShipLoop

        # The audit log is shipped while enrolled (the loop idles otherwise); the local log
        # is the queue, so a server that is down only delays it.
        shipper = threading.Thread(target=ShipLoop(self.layout, self._stop).run,
                                   name="runestone-audit-ship", daemon=True)
        shipper.start()
        self._threads.append(shipper)

    @property
    def stopping(self) -> threading.Event:
        """Set when the daemon is asked to stop (`close`)."""
        return self._stop

    def idle_for(self) -> float:
        """Seconds since the last request was answered (or since the start)."""
        return time.monotonic() - self._last_active

    def close(self) -> None:
        self._stop.set()
        if self.unix is not None:
            # The socket goes first, so a hook arriving now decides in-process instead of
            # reaching a daemon that is shutting down; and only if it is still this
            # daemon's (another daemon may have taken the path over).
            path = socket_path(self.layout)
            with contextlib.suppress(OSError):
                if path.stat().st_ino == self._socket_inode:
                    path.unlink()
        for server in (self.http, self.unix):
            if server is not None:
                server.shutdown()
                server.server_close()
        self.links.flush()  # the links still queued, for post hooks deciding in-process

    # --- policy reload --------------------------------------------------------------------

    @property
    def policy_file(self) -> Path | None:
        """The file the daemon follows: the one given, none for a preset, else the governing
        file (the control plane's cached policy once pulled, which may appear while the
        daemon runs)."""
        if self._explicit_policy_file is not None:
            return self._explicit_policy_file
        return None if self.preset else self.layout.governing_policy_file()

    def _policy_stamp(self) -> tuple[Any, ...] | None:
        """What a change of the followed policy changes: its file's stamp (_file_stamp),
        and for the cached team policy also the hash its signed record holds. A pull
        replaces the file and then the record, so a reload between the two is refused (the
        file is not yet the signed version); the record's new hash then brings the reload
        that succeeds. The hash, not the record file: every pull rewrites the record (when
        it last checked), most with the same hash."""
        if self.policy_file is None:
            return None
        policy = _file_stamp(self.policy_file)
        if policy is None:
            return None
        if self.policy_file != self.layout.remote_policy_file:
            return (policy,)
        from runestone.remote import pinned

        return policy, pinned.signed_record(self.layout).get("hash")

    def _watch_policy(self) -> None:
        watched, stamp = self.policy_file, self._policy_stamp()
        while not self._stop.wait(0.5):
            current = self._policy_stamp()
            if current is not None and (current != stamp or self.policy_file != watched):
                watched, stamp = self.policy_file, current
                self.reload()

    def reload(self) -> bool:
        """Load the policy file again; keep the last good policy if the new one fails."""
        from runestone.policy import PolicyCache, PolicyError, load_policy

        assert self.policy_file is not None
        try:
            policy = load_policy(self.policy_file, cache=PolicyCache.of(self.layout))
            if self.policy_file == self.layout.remote_policy_file:
                from runestone.remote import pinned

                refused = pinned.mismatch(self.layout, policy.hash)
                if refused:
                    raise PolicyError(refused)
        except (PolicyError, OSError) as exc:
            self.policy_error = str(exc)
            print(f"runestone daemon: the changed policy was REFUSED; still enforcing "
                  f"sha256:{self.gatekeeper.policy.hash[:16]}.\n{exc}", file=sys.stderr)
            self._audit({"kind": "policy-refused", "source": str(self.policy_file),
                         "error": str(exc)[:2000], "policy_hash": self.gatekeeper.policy.hash})
            return False
        previous = self.gatekeeper.policy.hash
        self.gatekeeper.policy = policy
        self.policy_error = ""
        print(f"runestone daemon: policy reloaded, sha256:{policy.hash[:16]}", file=sys.stderr)
        self._audit({"kind": "policy-loaded", "source": str(self.policy_file),
                     "policy_hash": policy.hash, "previous": previous})
        return True

    def _audit(self, entry: dict[str, Any]) -> None:
        if self.gatekeeper.audit is not None:
            try:
                self.gatekeeper.audit.append([entry])
            except Exception as exc:
                print(f"runestone daemon: could not audit {entry['kind']}: {exc}",
                      file=sys.stderr)

    # --- answers --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "policy_hash": self.gatekeeper.policy.hash,
                "policy_error": self.policy_error, "uptime": round(time.time() - self.started),
                "approval_mode": self.gatekeeper.approval_mode}

    def hook(self, host_name: str, body: str) -> tuple[int, str, int, str]:
        """(HTTP status, body, the command hook's exit code, its stderr)."""
        try:
            adapter = host(host_name)
        except ValueError as exc:
            return HTTPStatus.NOT_FOUND, json.dumps({"error": str(exc)}), 2, str(exc)
        started = time.perf_counter()
        try:
            reply = handle_hook(self.gatekeeper, adapter, body, self.links,
                                lambda made: self.metrics.decision(host_name, made.decision))
        except Exception as exc:  # an HTTP hook reads a dropped connection as "proceed"
            reply = adapter.failure(f"internal error ({type(exc).__name__}: {exc}); denied", body)
            self.metrics.decision(host_name, "deny")
        self.metrics.hook(host_name, time.perf_counter() - started)
        self._last_active = time.monotonic()
        return HTTPStatus.OK, reply.stdout, reply.exit_code, reply.stderr

    def tool(self, name: str, body: str) -> str:
        """Run one of the runtime's own tools: decide, approve if needed, execute, audit."""
        from runestone.actions.canonical import loads_finite
        from runestone.tools.runner import run_tool

        try:
            request = loads_finite(body) if body.strip() else {}
        except json.JSONDecodeError as exc:
            return json.dumps({"decision": "deny", "reason": f"malformed JSON: {exc.msg}"})
        except ValueError as exc:  # NaN, 1e999, an integer of more than 4300 digits
            return json.dumps({"decision": "deny", "reason": f"malformed JSON: {exc}"})
        if not isinstance(request, dict):
            return json.dumps({"decision": "deny", "reason": "expected a JSON object"})
        response = run_tool(self.gatekeeper, self.tool_settings, name,
                            request.get("params", {}), agent=str(request.get("agent", "")),
                            session=str(request.get("session", "")),
                            cwd=request.get("cwd") if isinstance(request.get("cwd"), str)
                            else None)
        return json.dumps(response.to_json(), ensure_ascii=False)

    def check(self, body: str) -> str:
        from runestone.actions import ActionError, parse_action_json

        try:
            action = parse_action_json(body)
        except ActionError as exc:
            return decision_json(self.gatekeeper.refuse_malformed(
                body, f"Malformed action: {exc}; denied."))
        return decision_json(self.gatekeeper.check(action))


def _with_page_url(settings: Any, url: str) -> Any:
    if os.environ.get("RUNESTONE_APPROVAL_URL"):
        return settings
    return settings._replace(page_url=url)


def _daemon_handler(daemon: Daemon) -> type:
    base = approval_handler(daemon)  # type: ignore[arg-type]

    class Handler(base):  # type: ignore[misc, valid-type]
        server_version = "runestone-daemon"
        protocol_version = "HTTP/1.1"
        # Buffered: an answer's headers and body leave in one send when the request is done
        # (BaseHTTPRequestHandler flushes after each), not two. Nothing here streams.
        wbufsize = 64 * 1024

        def setup(self) -> None:
            super().setup()
            if self.request.family in (socket.AF_INET, socket.AF_INET6):
                # Headers and body go out in separate writes; without this, Nagle's algorithm
                # and the client's delayed ACK hold every answer back by ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            if self.path == "/api/health":
                if self._local():
                    self._json(HTTPStatus.OK, json.dumps(daemon.health()))
                return
            if self.path == "/metrics":
                if self._local():
                    self._json(HTTPStatus.OK, daemon.metrics.render(),
                               content_type=METRICS_CONTENT_TYPE)
                return
            if self.path.startswith("/approve/"):
                super().do_GET()
                return
            self._json(HTTPStatus.NOT_FOUND, '{"error": "not found"}')

        def do_POST(self) -> None:
            if self.path.startswith("/approve/"):
                super().do_POST()
                return
            if not self._local():
                return
            body = self._body()
            if body is None:
                return
            if self.path.startswith("/hooks/"):
                status, out, code, err = daemon.hook(self.path[len("/hooks/"):], body)
                self._json(status, out, {"X-Runestone-Exit": str(code),
                                         "X-Runestone-Stderr": err.replace("\n", " ")[:4000]})
                return
            if self.path.startswith("/tools/"):
                if self._authorised():
                    self._json(HTTPStatus.OK, daemon.tool(self.path[len("/tools/"):], body))
                return
            if self.path == "/api/check":
                if self._authorised():
                    self._json(HTTPStatus.OK, daemon.check(body))
                return
            self._json(HTTPStatus.NOT_FOUND, '{"error": "not found"}')

        def _local(self) -> bool:
            """Local callers only: a local Host, and no browser (browsers send Origin)."""
            host_header = self.headers.get("Host", "")
            if host_header.rsplit(":", 1)[0] not in ("127.0.0.1", "localhost", ""):
                self._json(HTTPStatus.MISDIRECTED_REQUEST, '{"error": "local only"}')
                return False
            if self.headers.get("Origin") is not None:
                self._json(HTTPStatus.FORBIDDEN, '{"error": "browsers may not call this"}')
                return False
            return True

        def _authorised(self) -> bool:
            sent = self.headers.get("Authorization", "")
            if hmac.compare_digest(sent, f"Bearer {daemon.token}"):
                return True
            self._json(HTTPStatus.UNAUTHORIZED, '{"error": "missing or wrong bearer token"}')
            return False

        def _body(self) -> str | None:
            length = whole_number(self.headers.get("Content-Length") or "0", 0, 2**62)
            if length is None:
                self._json(HTTPStatus.BAD_REQUEST, '{"error": "the body needs its length"}')
                return None
            if length > MAX_BODY:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, '{"error": "body too large"}')
                return None
            return self.rfile.read(length).decode("utf-8", "replace")

        def _json(self, status: int, body: str, headers: dict[str, str] | None = None, *,
                  content_type: str = "application/json") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What a change of the file changes: a file replaced (a pull, an editor's save) is a new
    inode even when its size and time, in the file system's coarse clock, are the same."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
