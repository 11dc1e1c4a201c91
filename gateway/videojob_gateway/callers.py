"""Who is calling, for every route (app.py's, files.py's): the credential the request presents,
its rate (ratelimit.py), then who it is (auth.Authenticator). One dependency, `Who`, so that no
route can skip a step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from . import problems
from .auth import Authenticator, Caller, credential
from .ratelimit import RateLimiter, retry_after

# Declared for the OpenAPI document; the headers themselves are read by `auth.credential`, which
# tells a malformed one from a missing one.
_BEARER = HTTPBearer(auto_error=False, description="A Kubernetes token, or an API key (vjk_…)")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (vjk_…)")


@dataclass
class Callers:
    authn: Authenticator
    limiter: RateLimiter  # buckets keyed by the credential's SHA-256 (`Credential.cache_key`)
    rate: float  # requests a second per credential; 0: no limit
    burst: int
    refused: Callable[[], None]  # counts a request over its rate

    async def identify(self, request: Request) -> Caller:
        cred = credential(request.headers.get("authorization"), request.headers.get("x-api-key"))
        request.state.credential = cred
        # Before the TokenReview: a flood with one bad token costs the API server nothing.
        wait = (self.limiter.take(("caller", cred.cache_key), round(self.rate * 60), self.burst,
                                  time.monotonic()) if self.rate > 0 else 0.0)
        if wait > 0:
            self.refused()
            raise problems.Problem(
                429, "too-many-requests", "Too many requests",
                f"more than {self.burst} requests at once or {self.rate:g} a second with this "
                "credential", headers={"Retry-After": retry_after(wait)})
        return await self.authn.authenticate(cred)


async def caller(request: Request, _bearer: Annotated[object, Security(_BEARER)],
                 _key: Annotated[object, Security(_API_KEY)]) -> Caller:
    callers: Callers = request.app.state.callers
    return await callers.identify(request)


Who = Annotated[Caller, Depends(caller)]
