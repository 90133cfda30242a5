"""Who may call which route on the worker's web port: bearer tokens by role, one rule for every route.

Roles and what their tokens grant (tokens are configured as name=token pairs, see `Settings.role_tokens`):

| role       | grants                | held by                                              |
|------------|-----------------------|------------------------------------------------------|
| `ingest`   | `POST /ingest/*`, `POST /api/v2/alerts` | a monitoring system (Alertmanager, Prometheus, Zabbix, a script) |
| `operator` | every other route     | a person: review approve/override, resolve, ack, reads |
| `reader`   | reads (GET/HEAD)      | a console or dashboard that changes nothing          |

The access a route needs follows from its method and path, not from a list kept beside the routes, so a
route added later is guarded from its first day: `/healthz`, `/readyz` and `/metrics` are open (kubelets and
Prometheus scrape them without secrets), and so is OPTIONS (CORS preflights); `/ingest/*` is ingest, and so is
`/api/v2/alerts` (the ingest's alias where Prometheus posts, as to an Alertmanager); any
other GET/HEAD is a read; any other method changes state and needs an operator. With no token configured at all nothing is checked (the embedded
default). Once any token is set, ingest and state-changing routes need a token of their role (a role without
tokens is closed); reads need a reader or operator token once either kind is configured, and stay open when
only ingest tokens are (the single-token deployments of before keep their open read views).

The console's `/login`, `/logout` and `/ui/static/*` are open too (sign-in checks the token itself); a browser
carries its token in the HttpOnly cookie `/login` sets (`COOKIE`), read when a request has no `Authorization`
header, and a person without one asking for a page (GET, Accept: text/html) is sent to `/login` (303).

The actor recorded for a state change (`acked_by`, a review's `who`) is the token's name, never text from
the request body. Answers (problem documents, stream/problems.py): 401 with `WWW-Authenticate` for a missing
or unknown token, 403 for a known token of the wrong role. Tokens are compared in constant time, all of them on every request.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import SecretStr

from correlator import metrics
from stream.problems import problem_response

__all__ = [
    "COOKIE",
    "INGEST_ALIASES",
    "OPEN_PATHS",
    "PRINCIPAL",
    "PROMETHEUS_ALERTS_PATH",
    "Access",
    "Denied",
    "Principal",
    "TokenBook",
    "access_of",
    "actor_of",
    "auth_middleware",
    "authorization_of",
    "bearer_token",
]

Role = Literal["ingest", "operator", "reader"]
Access = Literal["open", "ingest", "read", "operate"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/login", "/logout"})
"""Probes, the Prometheus scrape and the console's sign-in and sign-out (which check the token themselves): never
behind a token."""
OPEN_PREFIX = "/ui/static/"
"""The console's script and style sheet: nothing secret, and the sign-in page needs them."""
COOKIE = "aiops_token"
"""The console's cookie (HttpOnly, SameSite=Strict, set by `POST /login`): it carries a token the way the
`Authorization` header does, for a browser, which cannot send a header with a plain link or form."""
INGEST_PREFIX = "/ingest/"
PROMETHEUS_ALERTS_PATH = "/api/v2/alerts"
"""Where Prometheus posts alerts (it appends this to its Alertmanager address): an alias of `/ingest/alerts`."""
INGEST_ALIASES = frozenset({PROMETHEUS_ALERTS_PATH})
"""Ingest routes outside `/ingest/`: where a sender that appends its own path (Prometheus) posts."""
READ_METHODS = frozenset({"GET", "HEAD"})
PRINCIPAL = "aiops.principal"
"""The key under which the middleware leaves the caller's `Principal` on the aiohttp request."""

GRANTS: Mapping[Role, frozenset[Access]] = {
    "ingest": frozenset({"ingest"}),
    "operator": frozenset({"read", "operate"}),
    "reader": frozenset({"read"}),
}
"""What each role's token may do; a webhook token never reads or operates, a person's never ingests."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's configured name and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class Denied:
    """A refused call: 401 (no or unknown token) or 403 (a token of the wrong role), with the reason label."""

    status: int
    reason: str
    message: str

    def headers(self) -> dict[str, str]:
        """`WWW-Authenticate` on a 401, as RFC 6750 asks."""
        return {"WWW-Authenticate": 'Bearer realm="aiops"'} if self.status == 401 else {}


def access_of(method: str, path: str) -> Access:
    """The access a request needs, from its method and path alone (see the module docstring)."""
    trimmed = path.rstrip("/") or "/"
    # a CORS preflight carries no credentials, by spec
    if trimmed in OPEN_PATHS or path.startswith(OPEN_PREFIX) or method.upper() == "OPTIONS":
        return "open"
    if path.startswith(INGEST_PREFIX) or trimmed in INGEST_ALIASES:
        return "ingest"
    return "read" if method.upper() in READ_METHODS else "operate"


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None for any other header or none."""
    scheme, _, given = (header or "").strip().partition(" ")
    token = given.strip()
    return token if scheme.lower() == "bearer" and token else None


class TokenBook:
    """The configured tokens, and the one decision: may this header make this request?"""

    def __init__(self, tokens: Mapping[str, Mapping[str, SecretStr]]) -> None:
        self._entries: list[tuple[bytes, Principal]] = [
            (secret.get_secret_value().encode(), Principal(name, role))  # type: ignore[arg-type]
            for role, named in tokens.items() for name, secret in named.items()
        ]
        roles = {p.role for _, p in self._entries}
        self.enabled = bool(self._entries)
        self._reads_guarded = bool(roles & {"operator", "reader"})

    def identify(self, header: str | None) -> Principal | None:
        """The principal whose token the header carries, None when it carries none we know."""
        given = (bearer_token(header) or "").encode()
        found: Principal | None = None
        for token, principal in self._entries:  # every comparison runs: the time says nothing about the match
            if hmac.compare_digest(given, token) and given:
                found = principal
        return found

    def authorize(self, method: str, path: str, header: str | None) -> Principal | Denied | None:
        """The caller's principal, None for an allowed anonymous call, or why the call is refused."""
        access = access_of(method, path)
        if not self.enabled or access == "open" or (access == "read" and not self._reads_guarded):
            return self.identify(header) if self.enabled else None
        principal = self.identify(header)
        if principal is None:
            given = bearer_token(header) is not None
            return Denied(401, "unknown_token" if given else "no_token",
                          "unknown bearer token" if given else "a bearer token is required")
        if access not in GRANTS[principal.role]:
            return Denied(403, "wrong_role", f"a {principal.role} token may not {_verb(access)}")
        return principal


def _verb(access: Access) -> str:
    return {"ingest": "send alerts or tickets", "read": "read", "operate": "change state"}.get(access, access)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(book: TokenBook) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware applying `book` to every route but the ingest's, which decides (and counts) in
    `stream.ingest.Ingest` with the same `TokenBook.authorize`."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if access_of(request.method, request.path) == "ingest":
            return await handler(request)
        decided = book.authorize(request.method, request.path, authorization_of(request))
        if isinstance(decided, Denied):
            metrics.AUTH_REFUSALS.labels(access_of(request.method, request.path), decided.reason).inc()
            if decided.status == 401 and request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther(f"/login?next={quote(request.rel_url.path_qs, safe='')}")  # a person
            return problem_response(request, decided.status, decided.reason, decided.message,
                                    headers=decided.headers())
        request[PRINCIPAL] = decided
        return await handler(request)

    return check


def authorization_of(request: web.Request) -> str | None:
    """The request's `Authorization` header, or the console's cookie as a bearer header when it has none."""
    header = request.headers.get("Authorization")
    if header is None and request.cookies.get(COOKIE):
        return f"Bearer {request.cookies[COOKIE]}"
    return header


def actor_of(request: web.Request) -> str | None:
    """The name of the token a request was authorized with, None when it carried none (no tokens set)."""
    principal = request.get(PRINCIPAL)
    return principal.name if isinstance(principal, Principal) else None
