"""A signed-in dashboard client that posts forms with their CSRF token, and the message
a form page shows under a field. The `desk` and `admin_desk` fixtures (conftest.py)
are one each for an editor and an admin."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Desk:
    """A signed-in dashboard client and its CSRF token."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        page = client.get("/dashboard/signin").get_data(as_text=True)
        match = CSRF.search(page)
        assert match
        response = client.post("/dashboard/signin",
                               data={"token": token, "csrf_token": match.group(1)})
        assert response.status_code == 302
        match = CSRF.search(client.get("/dashboard").get_data(as_text=True))
        assert match
        self.csrf = match.group(1)

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]]) -> Any:
        items = list(data.items()) if isinstance(data, dict) else list(data)
        fields: dict[str, Any] = {}
        for key, value in [*items, ("csrf_token", self.csrf)]:
            fields.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        return self.client.post(path, data=fields)


def field_error(page: str, field_id: str) -> str:
    """The message shown under a field (empty when there is none)."""
    match = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>',
                      page, re.S)
    return html.unescape(match.group(1)) if match else ""
