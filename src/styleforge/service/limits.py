"""Request limits: body size and upload time (an ASGI middleware), and a per-client
rate limit on job submissions.

The body limit counts bytes as they arrive, so neither a false ``Content-Length`` nor a
chunked upload gets past it, and nothing larger than the limit is ever buffered. The
timeout bounds the whole body's arrival (a client trickling bytes holds a connection
for at most ``request_timeout`` seconds).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque

from styleforge.service.refusals import IMAGE_ERROR, REQUEST_TIMEOUT, TOO_MANY_REQUESTS, Refusal


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` (413) or slower than ``timeout`` seconds (408)."""

    def __init__(self, app: object, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        await self.app(scope, self._limited(scope, receive), send)  # type: ignore[operator]

    def _limited(self, scope: dict, receive: object) -> object:
        """``receive`` wrapped to raise :class:`Refusal` when a limit is crossed; raised
        inside the app, the app's handler turns it into the response."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        state = {"received": 0, "checked": False}
        too_large = Refusal(413, f"the request is larger than the limit of {self.max_bytes:,} bytes: send a smaller image",
                            IMAGE_ERROR)

        async def receive_limited() -> dict:
            if not state["checked"]:
                state["checked"] = True
                declared = _content_length(scope)
                if declared is not None and declared > self.max_bytes:
                    raise too_large
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)  # type: ignore[operator]
            except TimeoutError:
                raise Refusal(408, f"the request body did not arrive within {self.timeout:g} s", REQUEST_TIMEOUT) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    raise too_large
            return message

        return receive_limited


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RateLimiter:
    """At most ``limit`` submissions per client in any ``window`` seconds (sliding window;
    ``limit`` 0 turns it off). Kept in memory: per server process."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Count one submission by ``client``.

        Raises:
            Refusal: 429 with ``Retry-After`` when the client is over its limit.
        """
        if not self.limit:
            return
        now = time.monotonic()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                wait = max(1, math.ceil(times[0] + self.window - now))
                raise Refusal(429, f"too many jobs from this address: at most {self.limit} per {self.window:g} s; "
                                   f"try again in {wait} s", TOO_MANY_REQUESTS, {"Retry-After": str(wait)})
            times.append(now)
            if len(self._seen) > 10_000:  # forget idle clients so memory stays bounded
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
