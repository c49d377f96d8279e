"""One sign-in through the organisation's OpenID Provider.

`start` makes the authorization URL (Authlib's OAuth2Client: state, nonce, PKCE S256) and
keeps what the callback must check in a row (no process memory: any replica can finish
it). `finish` takes the row once, exchanges the code with the PKCE verifier, and accepts
the ID token only when its signature verifies with a key of the provider's JWKS and its
issuer, audience, nonce and expiry are right (joserfc's claims registry); every refusal
says which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.approvals.notifying import public_url
from runestone_server.models import Organisation, aware
from runestone_server.sso.models import SsoProvider, SsoState

SCOPE = "openid profile email groups"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
STATE_MINUTES = 10
LEEWAY = 60  # seconds of clock difference tolerated on exp and iat


class SsoError(Exception):
    """A sign-in refused; the message is for the person signing in."""


def redirect_uri() -> str:
    return f"{public_url()}/sso/callback"


def check_issuer(issuer: str) -> None:
    """https, or http on the loopback address only (a provider on this machine)."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return
    raise SsoError(f"the issuer must be an https URL (or http on 127.0.0.1), not {issuer!r}")


def discover(issuer: str) -> dict[str, Any]:
    """The provider's discovery document; its `issuer` must be the one configured."""
    check_issuer(issuer)
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        answer = httpx.get(url, timeout=10, follow_redirects=False)
        answer.raise_for_status()
        document = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(f"the provider's discovery document at {url} cannot be read: "
                       f"{exc}") from exc
    if document.get("issuer") != issuer:
        raise SsoError(f"the provider says its issuer is {document.get('issuer')!r}, not "
                       f"{issuer!r}")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(name), str):
            raise SsoError(f"the provider's discovery document has no {name}")
    return document


def _client(provider: SsoProvider) -> OAuth2Client:
    return OAuth2Client(client_id=provider.client_id, client_secret=provider.client_secret,
                        scope=SCOPE, redirect_uri=redirect_uri(), code_challenge_method="S256",
                        token_endpoint_auth_method="client_secret_basic", timeout=10)


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def start(db: Session, organisation: str, next_path: str) -> tuple[str, str]:
    """(the provider's authorization URL, the state to bind to this browser)."""
    org = db.scalar(select(Organisation).where(Organisation.name == organisation))
    provider = db.get(SsoProvider, org.id) if org else None
    if provider is None:
        raise SsoError("this organisation has no single sign-on; sign in with a password")
    document = discover(provider.issuer)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    with _client(provider) as client:
        url, _ = client.create_authorization_url(document["authorization_endpoint"],
                                                 state=state, code_verifier=verifier,
                                                 nonce=nonce)
    db.add(SsoState(state_hash=_digest(state), org_id=provider.org_id, nonce=nonce,
                    verifier=verifier, next_path=next_path,
                    expires=datetime.now(UTC) + timedelta(minutes=STATE_MINUTES)))
    db.commit()
    return url, state


def _take_state(db: Session, state: str, bound: str) -> SsoState:
    if not state or not bound or not hmac.compare_digest(state, bound):
        raise SsoError("this sign-in did not start in this browser; start it again")
    row = db.get(SsoState, _digest(state))
    if row is None:
        raise SsoError("this sign-in is unknown or was used already; start it again")
    db.delete(row)
    db.commit()  # single use, whatever happens next
    if aware(row.expires) < datetime.now(UTC):
        raise SsoError("this sign-in took too long; start it again")
    return row


def verify_id_token(id_token: str, jwks: dict[str, Any], issuer: str, client_id: str,
                    nonce: str) -> dict[str, Any]:
    """The ID token's claims, when its signature and claims are right; SsoError saying
    which check failed otherwise."""
    try:
        keys = KeySet.import_key_set(jwks)
        token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
    except JoseError as exc:
        raise SsoError("the ID token's signature does not verify with the provider's keys "
                       f"({exc.error})") from exc
    except ValueError as exc:
        raise SsoError(f"the ID token cannot be read ({exc})") from exc
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY, iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id}, sub={"essential": True},
        exp={"essential": True}, iat={"essential": True},
        nonce={"essential": True, "value": nonce})
    try:
        registry.validate(token.claims)
    except ExpiredTokenError as exc:
        raise SsoError("the ID token has expired") from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        names = {"iss": "issuer", "aud": "audience", "nonce": "nonce", "sub": "subject",
                 "iat": "issue time", "exp": "expiry"}
        claim = getattr(exc, "claim", "")
        raise SsoError(f"the ID token's {names.get(claim, claim)} is wrong or missing "
                       f"({exc.description})") from exc
    except JoseError as exc:
        raise SsoError(f"the ID token was refused ({exc.error}: {exc.description})") from exc
    return dict(token.claims)


def finish(db: Session, state: str, code: str, bound: str) -> tuple[SsoProvider,
                                                                    dict[str, Any], str]:
    """(the provider, the verified ID token's claims, where to go next)."""
    row = _take_state(db, state, bound)
    provider = db.get(SsoProvider, row.org_id)
    if provider is None:
        raise SsoError("single sign-on was turned off for this organisation meanwhile")
    document = discover(provider.issuer)
    try:
        with _client(provider) as client:
            token = client.fetch_token(document["token_endpoint"], code=code,
                                       code_verifier=row.verifier,
                                       grant_type="authorization_code")
        jwks = httpx.get(document["jwks_uri"], timeout=10).json()
    except Exception as exc:  # Authlib's OAuthError, httpx's errors, a bad JSON answer
        raise SsoError(f"the provider refused the code exchange: {exc}") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SsoError("the provider sent no ID token")
    claims = verify_id_token(id_token, jwks, provider.issuer, provider.client_id, row.nonce)
    return provider, claims, row.next_path
