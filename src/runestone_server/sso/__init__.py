"""Single sign-on with OpenID Connect: the authorization code flow with PKCE and a nonce,
through Authlib (the flow) and joserfc (the ID token's signature and claims), per
organisation, with users and team memberships from the provider's claims.

Modules: `models` (the provider's settings, pending sign-ins, linked identities), `flow`
(start and finish a sign-in), `mapping` (claims to a user and memberships), `api` (the
organisation admin's settings), `web` (the browser's endpoints).
"""
