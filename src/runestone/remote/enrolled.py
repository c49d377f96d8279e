"""The HTTP client of an enrolled runtime: what it holds from enrollment (the server, its
own runtime id, the server's public key, its credential) and one JSON request at a time
with that credential as the bearer token.

Approvals (remote/approvals.py) and grants (remote/grants.py) both speak to the control
plane this way; they differ only in how a failure names the server and in what an answer
that is not a JSON object means, so those two are the hooks here (`speaks_of`, `_garbage`),
and each caller passes its own timeout. Every answer a caller sees is a JSON object: a
refusal whose body is anything else reads as `{}`, a success whose body is anything else is
garbage, so no caller meets a list or a number where it reads `.get`. Standard library
only; loaded only when an enrolled runtime talks to its server, never by the hook of a
runtime that is not enrolled.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any, Self

from runestone.home import Layout
from runestone.remote.client import RemoteError, ServerUnreachable, credential_file, load_remote


class EnrolledClient:
    """The control plane's runtime API, as seen by one enrolled runtime."""

    speaks_of = "the control plane"  # how a failure names the server: "<it> at <url> ..."

    def __init__(self, layout: Layout, config: dict[str, Any], credential: str) -> None:
        self.layout = layout
        self.server = str(config["server"]).rstrip("/")
        self.runtime_id = str(config["runtime_id"])
        self.server_public_key = str(config["server_public_key"])
        self._credential = credential

    @classmethod
    def from_layout(cls, layout: Layout) -> Self | None:
        """None when this runtime is not enrolled, or its credential cannot be read."""
        config = load_remote(layout)
        if config is None:
            return None
        try:
            credential = credential_file(layout).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return cls(layout, config, credential)

    @property
    def credential_hash(self) -> str:
        return hashlib.sha256(self._credential.encode("utf-8")).hexdigest()

    def _call(self, method: str, path: str, body: dict[str, Any] | None,
              timeout: float) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the answer's JSON object; a refusal's, or `{}`). Raises
        ServerUnreachable when the server does not answer, `_garbage` when it answers a
        success with something that is not a JSON object."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization":
                                                      f"Bearer {self._credential}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, answer = response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            return exc.code, detail if isinstance(detail, dict) else {}
        except (urllib.error.URLError, OSError) as exc:
            raise ServerUnreachable(f"{self.speaks_of} at {self.server} does not answer: "
                                    f"{exc}") from exc
        except ValueError as exc:  # it answered, but not with JSON
            raise self._garbage(exc) from exc
        if not isinstance(answer, dict):
            raise self._garbage(ValueError(f"the answer is a JSON {type(answer).__name__}, "
                                           "not an object"))
        return status, answer

    def _garbage(self, exc: ValueError) -> RemoteError:
        """What an answer that is not JSON raises: the server answered, wrongly."""
        return RemoteError(f"{self.speaks_of} at {self.server} answered garbage: {exc}")
