"""Entra ID tokens for asyncio clients, fetched in a worker thread so the event loop never waits on Azure.

redis-py's asyncio token manager calls the identity provider's ``request_token`` on the event
loop, and a real provider (azure-identity, MSAL) answers with an HTTP request to Entra ID: every
task of the application would stall for it at each refresh. ``PrefetchedTokens`` stands between
the two: a timer thread fetches the next token shortly before the token manager asks for it, so
``request_token`` answers from memory. Only when no fresh token is ready (the prefetch failed or
is late) does it fetch in the caller, as the manager would have anyway.
"""

from __future__ import annotations

import threading
import time
from typing import Any

AHEAD = 0.15
"""Prefetch this fraction of a token's life before the manager's own refresh ratio."""


class PrefetchedTokens:
    """An identity provider for redis-py's token manager: ``request_token`` as its interface, served ahead of time."""

    def __init__(self, idp: Any, refresh_ratio: float):
        self._idp = idp
        self._at = max(refresh_ratio - AHEAD, refresh_ratio / 2)
        self._lock = threading.Lock()
        self._ready: Any = None
        """The newest token fetched and not handed out yet (None: the next ask fetches)."""
        self._current: Any = None
        self._timer: threading.Timer | None = None
        self._stopped = False

    def prime(self) -> None:
        """Fetch the first token (call it in a worker thread, before the client connects)."""
        self._fetched(self._idp.request_token(True))

    def request_token(self, force_refresh: bool = False) -> Any:
        with self._lock:
            ready, current = self._ready, self._current
            if ready is not None:  # a prefetched token: newer than anything handed out
                self._ready, self._current = None, ready
                return ready
        if current is not None and (self._stopped or self._young(current) or (not force_refresh and not current.is_expired())):
            # After stop(): the old token, so that the manager's chain ends without asking Azure. A token younger
            # than the prefetch point is as fresh as a new one (the manager forces a refresh right at start).
            return current
        token = self._idp.request_token(force_refresh)  # nothing prefetched in time: as the manager would have
        with self._lock:
            self._current = token
        self._schedule(token)
        return token

    def _young(self, token: Any) -> bool:
        received = token.get_received_at_ms()
        return time.time() * 1000 - received < (token.get_expires_at_ms() - received) * self._at

    def stop(self) -> None:
        """No more fetching: the client closed. The token manager's next renewal gets the old token and ends."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()

    def _fetched(self, token: Any) -> None:
        with self._lock:
            self._ready = token
        self._schedule(token)

    def _schedule(self, token: Any) -> None:
        life_ms = token.get_expires_at_ms() - token.get_received_at_ms()
        with self._lock:
            if self._stopped:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(life_ms * self._at / 1000, 0.0), self._prefetch)
            self._timer.daemon = True
            self._timer.start()

    def _prefetch(self) -> None:
        try:
            self._fetched(self._idp.request_token(True))
        except Exception:  # noqa: BLE001 - the manager's own request retries and reports it
            pass


def prefetch_tokens(provider: Any) -> PrefetchedTokens | None:
    """Put a PrefetchedTokens between redis-entraid's provider and its identity provider; None if it has none.

    (redis-entraid keeps its token manager and identity provider in private attributes: there is no
    public way in.)
    """
    manager: Any = getattr(provider, "_token_mgr", None)
    idp = getattr(manager, "_idp", None)
    if manager is None or idp is None:
        return None
    if not isinstance(idp, PrefetchedTokens):
        idp = manager._idp = PrefetchedTokens(idp, manager._config.get_expiration_refresh_ratio())
    return idp
