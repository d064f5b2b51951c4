"""Webhooks: admins register endpoints; `engage worker` delivers events to them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import destinations, errors, schemas
from engage.api import Blueprint
from engage.api.spec import ADMIN
from engage.identity import require_role
from engage.store import get_store, sites, webhooks

blp = Blueprint("webhooks", __name__, description="Signed event deliveries (admin).")
UNKNOWN = "No webhook exists under this id."


@blp.route("/webhooks")
class Webhooks(MethodView):
    @blp.response(200, schemas.WebhookListSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.doc(operationId="listWebhooks", security=ADMIN)
    @require_role("admin")
    def get(self) -> dict[str, Any]:
        """Registered webhooks (never their secrets)."""
        return {"webhooks": webhooks.listed(get_store())}

    @blp.arguments(schemas.WebhookInSchema())
    @blp.response(201, schemas.WebhookSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.alt_response(422, schema=schemas.ErrorSchema,
                      description="Invalid fields, or a destination that is not public.")
    @blp.doc(operationId="createWebhook", security=ADMIN)
    @require_role("admin")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register an endpoint for event types (`reaction.vote`), families (`poll.*`) or `*`.

        Each delivery is a POST of `{"id", "type", "occurred_at", "data"}`; `id` is the
        idempotency id (a retried delivery repeats it). The body is signed:
        `X-Engage-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`. Failed
        deliveries are retried with exponential backoff, then dead-lettered. Only
        public internet addresses are accepted (422 for loopback, private, link-local
        and other internal ones), and every delivery checks the address again. With
        `site` it receives that site's events only.
        """
        store = get_store()
        if why := destinations.refused(data["url"], store.config):
            raise errors.ValidationFailed(fields={"url": [why]})
        if data["site"] is not None and data["site"] not in sites.listing(store):
            raise errors.ValidationFailed(fields={"site": ["No such site."]})
        record = webhooks.create(store, data["url"], data["events"], data["secret"],
                                 data["site"])
        return webhooks.public(record)


@blp.route("/webhooks/<eid:webhook_id>")
class Webhook(MethodView):
    @blp.response(204)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown webhook.")
    @blp.doc(operationId="deleteWebhook", security=ADMIN)
    @require_role("admin")
    def delete(self, webhook_id: str) -> None:
        """Stop deliveries to this endpoint (pending retries are dropped)."""
        if not webhooks.delete(get_store(), webhook_id):
            raise errors.NotFound(UNKNOWN)


@blp.route("/webhooks/<eid:webhook_id>/test")
class WebhookTest(MethodView):
    @blp.response(202, schemas.WebhookTestSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown webhook.")
    @blp.doc(operationId="testWebhook", security=ADMIN)
    @require_role("admin")
    def post(self, webhook_id: str) -> dict[str, Any]:
        """Send this endpoint a signed `webhook.test` event (`data`: `{"webhook": id}`).

        The worker delivers it as any event, retries included; its outcome shows as the
        webhook's `last_attempt` in `listWebhooks`.
        """
        store = get_store()
        if not webhooks.exists(store, webhook_id):
            raise errors.NotFound(UNKNOWN)
        return {"delivery": webhooks.queue_test(store, webhook_id)}


@blp.route("/webhooks/dead-letters")
class DeadLetters(MethodView):
    @blp.response(200, schemas.DeadLetterListSchema)
    @blp.alt_response(401, schema=schemas.ErrorSchema, description="No or invalid token.")
    @blp.alt_response(403, schema=schemas.ErrorSchema, description="Not an admin.")
    @blp.doc(operationId="listDeadLetters", security=ADMIN)
    @require_role("admin")
    def get(self) -> dict[str, Any]:
        """The newest 100 deliveries given up after the last retry, newest first."""
        return {"dead_letters": webhooks.dead_letters(get_store())}
