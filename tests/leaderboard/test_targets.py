"""External-target configs for every kind, the factory, and a real campaign round scored by a real leaderboard."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evotrain.campaign.config import load_config
from evotrain.campaign.init import init_campaign
from evotrain.campaign.loop import Campaign
from evotrain.errors import ConfigError
from evotrain.external.command import CommandTarget
from evotrain.external.config import (
    CommandTargetConfig,
    KaggleTargetConfig,
    LeaderboardTargetConfig,
    parse_external_spec,
)
from evotrain.external.factory import build_target
from evotrain.external.kaggle import KaggleTarget
from evotrain.external.leaderboard import LeaderboardTarget
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest

from .server import LeaderboardProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_specs_for_every_kind_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "external.toml"
    spec.write_text('kind = "leaderboard"\nurl_env = "LB_URL"\ntoken_env = "LB_TOKEN"\nbudget = 6\n')
    config = parse_external_spec(str(spec))
    assert isinstance(config, LeaderboardTargetConfig) and config.budget == 6
    with pytest.raises(ConfigError, match="LB_URL is not set") as err:
        build_target(config)
    assert "export LB_URL" in (err.value.fix or "")
    monkeypatch.setenv("LB_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("LB_TOKEN", "secret")
    target = build_target(config)
    assert isinstance(target, LeaderboardTarget) and target.url == "http://127.0.0.1:9"

    spec.write_text('kind = "leaderboard"\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match="token_env") as err:
        parse_external_spec(str(spec))
    assert str(spec) in err.value.render()
    spec.write_text('kind = "kaggle"\ncompetition = "wonderland"\nid_column = "row_id"\n')
    kaggle = parse_external_spec(str(spec))
    assert isinstance(kaggle, KaggleTargetConfig) and isinstance(build_target(kaggle), KaggleTarget)
    spec.write_text('kind = "kaggle"\n')
    with pytest.raises(ConfigError, match="competition"):
        parse_external_spec(str(spec))
    spec.write_text('kind = "ftp"\n')
    with pytest.raises(ConfigError, match='"leaderboard"'):
        parse_external_spec(str(spec))
    assert isinstance(build_target(parse_external_spec("command:echo 1")), CommandTarget)
    assert isinstance(build_target(CommandTargetConfig(command="echo 1")), CommandTarget)


def test_a_campaign_round_is_scored_by_the_leaderboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    answers = Path(shutil.copy(EXAMPLES / "tiny_external_answers.jsonl", hidden / "answers.jsonl"))
    server = LeaderboardProcess(answers, hidden / "board.sqlite").start()
    try:
        monkeypatch.setenv("TEST_LB_URL", server.url)
        token = server.token("tiny", "--max-per-period", "3", "--period-s", "3600")
        monkeypatch.setenv("TEST_LB_TOKEN", token)
        substrate = Path(shutil.copytree(EXAMPLES / "tiny", tmp_path / "tiny"))
        external = LeaderboardTargetConfig(url_env="TEST_LB_URL", token_env="TEST_LB_TOKEN")
        run = tmp_path / "run"
        init_campaign(run, substrate, external=external, seed=1)
        toml = (run / "campaign.toml").read_text()
        assert "TEST_LB_TOKEN" in toml and token not in toml  # the secret stays in the environment
        assert isinstance(load_config(run / "campaign.toml").external, LeaderboardTargetConfig)

        Campaign(run).run(rounds=1, workers=4, parallel=2)

        paths = CampaignPaths(run)
        manifests = [Manifest.model_validate_json(cp.manifest.read_text()) for cp in paths.round(1).candidates()]
        scored = [m for m in manifests if m.external is not None]
        assert scored, "the policy submits the top candidates and the anchor"
        with server.client(token) as client:
            rows = {r["id"]: r for r in client.get("/api/v1/submissions").json()}
        for m in scored:
            assert m.external is not None and m.external.target == "leaderboard"
            row = rows[m.external.submission_id or ""]
            assert row["candidate"] == m.candidate_id and row["public_score"] == m.external.score
            assert m.external.n == row["n_public"]
        evidence = Evidence.model_validate_json(paths.round(1).evidence_json.read_text())
        assert {c.candidate_id: c.external for c in evidence.candidates if c.external is not None} == {
            m.candidate_id: m.external.score for m in scored if m.external
        }
    finally:
        server.stop()
