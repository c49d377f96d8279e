"""The approval page: a small HTTP server on 127.0.0.1 that shows a request and takes a
decision.

Opening the signed link (GET) only shows what would run: the command, how it was read, the
rule that asked, and who asked. Only the page's own form, POSTed back with its CSRF token,
changes anything. The server answers only to a Host of 127.0.0.1 or localhost (against DNS
rebinding), refuses foreign Origins, and keeps the token out of referrers and caches.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from runestone.approvals.service import ApprovalError, Approvals, local_approver
from runestone.approvals.store import Request
from runestone.approvals.tokens import TokenRefused
from runestone.policy.offer import Offer, offer_for
from runestone.whole_numbers import whole_number

MAX_FORM_BYTES = 16 * 1024
LOCAL_HOSTS = ("127.0.0.1", "localhost")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer Chromium posts the page's own form with
    # `Origin: null`, which the Origin check refuses. The page loads nothing from elsewhere
    # (CSP), so the token in its URL still reaches no other site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def csrf_key(keys_dir: Path) -> bytes:
    """The page's CSRF key, created on first use (32 random bytes, mode 0600)."""
    path = keys_dir / "approval-csrf.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        return path.read_bytes()


def csrf_token(key: bytes, request_id: str) -> str:
    return hmac.new(key, b"approve:" + request_id.encode(), hashlib.sha256).hexdigest()


class QuietAboutHangUps:
    """A client that hangs up (reset, broken pipe, a read that timed out) leaves nothing to
    answer: one line in the log, not a traceback per dropped connection. Anything else is
    still reported whole."""

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            print(f"runestone: a client hung up ({type(error).__name__})",
                  file=sys.stderr)
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


class QuietHTTPServer(QuietAboutHangUps, ThreadingHTTPServer):
    pass


class ApprovalPage:
    """Serves the approval page for one runtime until `close()`."""

    def __init__(self, approvals: Approvals, port: int = 8765, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("the approval page listens on the loopback address only")
        self.approvals = approvals
        self.key = csrf_key(approvals.layout.keys_dir)
        self.server = QuietHTTPServer((host, port), approval_handler(self))
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def rule_offer(approvals: Approvals, request: Request) -> Offer:
    """The rule that would have allowed this request (shown, and saved if ticked)."""
    try:
        return offer_for(approvals.layout, request.action,
                         approver=local_approver(approvals.settings))
    except Exception as exc:  # an offer is a convenience: the decision must not fail
        return Offer("", f"no rule could be learned ({type(exc).__name__}: {exc})")


def save_offered_rule(approvals: Approvals, text: str) -> str:
    """Append the shown rule to the policy file; what happened, for the page."""
    from runestone.policy.save import SaveError, append_rules, save_target

    try:
        target = save_target(approvals.layout)
        saved = append_rules(target, text)
    except SaveError as exc:
        return f"The rule was not saved: {exc}"
    return f"The rule was saved to {target} (policy sha256:{saved.hash[:16]})."


def approval_handler(page: ApprovalPage) -> type[BaseHTTPRequestHandler]:
    """The request handler class; the daemon subclasses it to add its own routes."""
    class Handler(BaseHTTPRequestHandler):
        server_version = "runestone-approvals"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            return  # the token is in the path: never write it to a log

        def do_GET(self) -> None:
            token = self._token()
            if token is None or not self._host_ok():
                return
            try:
                _, request = page.approvals.verify_token(token)
            except TokenRefused as exc:
                self._send(HTTPStatus.FORBIDDEN, _refusal(str(exc)))
                return
            offer = rule_offer(page.approvals, request) if request.state == "pending" else None
            self._send(HTTPStatus.OK, _page(request, csrf_token(page.key, request.id), offer))

        def do_POST(self) -> None:
            token = self._token()
            if token is None or not self._host_ok():
                return
            origin = self.headers.get("Origin")
            if origin is not None and origin not in self._own_origins():
                self._send(HTTPStatus.FORBIDDEN, _refusal("the form was posted from another "
                                                          "site"))
                return
            # A negative length would make read() wait for the client to hang up.
            length = whole_number(self.headers.get("Content-Length") or "0", 0, 2**62)
            if length is None:
                self._send(HTTPStatus.BAD_REQUEST, _refusal("a form post needs its length"))
                return
            if length > MAX_FORM_BYTES:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _refusal("form too large"))
                return
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            try:
                _, request = page.approvals.verify_token(token)
            except TokenRefused as exc:
                self._send(HTTPStatus.FORBIDDEN, _refusal(str(exc)))
                return
            sent = form.get("csrf", [""])[0]
            if not hmac.compare_digest(sent, csrf_token(page.key, request.id)):
                self._send(HTTPStatus.FORBIDDEN, _refusal("missing or wrong CSRF token; "
                                                          "decide from the approval page"))
                return
            choice = form.get("decision", [""])[0]
            if choice not in ("approve", "deny"):
                self._send(HTTPStatus.BAD_REQUEST, _refusal("choose approve or deny"))
                return
            save_rule = form.get("save_rule", [""])[0] if choice == "approve" else ""
            offer = rule_offer(page.approvals, request) if save_rule else None
            if offer is not None and (offer.refused or not offer.text or not hmac.compare_digest(
                    save_rule, rule_digest(offer.text))):
                why = offer.refused or "the rule offered has changed since the page was shown"
                self._send(HTTPStatus.CONFLICT, _refusal(f"not decided: {why}; reload the "
                                                         "page to see the rule again"))
                return
            try:
                minutes = whole_number(form.get("minutes", ["30"])[0] or "30", 0, 999_999)
                if minutes is None:
                    raise ValueError("minutes: a whole number")
                decided = page.approvals.decide(
                    request.id, approve=choice == "approve",
                    approver=local_approver(page.approvals.settings) + " (approval page)",
                    reason=form.get("reason", [""])[0][:500],
                    scope=form.get("scope", ["once"])[0], minutes=minutes)
            except (ApprovalError, ValueError) as exc:
                self._send(HTTPStatus.CONFLICT, _refusal(str(exc)))
                return
            saved = save_offered_rule(page.approvals, offer.text) if offer is not None else ""
            self._send(HTTPStatus.OK, _done(decided, saved))

        def _token(self) -> str | None:
            prefix = "/approve/"
            if not self.path.startswith(prefix) or len(self.path) > 4096:
                self._send(HTTPStatus.NOT_FOUND, _refusal("not found"))
                return None
            return self.path[len(prefix):].split("?", 1)[0]

        def _own_origins(self) -> set[str]:
            return {f"http://{host}:{page.port}" for host in LOCAL_HOSTS}

        def _host_ok(self) -> bool:
            host = self.headers.get("Host", "")
            if host not in {f"{h}:{page.port}" for h in LOCAL_HOSTS}:
                self._send(HTTPStatus.MISDIRECTED_REQUEST, _refusal("this page answers only "
                                                                    "on 127.0.0.1"))
                return False
            return True

        def _send(self, status: HTTPStatus, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


_STYLE = ("body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
          "pre{background:#f4f4f4;padding:.75rem;white-space:pre-wrap;word-break:break-all}"
          "th{text-align:left;padding-right:1rem;vertical-align:top}"
          "button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}")


def _document(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>")


def _refusal(reason: str) -> str:
    return _document("Refused", f"<h1>Refused</h1><p>{html.escape(reason)}</p>")


def rule_digest(text: str) -> str:
    """What the page's checkbox carries: the rule text the person saw, by its hash."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _offer_html(offer: Offer | None) -> str:
    e = html.escape
    if offer is None:
        return ""
    if not offer.text:
        return f"<p class='offer'>No rule is offered: {e(offer.refused)}</p>"
    if offer.refused:
        return (f"<h2>Rule not offered</h2><pre>{e(offer.text)}</pre>"
                f"<p>The replay of the audit log refuses it: {e(offer.refused)}</p>")
    return ("<h2>Don't ask again</h2><p>The smallest general rule that would have allowed "
            f"this (it would have saved {offer.saved_asks} ask(s) in the audit log):</p>"
            f"<pre id='learned-rule'>{e(offer.text)}</pre>"
            "<p><label><input type='checkbox' name='save_rule' "
            f"value='{rule_digest(offer.text)}'> also save this rule to the policy "
            "(only when approving)</label></p>")


def _page(request: Request, csrf: str, offer: Offer | None = None) -> str:
    e = html.escape
    analysis = request.analysis or {}
    parts = "".join(f"<li><code>{e(p)}</code></li>" for p in analysis.get("parts", []))
    opaque = "".join(f"<li>{e(o.get('kind', ''))}: {e(o.get('reason', ''))}</li>"
                     for o in analysis.get("opaque", []))
    rows = [
        ("Tool", request.tool), ("Working directory", str(request.action.get("cwd", ""))),
        ("Rules that asked", ", ".join(request.rules) or "(none: not fully understood)"),
        ("Why", request.reason),
        ("Requested by", f"agent {request.agent or '?'}, session {request.session or '?'}, "
                         f"user {request.user or '?'} on {request.host}"),
        ("Request", request.id), ("State", request.state),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    body = (f"<h1>Approve this action?</h1><pre>{e(request.summary)}</pre>"
            f"<table>{table}</table>"
            f"<h2>How it was read</h2><ul>{parts or '<li>(no parts)</li>'}</ul>"
            + (f"<h2>Not understood</h2><ul>{opaque}</ul>" if opaque else ""))
    if request.state != "pending":
        return _document("Approval", body + f"<p>This request is <b>{e(request.state)}</b>."
                         "</p>")
    form = (
        f"<form method='post'><input type='hidden' name='csrf' value='{e(csrf)}'>"
        "<p><label><input type='radio' name='scope' value='once' checked> this exact action, "
        "once</label><br><label><input type='radio' name='scope' value='rule-session'> "
        "whatever these rules ask about in this session for <input type='number' "
        "name='minutes' value='30' min='1' max='1440' style='width:4rem'> minutes</label></p>"
        + _offer_html(offer) +
        "<p><input type='text' name='reason' placeholder='reason (optional)' size='50'></p>"
        "<button name='decision' value='approve'>Approve</button>"
        "<button name='decision' value='deny'>Deny</button></form>")
    return _document("Approval", body + form)


def _done(request: Request, saved: str = "") -> str:
    e = html.escape
    return _document("Decided", f"<h1>{e(request.state.capitalize())}</h1><p>Request "
                     f"{e(request.id)} was {e(request.state)} by {e(request.approver or '')} "
                     f"(scope: {e(request.scope or 'once')}).</p>"
                     + (f"<p id='rule-saved'>{e(saved)}</p>" if saved else ""))
