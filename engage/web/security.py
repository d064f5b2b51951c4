"""Security headers on every HTML page: no inline script, no framing, no sniffing."""

from __future__ import annotations

from flask import Response

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)


_HTML_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    # No opener handle for pages we link to, and no powerful features for ours.
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)


def add_headers(response: Response) -> None:
    """The headers of every answer (engage's after hook calls this)."""
    # Each header only when the view did not set its own (setdefault, with one lookup).
    headers = response.headers
    if "X-Content-Type-Options" not in headers:
        headers.add("X-Content-Type-Options", "nosniff")
    if headers.get("Content-Type", "").startswith("text/html"):
        for name, value in _HTML_HEADERS:
            if name not in headers:
                headers.add(name, value)
