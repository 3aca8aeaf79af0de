"""A small authoritative DNS server on 127.0.0.1 for tests: real UDP and TCP, real wire format.

Tests publish TXT records (DKIM keys, DMARC policies) in `records`; every other name is NXDOMAIN, so
real-world messages' keys are simply not found. Names in `hang` are never answered (the resolver times
out: a DNS temperror) and names in `servfail` get SERVFAIL. A name matches an entry exactly or as a
subdomain of it. Built on dnspython's message codec; answers larger than the client's UDP size are
truncated (TC) so the resolver retries over TCP, as with a real server.

    with DnsServer() as server:
        server.add_txt("sel._domainkey.example.com", "v=DKIM1; k=rsa; p=...")
        config = f'[dns]\\nresolvers = ["{server.address}"]\\n'
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from collections.abc import Iterable
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _matches(name: str, entries: Iterable[str]) -> bool:
    return any(name == entry or name.endswith("." + entry) for entry in entries)


def _txt_strings(value: str | bytes) -> str:
    """One TXT record in zone-file form: the value cut into quoted strings of at most 255 bytes."""
    data = value.encode("ascii") if isinstance(value, str) else value
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + chunk.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


class DnsServer:
    """Serves `records` (name -> TXT values) on 127.0.0.1:<port>, UDP and TCP, in daemon threads."""

    def __init__(self) -> None:
        self.records: dict[str, list[str | bytes]] = {}
        self.hang: set[str] = set()
        self.servfail: set[str] = set()
        self.queries: list[str] = []  # "name TYPE" of every query, in order
        self._lock = threading.Lock()
        self._udp: socket.socket | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.port = 0

    # --- zone data ------------------------------------------------------------------------------

    def add_txt(self, name: str, *values: str | bytes) -> None:
        with self._lock:
            self.records.setdefault(_key(name), []).extend(values)

    def remove(self, name: str) -> None:
        with self._lock:
            self.records.pop(_key(name), None)

    @property
    def address(self) -> str:
        """The resolver address for the [dns] configuration: '127.0.0.1:PORT'."""
        return f"127.0.0.1:{self.port}"

    def asked(self, fragment: str) -> bool:
        """Whether any query so far named something containing `fragment`."""
        with self._lock:
            return any(fragment.lower() in q for q in self.queries)

    # --- answering ------------------------------------------------------------------------------

    def answer(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The response to one query, or None to stay silent (a hanging name, or garbage)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = _key(question.name.to_text())
        with self._lock:
            self.queries.append(f"{name} {dns.rdatatype.to_text(question.rdtype)}")
            if _matches(name, self.hang):
                return None
            servfail = _matches(name, self.servfail)
            values = list(self.records.get(name, ()))
            exists = bool(values) or any(r.endswith("." + name) for r in self.records)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and values:
            rrset = dns.rrset.from_text(
                question.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT, *(_txt_strings(v) for v in values)
            )
            response.answer.append(rrset)
        limit = 65535 if not udp else (max(query.payload, 512) if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    # --- serving --------------------------------------------------------------------------------

    def start(self) -> DnsServer:
        server = self

        class _TcpHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(5)
                try:
                    while True:
                        header = conn.recv(2, socket.MSG_WAITALL)
                        if len(header) < 2:
                            return
                        (length,) = struct.unpack("!H", header)
                        reply = server.answer(conn.recv(length, socket.MSG_WAITALL), udp=False)
                        if reply is None:
                            return
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        for _attempt in range(20):  # the same free port for UDP and TCP
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), _TcpHandler)
            except OSError:
                udp.close()
                continue
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        tcp.daemon_threads = True
        udp.settimeout(0.2)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._threads = [
            threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True),
            threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.2}, name="dns-tcp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _serve_udp(self) -> None:
        assert self._udp is not None
        while not self._stopping.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire, udp=True)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(reply, peer)

    def close(self) -> None:
        self._stopping.set()
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._udp is not None:
            self._udp.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
