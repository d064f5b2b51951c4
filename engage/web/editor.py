"""The editors' forms: polls, related links and articles, without curl.

Every form is loaded through the API's schema for the same write and stored through
the same store function the API calls, so a form and a CMS obey one set of rules.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from flask import abort, current_app, redirect, request, url_for
from marshmallow import ValidationError

from engage import schemas
from engage.api.polls import poll_body
from engage.errors import EngageError, PollFinal, UnknownArticle, UnknownPoll, ValidationFailed
from engage.identity import check_article_site, site_scope
from engage.store import articles, get_store, links, polls, sites
from engage.web import dashboard, forms
from engage.web.forms import FORM_ERROR, Errors

bp = forms.staff_blueprint("editor", __name__)

VISIBILITY = (
    ("always", "Always"),
    ("after_vote", "After the reader votes"),
    ("after_close", "After the poll closes"),
)
OPTION_FIELDS = 10
UNKNOWN_ARTICLE = "No article is registered under this id."


# -- polls --------------------------------------------------------------------------------
def _poll_input(form: Any) -> dict[str, Any]:
    """The form as the JSON body of POST /api/v1/polls."""
    multiple = form.get("kind") == "multiple"
    data: dict[str, Any] = {
        "question": form.get("question", ""),
        "options": [label for label in form.getlist("option") if label.strip()],
        "article": form.get("article", "").strip() or None,
        "multiple": multiple,
        "closes_at": forms.local_time(form.get("closes_at"), form.get("tz")),
        "results": form.get("results", "always"),
        "min_votes": forms.number(form.get("min_votes")),
    }
    if multiple:  # a maximum left in the field of a single-choice poll is not meant
        data["max_choices"] = forms.number(form.get("max_choices"))
    return data


def _preview(data: dict[str, Any]) -> dict[str, Any]:
    """The poll as the widget would get it right after publishing (no votes yet)."""
    labels = data["options"]
    ids = polls.option_ids(len(labels))
    public_results = data["results"] == "always" and not data.get("min_votes")
    return {
        "question": data["question"],
        "options": [{"id": i, "label": label} for i, label in zip(ids, labels, strict=True)],
        "multiple": data["multiple"],
        "max_choices": data.get("max_choices") or len(labels),
        "results": {"percentages": dict.fromkeys(ids, 0), "total": 0}
        if public_results else None,
    }


def _poll_form(template_data: dict[str, Any], errors: Errors, status: int = 200,
               preview: dict[str, Any] | None = None) -> Any:
    return forms.render(
        "dashboard/poll_form.html", status,
        page="polls",
        form=template_data,
        errors=errors,
        preview=preview,
        visibility=VISIBILITY,
        option_fields=OPTION_FIELDS,
        picker=articles.recent(get_store()),
        utc_label=forms.utc_label,
    )


@bp.route("/polls/new", methods=["GET", "POST"])
def poll_new() -> Any:
    if request.method == "GET":
        empty: dict[str, Any] = {
            "question": "", "options": [], "kind": "single",
            "article": request.args.get("article", ""), "results": "always",
            "closes_at": "", "tz": "", "min_votes": "", "max_choices": "", "closes_iso": None,
        }
        return _poll_form(empty, {})
    form = request.form
    raw = _poll_input(form)
    shown = {**{k: form.get(k, "") for k in ("question", "article", "closes_at", "tz",
                                              "min_votes", "max_choices")},
             "options": form.getlist("option"), "kind": "multiple" if raw["multiple"] else "single",
             "results": raw["results"], "closes_iso": raw["closes_at"]}
    data, errors = forms.load(schemas.PollInSchema(), raw)
    if not errors and data["article"] and articles.get(get_store(), data["article"]) is None:
        errors = {"article": [UNKNOWN_ARTICLE]}  # said before a preview, not only on publish
    if errors:
        return _poll_form(shown, errors, 422)
    if form.get("action") == "preview":
        return _poll_form(shown, {}, preview=_preview(data))
    check_article_site(data["article"])
    try:
        poll = polls.create(get_store(), data)
    except UnknownArticle:
        return _poll_form(shown, {"article": [UNKNOWN_ARTICLE]}, 422)
    except EngageError as exc:
        return _poll_form(shown, {FORM_ERROR: [exc.message]}, 422)
    return redirect(url_for("dashboard.poll_list", notice=f"Poll created: {poll.question}"))


def _poll_or_404(poll_id: str) -> dict[str, Any]:
    poll = polls.get(get_store(), poll_id)
    if poll is None:
        abort(404)
    return poll_body(poll, staff=True)


@bp.route("/polls/<eid:poll_id>/edit", methods=["GET", "POST"])
def poll_edit(poll_id: str) -> Any:
    poll = _poll_or_404(poll_id)
    if request.method == "GET":
        shown = {"question": poll["question"], "results": poll["results_visibility"],
                 "closes_at": forms.local_input(poll["closes_at"]),
                 "tz": "UTC" if poll["closes_at"] else "",
                 "min_votes": "" if poll["min_votes"] is None else str(poll["min_votes"]),
                 "closes_iso": poll["closes_at"]}
        return _edit_form(poll, shown, {})
    form = request.form
    raw = {
        "question": form.get("question", ""),
        "results": form.get("results", ""),
        "closes_at": forms.local_time(form.get("closes_at"), form.get("tz")),
        "min_votes": forms.number(form.get("min_votes")),
    }
    shown = {**{k: form.get(k, "") for k in ("question", "results", "closes_at", "tz",
                                              "min_votes")}, "closes_iso": raw["closes_at"]}
    data, errors = forms.load(schemas.PollPatchSchema(), raw)
    if errors:
        return _edit_form(poll, shown, errors, 422)
    try:
        polls.patch(get_store(), poll_id, data)
    except UnknownPoll:
        abort(404)
    except PollFinal:
        return _edit_form(poll, shown, {FORM_ERROR: [
            "This poll is closed and its results are final; reopen it to edit it."]}, 409)
    except EngageError as exc:
        return _edit_form(poll, shown, {FORM_ERROR: [exc.message]}, 422)
    return redirect(url_for("dashboard.poll_list", notice="Poll saved."))


def _edit_form(poll: dict[str, Any], shown: dict[str, Any], errors: Errors,
               status: int = 200) -> Any:
    return forms.render(
        "dashboard/poll_edit.html", status, page="polls", poll=poll, form=shown, errors=errors,
        visibility=VISIBILITY, utc_label=forms.utc_label,
    )


# -- related links ------------------------------------------------------------------------
def _article_or_404(article_id: str) -> dict[str, Any]:
    article = articles.get(get_store(), article_id)
    if article is None:
        abort(404)
    return article


def _links_page(article: dict[str, Any], rows: list[dict[str, str]], errors: dict[Any, Errors],
                status: int = 200, notice: str | None = None) -> Any:
    box = links.for_articles(get_store(), [article["id"]])[article["id"]]
    return forms.render(
        "dashboard/links_form.html", status,
        page="article",
        article=article,
        rows=rows,
        errors=errors,
        curated=[link for link in box if not link.get("related")],
        filled=[link for link in box if link.get("related")],
        shown=int(current_app.config["LINKS_SHOWN"]),
        max_links=schemas.MAX_LINKS,
        notice=notice,
        cache=(int(current_app.config["CACHE_MAX_AGE"]), int(current_app.config["CACHE_STALE"])),
    )


def _stored_rows(article_id: str) -> list[dict[str, str]]:
    return [{"title": link["title"], "url": link["url"]}
            for link in links.curated(get_store(), article_id)]


def _save_links(article: dict[str, Any], rows: list[dict[str, str]], notice: str) -> Any:
    """Validate the rows as the body of PUT .../links and store them, or show why not.

    Rows left entirely empty are not links (the form's spare rows); a half-filled row
    is, so the schema names what it lacks.
    """
    positions = [i for i, row in enumerate(rows) if row["title"].strip() or row["url"].strip()]
    items = [{"title": rows[i]["title"].strip(), "url": rows[i]["url"].strip()}
             for i in positions]
    try:
        data = schemas.LinkInSchema(many=True).load(items)
    except ValidationError as exc:
        return _links_page(article, rows, _row_errors(exc.messages, positions), 422)
    try:
        links.set_links(get_store(), article["id"], data)
    except UnknownArticle:
        abort(404)
    return redirect(url_for("editor.links_edit", article_id=article["id"], notice=notice))


def _row_errors(messages: Any, positions: list[int]) -> dict[Any, Errors]:
    """The schema's messages per list item, put back on the form's rows."""
    per_row: dict[Any, Errors] = {}
    for key, value in dict(messages).items():
        target = positions[key] if isinstance(key, int) else FORM_ERROR
        per_row[target] = forms.flatten(value if isinstance(key, int) else {key: value})
    return per_row


@bp.route("/articles/<eid:article_id>/links", methods=["GET", "POST"])
def links_edit(article_id: str) -> Any:
    article = _article_or_404(article_id)
    if request.method == "GET":
        return _links_page(article, _stored_rows(article_id), {},
                           notice=request.args.get("notice"))
    titles, urls = request.form.getlist("title"), request.form.getlist("url")
    rows = [{"title": t, "url": u} for t, u in zip(titles, urls, strict=False)]
    if request.form.get("action") == "add":  # one more empty row, nothing saved yet
        return _links_page(article, [*rows, {"title": "", "url": ""}], {})
    return _save_links(article, rows, "Links saved.")


@bp.post("/articles/<eid:article_id>/links/order")
def links_order(article_id: str) -> Any:
    """Move or remove one saved link (the row buttons; unsaved edits are not sent)."""
    article = _article_or_404(article_id)
    rows = _stored_rows(article_id)
    # What the row buttons send; ASCII digits only, and few (int() reads "٣" and
    # refuses thousands of digits).
    change = re.fullmatch(r"(up|down|remove):([0-9]{1,4})", request.form.get("action", ""))
    if change is None or int(change[2]) >= len(rows):
        return dashboard.refuse(422, "validation_failed", "Unknown change to the links.")
    action, index = change[1], int(change[2])
    if action == "remove":
        del rows[index]
        notice = "Link removed."
    else:
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(rows):
            rows[index], rows[other] = rows[other], rows[index]
        notice = "Links reordered."
    return _save_links(article, rows, notice)


# -- articles -----------------------------------------------------------------------------
def _article_input(form: Any) -> dict[str, Any]:
    """The form as the JSON body of PUT /api/v1/articles/<id>; no choice typed is the
    site's reaction set."""
    site = form.get("site", "").strip()
    return {
        "title": form.get("title", "").strip(),
        "url": form.get("url", "").strip(),
        "section": form.get("section", "").strip(),
        "published_at": forms.local_time(form.get("published_at"), form.get("tz")),
        "tags": [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()],
        **({"site": site} if site else {}),
        "reaction_set": forms.reaction_set(form),
        "follow_page": form.get("follow_page") == "1",
    }


def _article_form(article_id: str | None, shown: dict[str, Any], errors: Errors,
                  status: int = 200) -> Any:
    return forms.render(
        "dashboard/article_form.html", status, page="overview", article_id=article_id, form=shown,
        errors=errors, sections=articles.sections(get_store(), site_scope()),
        utc_label=forms.utc_label,
        site_names=[name for name in sites.listing(get_store())
                    if name in (site_scope() or [name])],
    )


def _shown_article(form: Any, published_iso: Any) -> dict[str, Any]:
    return {**{k: form.get(k, "") for k in ("id", "title", "url", "section", "published_at",
                                             "tz", "tags", "site", "choices", "reason_choice",
                                             "reasons")}, "published_iso": published_iso,
            "follow_page": form.get("follow_page") == "1"}


@bp.route("/articles/new", methods=["GET", "POST"])
def article_new() -> Any:
    if request.method == "GET":
        now = get_store().now().astimezone(UTC)
        return _article_form(None, {
            "id": "", "title": "", "url": "", "section": "", "tags": "", "tz": "UTC",
            "published_at": now.strftime("%Y-%m-%dT%H:%M"), "published_iso": None,
            "site": (site_scope() or [current_app.config["DEFAULT_SITE"]])[0],
        }, {})
    form = request.form
    raw = _article_input(form)
    shown = _shown_article(form, raw["published_at"])
    ids, id_errors = forms.load(schemas.ArticleIdSchema(), {"id": form.get("id", "").strip()})
    data, errors = forms.load(schemas.ArticleInSchema(), raw)
    errors = {**id_errors, **errors}
    if not errors and articles.get(get_store(), ids["id"]) is not None:
        errors = {"id": ["An article is already registered under this id; edit it instead."]}
    if errors:
        return _article_form(None, shown, errors, 422)
    return _save_article(ids["id"], data, shown, new=True)


@bp.route("/articles/<eid:article_id>/edit", methods=["GET", "POST"])
def article_edit(article_id: str) -> Any:
    article = _article_or_404(article_id)
    if request.method == "GET":
        own = article["reaction_set"] != sites.site_or_default(
            get_store(), article["site"])["reactions"]
        return _article_form(article_id, {
            "id": article_id, "title": article["title"], "url": article["url"],
            "section": article["section"], "tags": ", ".join(article["tags"]), "tz": "UTC",
            "published_at": forms.local_input(article["published_at"]), "published_iso": None,
            "site": article["site"], "follow_page": article["follow_page"],
            **(forms.shown_set(article["reaction_set"]) if own else {}),
        }, {})
    raw = _article_input(request.form)
    shown = _shown_article(request.form, raw["published_at"])
    data, errors = forms.load(schemas.ArticleInSchema(), raw)
    if errors:
        return _article_form(article_id, shown, errors, 422)
    return _save_article(article_id, data, shown, new=False)


def _save_article(article_id: str, data: dict[str, Any], shown: dict[str, Any],
                  new: bool) -> Any:
    check_article_site(article_id, data.get("site"), data.get("section"))
    try:
        articles.upsert(get_store(), article_id, data)
    except ValidationFailed as exc:  # a site that does not exist
        return _article_form(None if new else article_id, shown, exc.fields or {}, 422)
    return redirect(url_for("dashboard.article", article_id=article_id))

