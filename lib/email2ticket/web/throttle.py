"""Login throttling: a password guesser gets a handful of tries per account and per client, then waits.

Failed sign-ins are counted in a sliding window, separately for the account name tried and for the client
address (the proxy's X-Forwarded-For only when that proxy is trusted: web/app.py). Past either limit, sign-ins
are refused without checking the password (HTTP 429 with Retry-After), so a refused guess costs the attacker a
request and us no Argon2 work. The counts live in the process: one web admin process serves a help desk, and a
restart forgets at most one window. Memory is bounded: the oldest keys are dropped past `max_keys`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int = 5,
        per_client: int = 20,
        window: float = 15 * 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"account": per_account, "client": per_client}
        self.window, self.max_keys, self.clock = window, max_keys, clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key) or deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def wait(self, account: str, client: str) -> float:
        """Seconds until a sign-in for `account` from `client` may be tried again; 0 when it may now."""
        now = self.clock()
        waits = [0.0]
        with self._lock:
            for key in (("account", account), ("client", client)):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    waits.append(times[-self.limits[key[0]]] + self.window - now)
        return max(waits)

    def failed(self, account: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (("account", account), ("client", client)):
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, account: str) -> None:
        """The right password ends the account's count (the client's stays: it may be guessing other names)."""
        with self._lock:
            self._failures.pop(("account", account), None)
