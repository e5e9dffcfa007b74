"""Try every route and every parameter to get at a label (or at which items a submission got right), and fail.

The board's labels and ids are distinctive random strings, so any of them in any response body would be found.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator

import httpx
import pytest

from .server import LeaderboardProcess, operator, write_jsonl

N_ITEMS = 24


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LeaderboardProcess, list[dict[str, str]]]]:
    root = tmp_path_factory.mktemp("attack")
    items = [
        {"id": f"item-{secrets.token_hex(6)}", "answer": f"LABEL{secrets.token_hex(8)}", "domain": f"dom{i % 3}"}
        for i in range(N_ITEMS)
    ]
    answers = write_jsonl(root / "answers.jsonl", items)
    server = LeaderboardProcess(answers, root / "board.sqlite", "--per-domain").start()
    yield server, items
    server.stop()


def secrets_in(text: str, items: list[dict[str, str]]) -> list[str]:
    """Labels, or item ids (a per-item answer would have to name them), found in a response body."""
    return [s for item in items for s in (item["answer"], item["id"]) if s in text or s.lower() in text.lower()]


def bodies(server: LeaderboardProcess, items: list[dict[str, str]], mine: str, theirs: str) -> Iterator[str]:
    """Every route × method × credential × parameter the attack tries; yields each response body."""
    right = {item["id"]: item["answer"] for item in items}
    half_right = {item["id"]: (item["answer"] if i % 2 else "wrong") for i, item in enumerate(items)}
    labels_as_ids = {item["answer"]: item["answer"] for item in items}
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for token in (mine, theirs):
            headers = {"Authorization": f"Bearer {token}"}
            for predictions in (right, half_right, labels_as_ids, {}):
                response = anon.post(
                    "/api/v1/submissions", json={"predictions": predictions, "candidate": "probe"}, headers=headers
                )
                yield response.text
        own_ids = [r["id"] for r in anon.get("/api/v1/submissions", headers={"Authorization": f"Bearer {mine}"}).json()]
        their_ids = [
            r["id"] for r in anon.get("/api/v1/submissions", headers={"Authorization": f"Bearer {theirs}"}).json()
        ]
        assert own_ids and their_ids
        paths = ["/healthz", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect", "/api/v1/campaign"]
        paths += ["/api/v1/submissions", "/api/v1/leaderboard", "/", "/api", "/api/v1", "/answers.jsonl"]
        paths += ["/api/v1/answers", "/api/v1/labels", "/api/v1/items", "/board.sqlite", "/../answers.jsonl"]
        paths += [f"/api/v1/submissions/{i}" for i in own_ids + their_ids]
        ids = [items[0]["id"], items[0]["answer"], "sub-0000000000000000", "../../answers.jsonl", "..%2f..%2fanswers"]
        ids += ["%00", "sub-" + "f" * 16 + "/../x", "*", "'; SELECT answer FROM x; --"]
        paths += [f"/api/v1/submissions/{i}" for i in ids]
        paths += [f"/api/v1/submissions/{i}/correct" for i in own_ids] + [
            f"/api/v1/submissions/{i}/items" for i in own_ids
        ]
        queries = [{}, {"id": items[0]["id"]}, {"include": "private"}, {"detail": "items"}, {"campaign": "theirs"}]
        credentials = [None, mine, theirs, "x", mine + "' OR '1'='1"]
        for path, token in itertools.product(paths, credentials):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for method in ("POST", "PUT", "DELETE", "OPTIONS", "HEAD"):
                yield anon.request(method, path, headers=headers).text
            for query in queries:
                yield anon.get(path, params=query, headers=headers).text
        headers = {"Authorization": f"Bearer {mine}", "content-type": "application/json"}
        for raw in (b"{", b"[]", b"null", b'{"predictions": {"a": 1}}', b"\xff\xfe", b"{" * 10000, b"x" * (33 << 20)):
            yield anon.post("/api/v1/submissions", content=raw, headers=headers).text
        for key in ("a b", "x" * 500, items[0]["answer"]):
            yield anon.post(
                "/api/v1/submissions", json={"predictions": right}, headers={**headers, "Idempotency-Key": key}
            ).text


def test_no_route_returns_a_label_or_per_item_correctness(
    attacked: tuple[LeaderboardProcess, list[dict[str, str]]],
) -> None:
    server, items = attacked
    mine = server.token("mine", "--max-per-period", "0")
    theirs = server.token("theirs", "--max-per-period", "0")
    seen = 0
    for body in bodies(server, items, mine, theirs):
        seen += 1
        assert not secrets_in(body, items), body[:500]
    assert seen > 1500
    # After finalization more becomes visible (private scores); still no label, no item.
    operator("finalize", "--db", str(server.db))
    for body in bodies(server, items, mine, theirs):
        assert not secrets_in(body, items), body[:500]
    assert not secrets_in(operator("show", "--db", str(server.db)), items)
