"""The leaderboard server, for real: a uvicorn subprocess on loopback, reached over HTTP."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evotrain.external.command import ExternalTargetError
from evotrain.external.config import LeaderboardTargetConfig
from evotrain.external.leaderboard import LeaderboardTarget
from evotrain.leaderboard.board import load_board
from evotrain.puzzles.score import load_answers, score

from .conftest import puzzle_answers
from .server import LeaderboardProcess, operator, write_jsonl, write_predictions


def target(server: LeaderboardProcess, token: str, **config: object) -> LeaderboardTarget:
    return LeaderboardTarget(LeaderboardTargetConfig(url=server.url, token=token, **config))  # type: ignore[arg-type]


def mixed_predictions(answers: Path, seed: int) -> dict[str, str]:
    """Right and wrong, raw outputs and bare answers, near-tolerance numbers, missing items, extra (control) ids."""
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for line in answers.read_text().splitlines():
        record = json.loads(line)
        roll = rng.random()
        if roll < 0.1:
            continue  # missing: counts as wrong
        if roll < 0.4:
            out[record["id"]] = f"Let me think. The rule gives \\boxed{{{record['answer']}}}"
        elif roll < 0.55:
            out[record["id"]] = f"Final answer: {record['answer']}"
        elif roll < 0.65:
            try:
                out[record["id"]] = str(float(record["answer"]) * 1.005)  # inside the 1e-2 relative tolerance
            except ValueError:
                out[record["id"]] = record["answer"].upper()
        else:
            out[record["id"]] = "\\boxed{wrong}"
    return out


@pytest.fixture
def own_board(tmp_path: Path) -> Iterator[LeaderboardProcess]:
    """A puzzles board of the test's own (the test finalizes it)."""
    server = LeaderboardProcess(puzzle_answers(tmp_path / "answers.jsonl"), tmp_path / "board.sqlite", "--per-domain")
    yield server.start()
    server.stop()


def test_scores_equal_the_substrate_evaluation(own_board: LeaderboardProcess, tmp_path: Path) -> None:
    puzzles_board = own_board
    token = puzzles_board.token("scoring", "--max-per-period", "0")
    board = load_board(puzzles_board.answers)  # what the server holds (same file, same defaults)
    external = load_answers(puzzles_board.answers, "external")
    public = {i: r for i, r in external.items() if board.items[i].part == "public"}
    private = {i: r for i, r in external.items() if board.items[i].part == "private"}
    assert public and private and len(public) + len(private) == len(external)

    results = []
    for seed in range(3):
        preds = mixed_predictions(puzzles_board.answers, seed)
        got = target(puzzles_board, token).submit(
            f"r0001/c0{seed}", write_predictions(tmp_path / f"p{seed}.json", preds)
        )
        want_public = score(public, preds)
        assert got.score == pytest.approx(want_public["score"])
        assert got.n == len(public)
        assert got.domains == pytest.approx(want_public["domains"])  # served with --per-domain
        results.append((got.submission_id, preds))

    operator("finalize", "--db", str(puzzles_board.db))
    with puzzles_board.client(token) as client:
        for submission_id, preds in results:
            row = client.get(f"/api/v1/submissions/{submission_id}").json()
            assert row["private_score"] == pytest.approx(score(private, preds)["score"])
            overall = (row["public_score"] * row["n_public"] + row["private_score"] * row["n_private"]) / len(external)
            assert overall == pytest.approx(score(external, preds)["score"])
        refused = client.post("/api/v1/submissions", json={"predictions": {}})
        assert refused.status_code == 409 and "finalized" in refused.json()["detail"]
        board_view = client.get("/api/v1/leaderboard").json()
        assert board_view["finalized"] and board_view["ranked_by"] == "private_score"


def test_budget_per_period_and_total(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": f"q{i}", "answer": str(i), "part": "public"} for i in range(4)])
    server = LeaderboardProcess(answers, tmp_path / "b.sqlite").start()
    try:
        per_period = server.token("windowed", "--max-per-period", "2", "--period-s", "1.5")
        total = server.token("capped", "--max-total", "1", "--max-per-period", "0")
        preds = write_predictions(tmp_path / "p.json", {"q1": "1"})
        t = target(server, per_period, retries=0)
        first = t.submit("c1", preds)
        assert t.submit("c1", preds).submission_id == first.submission_id  # same key: replayed, nothing spent
        t.submit("c2", preds)
        with server.client(per_period) as client:
            refused = client.post("/api/v1/submissions", json={"predictions": {"q1": "1"}, "candidate": "c3"})
            assert refused.status_code == 429
            assert "next submission is allowed at" in refused.json()["detail"]
            assert 1 <= int(refused.headers["Retry-After"]) <= 2
            budget = client.get("/api/v1/campaign").json()["budget"]
            assert budget["used_total"] == 2 and not budget["allowed_now"] and budget["next_allowed_at"] > time.time()
        with pytest.raises(ExternalTargetError, match="budget spent"):
            t.submit("c3", preds)
        time.sleep(max(0.0, budget["next_allowed_at"] - time.time()) + 0.1)
        assert t.submit("c3", preds).score == 0.25  # the rolling window moved on

        capped = target(server, total, retries=0)
        capped.submit("c1", preds)
        with pytest.raises(ExternalTargetError, match="for good"):
            capped.submit("c2", preds)
        assert len(capped.submissions()) == 1
    finally:
        server.stop()


def test_restart_keeps_submissions_and_tokens(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": f"q{i}", "answer": "yes"} for i in range(10)])
    server = LeaderboardProcess(answers, tmp_path / "b.sqlite", "--public-fraction", "1.0").start()
    token = server.token("kept", "--max-per-period", "0")
    try:
        before = target(server, token).submit("c1", write_predictions(tmp_path / "p.json", {"q1": "\\boxed{Yes}"}))
    finally:
        server.stop()
    server.start()
    try:
        rows = target(server, token).submissions()
        assert [(r["id"], r["public_score"]) for r in rows] == [(before.submission_id, 0.1)]
    finally:
        server.stop()
    # Scores of one board are comparable only on that board: changed answers on the same database are refused.
    write_jsonl(answers, [{"id": f"q{i}", "answer": "no"} for i in range(10)])
    with pytest.raises(RuntimeError, match="different board"):
        server.start()


def test_a_token_sees_only_its_campaign(puzzles_board: LeaderboardProcess, tmp_path: Path) -> None:
    alice = puzzles_board.token("alice", "--max-per-period", "0")
    bob = puzzles_board.token("bob", "--max-per-period", "0")
    preds = write_predictions(tmp_path / "p.json", mixed_predictions(puzzles_board.answers, 7))
    alice_sub = target(puzzles_board, alice).submit("a1", preds).submission_id
    with puzzles_board.client(bob) as client:
        assert client.get(f"/api/v1/submissions/{alice_sub}").status_code == 404
        assert all(r["campaign"] == "bob" for r in client.get("/api/v1/submissions").json())
        assert client.get("/api/v1/campaign").json()["campaign"] == "bob"
        entries = client.get("/api/v1/leaderboard").json()["entries"]
        alice_entry = next(e for e in entries if e["campaign"] == "alice")
        assert alice_entry["best_submission_id"] is None  # the leaderboard shows alice's score, not her submission
    with puzzles_board.client(alice) as client:
        assert client.get(f"/api/v1/submissions/{alice_sub}").status_code == 200
    for token in (None, "not-a-token", bob + "x"):
        with puzzles_board.client(token) as client:
            assert client.get(f"/api/v1/submissions/{alice_sub}").status_code == 401
            assert client.get("/api/v1/submissions").status_code == 401
    rotated = puzzles_board.token("alice", "--rotate")
    with puzzles_board.client(alice) as client:
        assert client.get("/api/v1/campaign").status_code == 401  # the old token stopped working
    with puzzles_board.client(rotated) as client:
        assert client.get(f"/api/v1/submissions/{alice_sub}").status_code == 200


def test_invalid_requests_are_4xx_with_a_message(puzzles_board: LeaderboardProcess) -> None:
    token = puzzles_board.token("validation", "--max-per-period", "0")
    with puzzles_board.client(token) as client:
        cases = [
            client.post("/api/v1/submissions", content=b"{not json", headers={"content-type": "application/json"}),
            client.post("/api/v1/submissions", json={"predictions": {"x": 3}}),
            client.post("/api/v1/submissions", json={"predictions": {"": "a"}}),
            client.post("/api/v1/submissions", json={"predictions": {"a\nb": "a"}}),
            client.post("/api/v1/submissions", json={"predictions": {"x" * 300: "a"}}),
            client.post("/api/v1/submissions", json={"predictions": [], "extra": 1}),
            client.post("/api/v1/submissions", json={"predictions": {}}, headers={"Idempotency-Key": "a b"}),
            client.get("/api/v1/submissions/sub-../../etc"),
            client.get("/api/v1/submissions/%2e%2e%2fanswers.jsonl"),
        ]
        for response in cases:
            assert 400 <= response.status_code < 500, (response.status_code, response.text)
            assert response.json()["detail"]
        huge = client.post("/api/v1/submissions", content=b"x" * (33 * 1024 * 1024))
        assert huge.status_code == 413


def test_client_reports_a_server_that_is_down(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = LeaderboardTargetConfig(url=f"http://127.0.0.1:{port}", token="t", retries=2, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(ExternalTargetError, match="did not answer after 3 tries") as err:
        LeaderboardTarget(config).submit("c", write_predictions(tmp_path / "p.json", {}))
    assert time.monotonic() - started >= 0.1  # it backed off between tries (0.05 s, then 0.1 s)
    assert "evotrain leaderboard serve" in (err.value.fix or "")


def test_operator_cli_errors_and_show(puzzles_board: LeaderboardProcess, tmp_path: Path) -> None:
    puzzles_board.token("shown", "--max-per-period", "0")
    again = operator("token", "--db", str(puzzles_board.db), "--campaign", "shown", check=False)
    assert "already has a token" in again and "--rotate" in again
    bad = operator("token", "--db", str(puzzles_board.db), "--campaign", "../etc", check=False)
    assert "not allowed" in bad
    missing = operator("show", "--db", str(tmp_path / "none.sqlite"), check=False)
    assert "no leaderboard database" in missing
    assert "shown" in operator("show", "--db", str(puzzles_board.db))
    wrong = operator("serve", "--answers", str(tmp_path / "nothing.jsonl"), check=False)
    assert "answers file not found" in wrong
