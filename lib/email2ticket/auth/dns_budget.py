"""DNS lookups for sender verification, all of one delivery within one time budget.

A DKIM key or DMARC record that cannot be fetched *right now* is a temporary failure: it may work on
the MTA's next attempt, so it must be told apart from "there is no such record" (a permanent answer).
`TxtResolver.txt()` returns the records, None for NXDOMAIN/no data, and raises DnsTemporaryError for
timeouts, SERVFAIL, unreachable or unconfigured resolvers, and once the budget is spent. The budget
covers every query together, so a message with many signatures cannot hold the delivery hostage.

dnspython is imported here only; this module is loaded only when a decision needs our own DKIM check.
"""

from __future__ import annotations

import signal
import time

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ..config.load import parse_resolver
from ..config.model import DnsConfig
from ..exits import DeliveryError


class DnsTemporaryError(Exception):
    """A lookup that may succeed later: timeout, SERVFAIL, no resolver, or the time budget spent."""


class TxtResolver:
    """TXT lookups against the configured resolvers (else /etc/resolv.conf), bounded by one deadline."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.deadline = time.monotonic() + config.time_budget
        self.queries: list[str] = []  # "name: outcome (ms)", for the bench and debugging
        self._resolver: dns.resolver.Resolver | None = None

    def _get_resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.resolver.Resolver(configure=not self.config.resolvers)
            except dns.exception.DNSException as exc:  # no /etc/resolv.conf, or one without servers
                raise DnsTemporaryError(f"no DNS resolver configured ({exc})") from exc
            if self.config.resolvers:
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port)
                    for host, port in (parse_resolver(r) for r in self.config.resolvers)
                ]
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    def txt(self, name: str) -> list[bytes] | None:
        """Every TXT record at `name` (each one's strings joined), or None when there is none."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.queries.append(f"{name}: not asked, budget spent")
            raise DnsTemporaryError(f"the DNS time budget ({self.config.time_budget:g} s) was spent before {name}")
        started = time.monotonic()
        alarm = signal.getitimer(signal.ITIMER_REAL)[0]  # the pipe command's delivery_timeout, when armed
        lifetime = min(remaining, alarm + 0.05) if alarm > 0 else remaining
        try:
            answer = self._get_resolver().resolve(
                name, dns.rdatatype.TXT, lifetime=lifetime, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return self._log(name, "NXDOMAIN", started, None)
        except dns.resolver.YXDOMAIN:
            return self._log(name, "YXDOMAIN", started, None)
        except dns.exception.Timeout as exc:
            _reraise_interruption(exc)
            self._log(name, "timeout", started, None)
            raise DnsTemporaryError(f"DNS timeout looking up {name} (no answer within {lifetime:.1f} s)") from exc
        except dns.resolver.NoNameservers as exc:
            _reraise_interruption(exc)
            self._log(name, "SERVFAIL", started, None)
            raise DnsTemporaryError(f"no name server answered for {name} (SERVFAIL or refused)") from exc
        except dns.exception.DNSException as exc:
            self._log(name, type(exc).__name__, started, None)
            raise DnsTemporaryError(f"DNS lookup of {name} failed: {exc}") from exc
        records = [b"".join(rdata.strings) for rdata in answer.rrset] if answer.rrset is not None else None
        return self._log(name, f"{len(records or [])} TXT", started, records or None)

    def _log(self, name: str, outcome: str, started: float, value: list[bytes] | None) -> list[bytes] | None:
        self.queries.append(f"{name}: {outcome} ({(time.monotonic() - started) * 1000:.1f} ms)")
        return value


def _reraise_interruption(exc: dns.exception.DNSException) -> None:
    """dnspython records any exception raised while it waits for a server - including delivery_timeout's
    alarm (a DeliveryError) - and keeps trying until its lifetime ends; give the alarm back its meaning."""
    for error in (exc.kwargs or {}).get("errors", ()):
        if len(error) > 3 and isinstance(error[3], DeliveryError):
            raise error[3]
