"""An authoritative DNS server on loopback for tests: answers A and AAAA questions from
names the test sets, NXDOMAIN for every other name."""

from __future__ import annotations

import ipaddress
import socketserver
import threading
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

# The names the suite registers webhooks under, and the public addresses they resolve to.
# No test delivers to them: deliveries go to a receiver on 127.0.0.1.
PUBLIC_NAMES = {
    "hooks.engage.test": ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
}


class DnsServer:
    """`set(name, *addresses)` decides what the name resolves to from then on; `questions`
    records every (name, type) asked."""

    def __init__(self, names: dict[str, tuple[str, ...]] | None = None) -> None:
        self.defaults = dict(names or {})
        self.lock = threading.Lock()
        self.names = dict(self.defaults)
        self.questions: list[tuple[str, str]] = []
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                wire, sock = self.request
                try:
                    query = dns.message.from_wire(wire)
                except dns.exception.DNSException:
                    return
                sock.sendto(server.answer(query).to_wire(), self.client_address)

        self.server = socketserver.UDPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> DnsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def set(self, name: str, *addresses: str) -> None:
        with self.lock:
            self.names[name.lower()] = addresses

    def reset(self) -> None:
        """Back to the names it started with; no questions asked yet."""
        with self.lock:
            self.names = dict(self.defaults)
            self.questions = []

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        with self.lock:
            self.questions.append((name, kind))
            addresses = self.names.get(name)
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        version = {"A": 4, "AAAA": 6}.get(kind)
        wanted = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if wanted:  # else: the name exists without records of this type (NODATA)
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", question.rdtype, wanted))
        return response

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
