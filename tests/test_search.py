"""Finding articles: words of the title, id and URL path, section, tag and publication
dates, paged newest first, through the stats API and the dashboard's article table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.store import articles

STORIES = [
    ("harbour-expansion", "Busan harbour expansion approved", "Economy", ["ports", "trade"], 1),
    ("harbour-strike", "Dockers strike at the harbour", "Economy", ["labour"], 2),
    ("korea-china-reset", "Seoul and Beijing seek a reset", "Diplomacy", ["china"], 3),
    ("film-festival", "Busan film festival opens", "Culture", ["film"], 4),
]


def put(client: FlaskClient, editor: dict[str, str], aid: str, title: str, section: str,
        tags: list[str], day: int, url: str | None = None) -> None:
    response = client.put(f"/api/v1/articles/{aid}", headers=editor, json={
        "title": title, "url": url or f"https://news.example.com/2026/{aid}",
        "section": section, "tags": tags, "published_at": f"2026-03-0{day}T09:00:00Z"})
    assert response.status_code in (200, 201), response.json


@pytest.fixture
def stories(client: FlaskClient, editor: dict[str, str]) -> None:
    for story in STORIES:
        put(client, editor, *story)


def found(client: FlaskClient, editor: dict[str, str], **query: Any) -> list[str]:
    response = client.get("/api/v1/stats/articles", headers=editor, query_string=query)
    assert response.status_code == 200, response.json
    assert response.json["sort"] == "newest"
    return [a["id"] for a in response.json["articles"]]


@pytest.mark.usefixtures("stories")
def test_search_by_words_section_tag_and_dates(client: FlaskClient,
                                               editor: dict[str, str]) -> None:
    assert found(client, editor, q="harbour") == ["harbour-strike", "harbour-expansion"]
    assert found(client, editor, q="BUSAN") == ["film-festival", "harbour-expansion"]
    assert found(client, editor, q="busan harbour") == ["harbour-expansion"]
    assert found(client, editor, q="korea-china-reset") == ["korea-china-reset"]  # the id
    assert found(client, editor, q="2026") == [s[0] for s in reversed(STORIES)]  # URL path
    assert found(client, editor, q="busan", section="Economy") == ["harbour-expansion"]
    assert found(client, editor, tag="Trade") == ["harbour-expansion"]
    assert found(client, editor, q="harbour", published_since="2026-03-02T00:00:00Z") == [
        "harbour-strike"]
    assert found(client, editor, published_until="2026-03-01T23:59:59Z") == [
        "harbour-expansion"]
    assert found(client, editor, q="nothing-like-this") == []
    paged = client.get("/api/v1/stats/articles", headers=editor,
                       query_string={"q": "2026", "limit": 2, "offset": 2}).json
    assert paged["total"] == 4 and [a["id"] for a in paged["articles"]] == [
        "harbour-strike", "harbour-expansion"]


@pytest.mark.usefixtures("stories")
def test_a_words_beginning_finds_it_from_three_letters(client: FlaskClient,
                                                        editor: dict[str, str]) -> None:
    put(client, editor, "vote-day", "Election day in Busan", "Politics", [], 5)
    assert found(client, editor, q="elec") == ["vote-day"]
    assert found(client, editor, q="ELECT bus") == ["vote-day"]
    assert found(client, editor, q="harb") == ["harbour-strike", "harbour-expansion"]
    assert found(client, editor, q="harb exp") == ["harbour-expansion"]
    assert found(client, editor, q="kor-chin") == ["korea-china-reset"]  # id words too
    assert found(client, editor, q="ha") == []  # two letters: whole words only
    assert found(client, editor, q="in") == ["vote-day"]
    assert found(client, editor, q="lection") == []  # a beginning, not any part
    # An edit's new words are found by their beginnings, its old ones no longer.
    put(client, editor, "vote-day", "Referendum day in Busan", "Politics", [], 5)
    assert found(client, editor, q="elec") == []
    assert found(client, editor, q="refer") == ["vote-day"]


def test_a_prefix_reads_a_bounded_number_of_words(store: Any) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)

    def index(titles: dict[int, str]) -> None:
        pipe = store.redis.pipeline(transaction=False)
        articles.index_many(store, pipe, [(f"n{n}", {
            "title": title, "url": f"https://news.example.com/{n}", "section": "s",
            "tags": [], "published_at": day + timedelta(minutes=n)})
            for n, title in titles.items()])
        pipe.execute()

    index({n: f"code{n:05d}" for n in range(articles.PREFIX_WORDS + 50)})
    total, _ = articles.find(store, "code")
    assert total == articles.PREFIX_WORDS  # the first words in lexical order
    assert articles.find(store, "code01049")[1] == ["n1049"]  # a longer prefix finds the rest
    index({1049: "recode"})  # indexed again: its old words go
    assert articles.find(store, "code01049")[1] == []
    assert articles.find(store, "recode")[1] == ["n1049"]


@pytest.mark.usefixtures("stories")
def test_a_rebuild_indexes_what_the_index_lost(client: FlaskClient, editor: dict[str, str],
                                               store: Any) -> None:
    # As after an upgrade from before the index: a word's set and what each article had.
    store.redis.delete(store.keys.find("w:harbour"), store.keys.find("doc"))
    assert found(client, editor, q="harbour") == []
    assert articles.reindex(store, batch=3) == 4
    assert found(client, editor, q="harbour") == ["harbour-strike", "harbour-expansion"]
    assert found(client, editor, q="dockers") == ["harbour-strike"]
    # What the rebuild indexed is what an edit drops.
    put(client, editor, "harbour-strike", "Harbour workers go back", "Economy", ["labour"], 2)
    assert found(client, editor, q="dockers") == []


@pytest.mark.usefixtures("stories")
def test_an_edit_leaves_the_old_words_and_tags(client: FlaskClient,
                                               editor: dict[str, str]) -> None:
    put(client, editor, "film-festival", "Busan cinema week begins", "Culture", ["cinema"], 4)
    assert found(client, editor, q="opens") == []
    assert found(client, editor, tag="film") == []
    assert found(client, editor, q="cinema", tag="cinema") == ["film-festival"]


@pytest.mark.usefixtures("stories")
def test_search_by_who_registered_the_article(client: FlaskClient, editor: dict[str, str],
                                              desk: Any, store: Any) -> None:
    from engage import schemas

    for aid, source in (("harbour-tolls", "page"), ("harbour-ferries", "feed")):
        data = schemas.ArticleInSchema().load({
            "title": f"Harbour {aid[8:]} rise", "url": f"https://news.example.com/{aid}",
            "section": "Economy", "published_at": "2026-03-06T09:00:00Z"})
        assert articles.write(store, aid, data, source) is not None
    assert found(client, editor, q="harbour", source="page") == ["harbour-tolls"]
    assert found(client, editor, q="harbour", source="feed") == ["harbour-ferries"]
    assert found(client, editor, q="harbour", source="editor") == [
        "harbour-strike", "harbour-expansion"]
    # An editor's edit makes the article the editor's, in the index too.
    put(client, editor, "harbour-tolls", "Harbour tolls rise", "Economy", [], 6)
    assert found(client, editor, source="page") == []
    refused = client.get("/api/v1/stats/articles", headers=editor,
                         query_string={"q": "harbour", "source": "reader"})
    assert refused.status_code == 422 and "source" in refused.json["error"]["fields"]
    page = desk.get("/dashboard?q=harbour&source=feed").get_data(as_text=True)
    assert "1 article found" in page and 'data-article="harbour-ferries"' in page
    assert 'data-article="harbour-strike"' not in page
    assert '<option value="feed" selected>' in page


@pytest.mark.usefixtures("stories")
def test_the_dashboard_table_finds_filters_and_pages(desk: Any, client: FlaskClient,
                                                      editor: dict[str, str]) -> None:
    page = desk.get("/dashboard?q=busan&section=Economy").get_data(as_text=True)
    assert "1 article found, newest first" in page
    assert 'data-article="harbour-expansion"' in page and 'data-article="film-festival"' not in page
    dated = desk.get("/dashboard?from=2026-03-02&to=2026-03-03").get_data(as_text=True)
    assert 'data-article="harbour-strike"' in dated and 'data-article="korea-china-reset"' in dated
    assert 'data-article="harbour-expansion"' not in dated
    for n in range(55):
        put(client, editor, f"brief-{n:02d}", f"Market brief {n}", "Economy", [], 5)
    first = desk.get("/dashboard?q=brief").get_data(as_text=True)
    assert first.count('<tr data-article="brief-') == 50 and "Page 1 of 2" in first
    second = desk.get("/dashboard?q=brief&page=2").get_data(as_text=True)
    assert second.count('<tr data-article="brief-') == 5 and "Previous page" in second
    assert desk.get("/dashboard?from=yesterday").status_code == 422


def test_a_site_limited_editor_finds_and_counts_their_sites_only(
        app: Any, client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
        store: Any) -> None:
    from engage.store import tokens
    from tests.desk import Desk

    site = {"name": "regional", "origins": ["https://regional.example.com"]}
    assert client.post("/api/v1/sites", json=site, headers=admin).status_code == 201
    put(client, editor, "home-vote", "Election at home", "Politics", [], 1)
    for n, section in enumerate(["Local", "Local", "Weather"]):
        response = client.put(f"/api/v1/articles/local-{n}", headers=editor, json={
            "title": f"Election in the region {n}", "url": f"https://regional.example.com/{n}",
            "section": section, "published_at": "2026-03-02T09:00:00Z", "site": "regional"})
        assert response.status_code == 201, response.json
    limited = tokens.create(store, "editor", "regional desk", ["regional"])[0]
    scoped = {"Authorization": f"Bearer {limited}"}
    answer = client.get("/api/v1/stats/articles", headers=scoped,
                        query_string={"q": "elec", "limit": 2}).json
    assert answer["total"] == 3 and [a["id"] for a in answer["articles"]] == [
        "local-2", "local-1"]
    assert client.get("/api/v1/stats/articles", headers=editor,
                      query_string={"q": "elec"}).json["total"] == 4
    page = Desk(app.test_client(), limited).get("/dashboard?q=election").get_data(as_text=True)
    assert "3 articles found, newest first" in page and "home-vote" not in page
    offered = re.findall(r"<option(?: selected)?>([^<]+)</option>", page)
    assert offered == ["Local", "Weather"]
    # An editor of every site sees one site at a time (figures are kept per site), the
    # default one first, and switches to another.
    everyone = Desk(app.test_client(), editor["Authorization"][7:])
    default_page = everyone.get("/dashboard?q=election").get_data(as_text=True)
    assert "1 article found" in default_page and "local-0" not in default_page
    regional = everyone.get("/dashboard?q=election&site=regional").get_data(as_text=True)
    assert "3 articles found" in regional and "home-vote" not in regional
    assert re.findall(r"<option(?: selected)?>([^<]+)</option>", regional) == [
        "Local", "Weather"]
    admin_page = Desk(app.test_client(), admin["Authorization"][7:]).get(
        "/dashboard?q=election&site=default").get_data(as_text=True)
    assert "1 article found" in admin_page
    assert re.findall(r"<option(?: selected)?>([^<]+)</option>", admin_page) == ["Politics"]
