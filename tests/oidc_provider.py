"""A real OpenID Provider for the single sign-on tests, built on Authlib's server side
(Flask integration): discovery, JWKS, an authorization endpoint with a sign-in form, the
authorization code grant with PKCE required, nonce and ID tokens signed RS256.

Run as its own process: `python oidc_provider.py PORT CONFIG.json`. The config names the
client (id, secret, redirect URI) and the users (name -> groups). `POST /_test/mode` with
`mode=...` makes the next ID tokens wrong in one way, for the relying party's refusals:
`wrong_issuer`, `wrong_audience`, `wrong_nonce`, `expired`, `bad_signature`, or `none`.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import RSAKey

PAGE = """<!doctype html><title>Test provider</title><h1>Test provider sign-in</h1>
<form method="post"><label>User <input name="username" id="username"></label>
<button type="submit" id="signin">Sign in</button></form>"""


class Client(ClientMixin):
    def __init__(self, config: dict) -> None:
        self.client_id, self.secret = config["client_id"], config["client_secret"]
        self.redirect_uris = config["redirect_uris"]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in ("openid", "profile", "email",
                                                           "groups"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class Code(AuthorizationCodeMixin):
    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def is_expired(self) -> bool:
        return time.time() > self.auth_time + 300


def build(port: int, config: dict) -> Flask:
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
    other_key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
    client = Client(config)
    users: dict[str, list[str]] = config["users"]
    codes: dict[str, Code] = {}
    state = {"mode": "none"}

    class User:
        def __init__(self, name: str) -> None:
            self.name = name

        def get_user_id(self) -> str:
            return f"sub-{self.name}"

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic",
                                                            "client_secret_post"]

        def save_authorization_code(self, code: str, req) -> None:
            codes[code] = Code(code=code, client_id=req.client.client_id,
                               redirect_uri=req.payload.redirect_uri,
                               scope=req.payload.scope, user=req.user.name,
                               nonce=req.payload.data.get("nonce"), auth_time=int(time.time()),
                               code_challenge=req.payload.data.get("code_challenge"),
                               code_challenge_method=req.payload.data.get(
                                   "code_challenge_method"))

        def query_authorization_code(self, code: str, client_: Client) -> Code | None:
            found = codes.get(code)
            if found and found.client_id == client_.client_id and not found.is_expired():
                return found
            return None

        def delete_authorization_code(self, code: Code) -> None:
            codes.pop(code.code, None)

        def authenticate_user(self, code: Code) -> User:
            return User(code.user)

    class IdToken(OpenIDCode):
        def resolve_client_private_key(self, client_: Client) -> RSAKey:
            return key

        def get_client_algorithm(self, client_: Client) -> str:
            return "RS256"

        def get_encode_header(self, client_: Client) -> dict:
            return {"alg": "RS256", "kid": "test-1"}

        def get_client_claims(self, client_: Client) -> dict:
            return {"iss": issuer, "aud": [client_.client_id],
                    "exp": int(time.time()) + 600}

        def exists_nonce(self, nonce: str, req) -> bool:
            return any(c.nonce == nonce for c in codes.values())

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            return UserInfo(sub=user.get_user_id(), preferred_username=user.name,
                            email=f"{user.name}@example.test", groups=users[user.name])

    app = Flask(__name__)
    server = AuthorizationServer(app, query_client=lambda cid: client
                                 if cid == client.client_id else None,
                                 save_token=lambda token, req: None)
    server.register_grant(CodeGrant, [IdToken(require_nonce=True), CodeChallenge(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify({"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
                        "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"]})

    @app.get("/jwks")
    def jwks():
        return jsonify({"keys": [key.as_dict(private=False)]})

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        if request.method == "GET":
            server.get_consent_grant(end_user=None)  # validates client, PKCE, nonce
            return PAGE
        name = request.form.get("username", "")
        return server.create_authorization_response(
            grant_user=User(name) if name in users else None)

    @app.post("/token")
    def token():
        response = server.create_token_response()
        mode = state["mode"]
        if mode == "none" or response.status_code != 200:
            return response
        body = json.loads(response.get_data())
        claims = jwt.decode(body["id_token"], key).claims
        signing = key
        if mode == "wrong_issuer":
            claims["iss"] = "http://evil.example"
        elif mode == "wrong_audience":
            claims["aud"] = ["another-client"]
        elif mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif mode == "expired":
            claims["iat"] = claims["auth_time"] = int(time.time()) - 7200
            claims["exp"] = int(time.time()) - 3600
        elif mode == "bad_signature":
            signing = other_key  # same kid, a key the JWKS does not have
        body["id_token"] = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, signing)
        response.set_data(json.dumps(body))
        return response

    @app.post("/_test/mode")
    def set_mode():
        state["mode"] = request.form["mode"]
        return jsonify(state)

    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    build(port, json.loads(Path(sys.argv[2]).read_text())).run(
        host="127.0.0.1", port=port, threaded=True)


class ProviderProcess:
    """This file run as a process on a free port, for the relying party at `server_base`;
    `users` maps user names to their groups."""

    def __init__(self, directory: Path, server_base: str, users: dict[str, list[str]],
                 client_id: str = "runestone", client_secret: str = "provider-secret-1") -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret = client_id, client_secret
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "provider.json"
        self.config.write_text(json.dumps({
            "client_id": client_id, "client_secret": client_secret,
            "redirect_uris": [f"{server_base}/sso/callback"], "users": users}))
        self.log = directory / "provider.log"
        self.process = None

    def start(self) -> None:
        import subprocess
        import urllib.request

        self.process = subprocess.Popen([sys.executable, __file__, str(self.port),
                                         str(self.config)], stdout=self.log.open("a"),
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration",
                                       timeout=2).close()
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()[-2000:]
                time.sleep(0.1)
        raise AssertionError("the provider did not start: " + self.log.read_text()[-2000:])

    def mode(self, mode: str) -> None:
        import urllib.parse
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(
            self.issuer + "/_test/mode", data=urllib.parse.urlencode({"mode": mode}).encode(),
            method="POST"), timeout=10).close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
