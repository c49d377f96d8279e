"""The container image's entry point, run the way the image and compose.yaml run it.

No container engine runs in CI here (docker's client is present on some machines, its daemon
is not), so the image itself is not built in the tests. What the image runs is tested
instead: docker/entrypoint.sh with compose.yaml's environment, as the `server` service
(`serve`, no worker in it) and the `worker` service (`worker`) over one database, and the
Dockerfile and compose file are checked to run exactly that."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from liveserver import PASSWORD, api, enroll_runtime, free_port, request
from runestone_server.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_dockerfile_and_compose_run_the_entrypoint_with_known_settings():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY docker/entrypoint.sh /usr/local/bin/runestone-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/runestone-entrypoint"]' in dockerfile
    assert re.search(r"^USER runestone$", dockerfile, re.M)
    services = _compose()["services"]
    assert set(services) == {"db", "server", "worker"}
    assert services["server"]["command"][0] == "serve"
    assert services["worker"]["command"] == ["worker"]
    assert services["server"]["environment"]["RUNESTONE_SERVER_TICK"] == "0"
    for name in ("server", "worker"):
        for variable in services[name]["environment"]:
            assert variable in SETTINGS, f"{variable} is not a setting (docs/operations.md)"


def _environment(service: str, database_url: str, home: Path) -> dict[str, str]:
    """compose.yaml's environment for `service`, with this test's database and paths."""
    env = {k: str(v) for k, v in _compose()["services"][service]["environment"].items()}
    env["RUNESTONE_SERVER_DATABASE"] = database_url
    env["RUNESTONE_SERVER_KEY_FILE"] = str(home / "keys" / "server.ed25519")
    env["RUNESTONE_SERVER_METRICS_TOKEN"] = ""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **env, "RUNESTONE_SERVER_HOME": str(home),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "RUNESTONE_SERVER_APPROVAL_TIMEOUT": "1", "RUNESTONE_ADMIN_PASSWORD": PASSWORD}


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_the_server_and_worker_services_over_one_database(database_url, tmp_path):
    if not shutil.which("runestone-server", path=str(Path(sys.executable).parent)):
        pytest.skip("runestone-server is not installed beside this interpreter")
    home = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = _environment("server", database_url, home)
    server_env["RUNESTONE_SERVER_PUBLIC_URL"] = base
    logs = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(["sh", str(ENTRYPOINT), "serve", "--host", "127.0.0.1",
                               "--port", str(port)], env=server_env, stdout=logs,
                              stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if request(base, "GET", "/readyz") == (200, {"ok": True}):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        else:
            raise AssertionError("the server did not become ready")
        # The compose file's `init`: through the same entry point.
        done = subprocess.run(["sh", str(ENTRYPOINT), "init", "--organisation", "acme",
                               "--admin", "alice"], env=server_env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        admin = api(base, "POST", "/api/v1/login", body={
            "organisation": "acme", "username": "alice", "password": PASSWORD})["token"]
        team = api(base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        laptop = tmp_path / "laptop"
        assert enroll_runtime(base, admin, team, laptop).returncode == 0
        credential = (laptop / "keys" / "remote.credential").read_text().strip()
        ask = api(base, "POST", "/api/v1/runtime/approvals", credential, {
            "request_id": "req_container_1", "tool": "Bash", "severity": "medium",
            "action_hash": "c" * 64, "summary": "curl example.com", "reason": "network",
            "rules": ["net.ask"], "input": {"command": "curl example.com"},
            "agent": "claude-code", "mode": "defer"})["id"]
        time.sleep(2.5)  # past the 1 s fallback timeout: nothing in `serve` expires it
        assert api(base, "GET", f"/api/v1/approvals/{ask}", admin)["state"] == "pending"
        worker = subprocess.Popen(["sh", str(ENTRYPOINT), "worker"],
                                  env=_environment("worker", database_url, home),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert worker.stdout is not None
        deadline = time.time() + 60
        while time.time() < deadline:
            if api(base, "GET", f"/api/v1/approvals/{ask}", admin)["state"] == "expired":
                break
            assert worker.poll() is None, worker.stdout.read()
            time.sleep(0.2)
        else:
            raise AssertionError("the worker service did not expire the ask")
        worker.terminate()
        assert worker.wait(timeout=30) == 0  # docker stop: SIGTERM, a clean exit
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        logs.close()
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
             if line.startswith("{")]
    assert any(r["logger"] == "uvicorn.access" for r in lines)  # compose's JSON logs
