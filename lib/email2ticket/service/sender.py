"""The resident service's outgoing mail: notifications sent on threads of their own, never on a delivery's.

A delivery commits, the MTA gets its answer, and the notifications the delivery queued go out afterwards
(delivery/run.py `notify`). In the service they used to go out on the delivery threads themselves: a relay
that accepted connections and never answered then held every thread for `notifications.timeout` per
notification, and the next mails waited for a thread until their delivery_timeout ran out (75 for all of
them). Sending is therefore this module's: a bounded queue, a couple of sender threads and a database pool
of their own, so neither a thread nor a connection of incoming mail ever waits on outgoing mail.

When the queue is full (the relay is hung or slow, and a burst of tickets keeps coming) a delivery's
notifications are not queued here at all: they stay `pending` in the database, leased to that delivery,
and are sent once they are due again after the lease (store/notices.py). Shutting the service down leaves
what is queued the same way. Nothing is lost; only late.

Notifications due for a retry (a send that failed, after its back-off; a lease that ran out) used to wait
for the next delivery, which sends a few on its way out: on a quiet help desk, hours. So a timer thread
here also sends them every `[service] retry_interval` seconds (0: only deliveries do), a batch of
RETRY_BATCH within one `notifications.timeout`. Several service processes (or hosts) may run the timer
at once: each row is claimed by exactly one of them (store/outbox.py claim).
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from ..delivery.run import Result, notify
from ..errors import describe_error
from ..log import write_line
from ..store.delivery import DeliveryStore

if TYPE_CHECKING:
    from ..config.model import Config
    from ..outbound.send import SendReport

THREADS = 2  # a healthy relay takes a notification in a few ms; a hung one is bounded per delivery anyway
QUEUE_SIZE = 1000  # deliveries' worth of notifications waiting for a sender thread
RETRY_BATCH = 20  # notifications due for a retry that one round of the timer claims and sends
IDLE_WAIT = 60.0  # seconds between looks at the setting while retry_interval is 0 (a reload may set it)


class Sender:
    """Sends each committed delivery's notifications (and the retries it found due) on its own threads."""

    def __init__(self, config: Config, *, threads: int = THREADS, queue_size: int = QUEUE_SIZE) -> None:
        self.config = config
        # Its own pool: a hung relay or a sender stuck on the database never holds a delivery's connection.
        # One connection more than the threads: the retry timer's.
        url = config.resolved_database_url()
        self.store = DeliveryStore(url, lock_timeout=config.lock_timeout, pool_size=threads + 1)
        self._queue: queue.Queue[Result | None] = queue.Queue(maxsize=queue_size)
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"notify-{number}", daemon=True) for number in range(threads)
        ]
        self._timer = threading.Thread(target=self._retry_timer, name="notify-retry", daemon=True)
        for thread in (*self._threads, self._timer):
            thread.start()

    def submit(self, result: Result) -> bool:
        """Queue a committed delivery's notifications; False (and they wait in the database) when full."""
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            write_line(
                "email2ticket serve: the notification queue is full (is the relay slow or hung?); this delivery's "
                "notifications stay pending for a retry",
                self.config.logging,
                error=True,
            )
            return False
        return True

    def _run(self) -> None:
        while (result := self._queue.get()) is not None:
            try:
                notify(result, self.store, self.config)  # records failures itself; raises only on a bug
            except Exception as exc:
                write_line(
                    f"email2ticket serve: sending notifications failed: {describe_error(exc)}",
                    self.config.logging,
                    error=True,
                )

    def _retry_timer(self) -> None:
        """Every retry_interval seconds, the notifications due for a retry; read each round, so a reload applies."""
        while not self._stopped.wait(self.config.service.retry_interval or IDLE_WAIT):
            if self.config.service.retry_interval:
                self.retry_due()

    def retry_due(self) -> SendReport | None:
        """Send up to RETRY_BATCH notifications that wait for a retry; never raises (a bug is logged)."""
        from ..outbound.send import send

        config = self.config  # one round, one configuration (a reload may replace it meanwhile)
        if not config.notifications.enabled:
            return None
        try:
            report = send(self.store, config, due=RETRY_BATCH, budget=config.notifications.timeout)
        except Exception as exc:  # the database is down, the key file unreadable: the next round tries again
            write_line(f"email2ticket serve: retrying notifications: {describe_error(exc)}", config.logging, error=True)
            return None
        if report.sent or report.failed:
            write_line(f"email2ticket serve: notifications retried: {report.describe()}", config.logging)
        return report

    def close(self, timeout: float = 1.0) -> None:
        """Stop taking work. Threads still sending are daemons: they do not hold up the process's exit, and what
        they had not finished stays pending in the database."""
        self._stopped.set()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout)
        self.store.dispose()
