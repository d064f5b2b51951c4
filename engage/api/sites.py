"""Sites: admins define the titles one engage serves (docs/sites.md)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from engage import schemas
from engage.api import Blueprint
from engage.api.spec import ADMIN
from engage.identity import require_role
from engage.store import get_store, sites

blp = Blueprint("sites", __name__, description="Sites: origins, reaction set, settings (admin).")


@blp.route("/sites")
class Sites(MethodView):
    @blp.response(200, schemas.SitesSchema)
    @blp.doc(operationId="listSites", security=ADMIN)
    @require_role("admin")
    def get(self) -> dict[str, Any]:
        """Every site, the default first (made of the settings until it is stored)."""
        return {"sites": list(sites.listing(get_store()).values())}

    @blp.arguments(schemas.SiteInSchema())
    @blp.response(201, schemas.SiteSchema)
    @blp.alt_response(409, schema=schemas.ErrorSchema, description="The name is taken.")
    @blp.doc(operationId="createSite", security=ADMIN)
    @require_role("admin")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Define a site; values left out are the default site's settings."""
        return sites.create(get_store(), data)


@blp.route("/sites/<eid:name>")
class Site(MethodView):
    @blp.response(200, schemas.SiteSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown site.")
    @blp.doc(operationId="getSite", security=ADMIN)
    @require_role("admin")
    def get(self, name: str) -> dict[str, Any]:
        """One site."""
        return sites.get(get_store(), name)

    @blp.arguments(schemas.SiteChangesSchema())
    @blp.response(200, schemas.SiteSchema)
    @blp.alt_response(404, schema=schemas.ErrorSchema, description="Unknown site.")
    @blp.doc(operationId="updateSite", security=ADMIN)
    @require_role("admin")
    def patch(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        """Change some of a site's values; the others are kept."""
        return sites.update(get_store(), name, data)
