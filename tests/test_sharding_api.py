"""The admin switch for viral-article sharding, over HTTP."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import new_reader

URL = "/api/v1/articles/korea-china-reset/sharding"


def test_admin_shards_an_article_and_votes_keep_counting(
    client: FlaskClient, article: str, editor: dict[str, str], admin: dict[str, str]
) -> None:
    early = new_reader(client)
    mine = f"/api/v1/articles/{article}/reactions/mine"
    assert client.put(mine, json={"choice": "no"}, headers=early).status_code == 200
    assert client.get(URL, headers=editor).json == {"article": article, "shards": 0}
    assert client.put(URL, json={"shards": 1}, headers=admin).status_code == 422
    assert client.put(URL, json={"shards": 4}, headers=editor).status_code == 403
    response = client.put(URL, json={"shards": 4}, headers=admin)
    assert response.status_code == 200 and response.json == {"article": article, "shards": 4}
    assert client.put(URL, json={}, headers=admin).json["shards"] == 4  # fixed once on
    assert client.get(URL, headers=editor).json["shards"] == 4
    late = [new_reader(client) for _ in range(3)]
    for reader in late:
        assert client.put(mine, json={"choice": "yes"}, headers=reader).status_code == 200
    moved = client.put(mine, json={"choice": "yes"}, headers=early)
    assert moved.status_code == 200 and moved.json["mine"] == "yes"
    counts = client.get(f"/api/v1/articles/{article}/reactions").json
    assert counts["counts"] == {"yes": 4, "no": 0} and counts["total"] == 4
    assert client.get(f"/api/v1/articles/{article}").json["reactions"]["total"] == 4
    assert client.get(f"/api/v1/articles/{article}/reactions", headers=early).json["mine"] \
        == "yes"


def test_unknown_articles_are_404(client: FlaskClient, editor: dict[str, str],
                                  admin: dict[str, str]) -> None:
    ghost = "/api/v1/articles/ghost/sharding"
    assert client.get(ghost, headers=editor).status_code == 404
    response = client.put(ghost, json={"shards": 4}, headers=admin)
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_article"
