"""Schemathesis against the server's own OpenAPI schema: generated requests, with and
without credentials, never get a server error or a response that breaks the schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from runestone_server.app import create_app  # noqa: E402
from runestone_server.migrate import upgrade  # noqa: E402
from runestone_server.models import ApiToken, Organisation, Team, User  # noqa: E402
from runestone_server.security import hash_password, new_token  # noqa: E402


def _app(tmp_path_factory):
    where = tmp_path_factory.mktemp("schema")
    app = create_app(f"sqlite:///{where / 's.sqlite3'}", key_path=str(where / "k"))
    upgrade(app.state.db)
    with app.state.db.sessions() as db:
        org = Organisation(name="fuzz")
        db.add(org)
        db.flush()
        user = User(org_id=org.id, username="admin", org_admin=True,
                    password_hash=hash_password("x" * 12))
        db.add_all([user, Team(org_id=org.id, name="core")])
        db.flush()
        token, digest = new_token("rst")
        db.add(ApiToken(org_id=org.id, user_id=user.id, name="fuzz", token_hash=digest,
                        scopes=["read", "write"]))
        db.commit()
    app.state.fuzz_token = token
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return _app(tmp_path_factory)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors_and_no_schema_violations(case, app):
    headers = {"Authorization": f"Bearer {app.state.fuzz_token}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    case.validate_response(response, checks=(
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.response_schema_conformance,
    ))


def test_every_operation_with_a_body_documents_its_limit(app):
    """The body limits are part of the schema schemathesis checks against: every operation
    that takes a body documents 413 with its limit, and answers it over the limit."""
    from fastapi.testclient import TestClient

    from runestone_server.bodylimit import limit_for

    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
        with_body = [(path, method) for path, operations in schema["paths"].items()
                     for method, operation in operations.items()
                     if "requestBody" in operation]
        assert len(with_body) > 20
        for path, method in with_body:
            operation = schema["paths"][path][method]
            assert str(limit_for(path)) in operation["responses"]["413"]["description"]
            answer = client.request(method.upper(), path.replace("{", "").replace("}", ""),
                                    content=b" " * (limit_for(path) + 1),
                                    headers={"Content-Type": "application/json"})
            assert answer.status_code == 413, (method, path, answer.status_code)
