"""A real SMTP server on loopback for tests (aiosmtpd), keeping every message it accepts."""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.redis_server import free_port


class MailServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        # Named, so the server does not look its own name up (the tests stay off DNS).
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port(),
                                     server_hostname="mail.test")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies ("" when absent)."""
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    return (plain.get_content() if plain else "", html.get_content() if html else "")
