"""A small client of the worker's web API, for the commands that read or act through it (`aiops trends`,
`aiops summary`, `aiops mcp`): URL and bearer token from the settings (`api_url`, `api_token`), JSON in and
out, and a refusal turned into one clear `ApiError` line (the problem document's title and detail)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.settings import Settings

__all__ = ["ApiClient", "ApiError", "client_of"]

TIMEOUT_S = 15.0


class ApiError(RuntimeError):
    """The worker refused a request, or could not be reached: the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiClient:
    """Calls to one worker's web API."""

    url: str
    token: str | None = None
    timeout_s: float = TIMEOUT_S

    def get(self, path: str, query: Mapping[str, object] | None = None, *, token: str | None = None) -> Any:
        """GET a JSON view (query values left out when None); `token` in place of the client's own."""
        given = {k: str(v) for k, v in (query or {}).items() if v is not None}
        return self._call("GET", path + (f"?{urllib.parse.urlencode(given)}" if given else ""), None, token)

    def post(self, path: str, body: Mapping[str, Any], *, token: str | None = None) -> Any:
        """POST a JSON body; the JSON answer."""
        return self._call("POST", path, orjson.dumps(dict(body)), token)

    def _call(self, method: str, path: str, data: bytes | None, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                return orjson.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise ApiError(f"{method} {path}: {err.code} {_problem(err.read())}", err.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"{method} {path}: worker at {self.url} not reachable ({reason})") from None
        except orjson.JSONDecodeError as exc:
            raise ApiError(f"{method} {path}: answer is not JSON ({exc})") from None


def _problem(body: bytes) -> str:
    """The title and detail of a problem document, or the start of whatever else the body is."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace")
    if isinstance(doc, dict):
        return ": ".join(str(doc[k]) for k in ("title", "detail") if doc.get(k)) or str(doc)[:200]
    return str(doc)[:200]


def client_of(settings: Settings, url: str | None = None) -> ApiClient:
    """The client the settings name: `url` (or `api_url`, or this machine's worker on `web_port`) and `api_token`."""
    base = url or settings.api_url or f"http://127.0.0.1:{settings.web_port}"
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    return ApiClient(base, token)
