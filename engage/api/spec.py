"""What the OpenAPI document says about tokens and conditional reads.

A view declares who may call it with one of the security lists below
(`@blp.doc(operationId=..., security=EDITOR)`) and a conditional read with its 304
response. `ApiConventions`, an apispec plugin, writes what follows from those two
declarations into every operation the same way: the `X-Engage-Reader` header (so a
generated client can send it), `If-None-Match` and the `ETag` of the 200, the 401/403
answers of staff operations and one "Token:" line in the description, which the
reference page and generated clients show. It also writes a nullable nested schema as
`allOf` its one reference plus `nullable` (apispec writes an `anyOf` with an anonymous
object, which generated clients turn into a class of its own, `PollResultsType1Type0`).
"""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin

from engage.identity import READER_HEADER

# A requirement list is a choice: any one entry satisfies it; `{}` means no token.
Security = list[dict[str, list[str]]]
READER: Security = [{"readerToken": []}]
READER_OPTIONAL: Security = [{}, {"readerToken": []}]
# Reads that answer a reader or a staff member with their own view (poll results).
READER_OR_STAFF_OPTIONAL: Security = [{}, {"readerToken": []}, {"editorToken": []}]
EDITOR: Security = [{"editorToken": []}, {"adminToken": []}]
ADMIN: Security = [{"adminToken": []}]

_BEARER = "Sent as `Authorization: Bearer <token>`; tokens come from `engage token create`."
SECURITY_SCHEMES = {
    "editorToken": {
        "type": "http", "scheme": "bearer",
        "description": "An API token of role editor (an admin token works too). " + _BEARER,
    },
    "adminToken": {
        "type": "http", "scheme": "bearer",
        "description": "An API token of role admin; an editor token gets 403. " + _BEARER,
    },
    "readerToken": {
        "type": "apiKey", "in": "header", "name": READER_HEADER,
        "description": "An anonymous reader token from `POST /api/v1/readers`.",
    },
}

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _token_note(schemes: set[str], optional: bool) -> str:
    if "adminToken" in schemes and "editorToken" not in schemes:
        return "Token: admin (`Authorization: Bearer`). An editor token gets 403."
    if "editorToken" in schemes and not optional:
        return "Token: editor or admin (`Authorization: Bearer`)."
    if "readerToken" in schemes and optional:
        staff = " or an editor/admin token" if "editorToken" in schemes else ""
        return f"Token: optional: a reader token (`{READER_HEADER}`){staff}."
    if "readerToken" in schemes:
        return f"Token: reader (`{READER_HEADER}`)."
    return "Token: none."


def _header(name: str, required: bool, description: str) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": required,
            "schema": {"type": "string"}, "description": description}


_ANONYMOUS_NULL = {"type": "object", "nullable": True}


class ApiConventions(BasePlugin):
    """Completes each operation from its declared security and its 304 response, and
    names the schema of every nullable nested field."""

    def schema_helper(self, name: str, definition: dict[str, Any],
                      **kwargs: Any) -> dict[str, Any] | None:
        properties = definition.get("properties")
        if not properties:
            return None
        named = {}
        for key, prop in properties.items():
            choices = prop.get("anyOf", [])
            if len(choices) == 2 and _ANONYMOUS_NULL in choices:
                ref = next(c for c in choices if c != _ANONYMOUS_NULL)
                prop = {k: v for k, v in prop.items() if k != "anyOf"}
                prop.update(allOf=[ref], nullable=True)
            named[key] = prop
        return {"properties": named}

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            security = operation.get("security", [])
            schemes = {name for requirement in security for name in requirement}
            optional = {} in security
            parameters = operation.setdefault("parameters", [])
            responses = operation.setdefault("responses", {})
            # flask-smorest keys responses by int status code, a manual doc may use strings.
            statuses = {str(status): status for status in responses}
            if "readerToken" in schemes:
                if "401" not in statuses:
                    responses[401] = {"description": "Invalid reader token.", "content": _ERROR}
                parameters.append(_header(
                    READER_HEADER, not optional,
                    "The reader token (`POST /api/v1/readers`)."
                    + (" Optional: without it the answer is the anonymous one." if optional
                       else ""),
                ))
            if "304" in statuses:
                parameters.append(_header(
                    "If-None-Match", False,
                    "An `ETag` from an earlier answer: 304 without a body when unchanged.",
                ))
                ok = responses.get(statuses.get("200"))
                if ok is not None:
                    ok.setdefault("headers", {})["ETag"] = {
                        "description": "Tag of this answer (anonymous reads only), "
                                       "for `If-None-Match`.",
                        "schema": {"type": "string"},
                    }
            if schemes & {"editorToken", "adminToken"} and not optional:
                role = "editor" if "editorToken" in schemes else "admin"
                if "401" not in statuses:
                    responses[401] = {"description": "No valid API token.", "content": _ERROR}
                if "403" not in statuses:
                    responses[403] = {"description": f"The token lacks the {role} role.",
                                      "content": _ERROR}
            note = _token_note(schemes, optional)
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{note}" if description else note
            if not parameters:
                del operation["parameters"]
