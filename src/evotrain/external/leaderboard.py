"""The `leaderboard` external target: a client of `evotrain leaderboard serve` over HTTP.

Retries: a connection error, a timeout or a 5xx is retried with exponential backoff (tenacity: a maintained library
for exactly this, with the stop/wait/retry rules spelled out below); a 4xx is not (it will not change), and a 429
(budget spent) is reported at once with the server's message saying when the next submission is allowed. Every POST
carries an Idempotency-Key derived from the candidate and its predictions, so a retry after a lost response, or a
campaign resumed after a crash, never spends a second submission.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from evotrain.errors import ConfigError
from evotrain.external.command import ExternalTargetError
from evotrain.external.config import LeaderboardTargetConfig
from evotrain.external.protocol import ExternalScore

SUBMISSIONS = "/api/v1/submissions"
CAMPAIGN = "/api/v1/campaign"
MAX_BACKOFF_S = 30.0


class _Transient(Exception):
    """A response worth retrying (a 5xx): the server may be restarting."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}: {_detail(response)}")


def _from_env_or_value(value: str | None, env: str | None, field: str) -> str:
    if value is not None:
        return value
    assert env is not None  # the config validator guarantees one of the two
    found = os.environ.get(env)
    if not found:
        raise ConfigError(
            f"field `external.{field}_env`: the environment variable {env} is not set",
            fix=f"export {env}=..."
            + (" (the token printed by `evotrain leaderboard token`)" if field == "token" else " (the server's URL)"),
        )
    return found


def idempotency_key(candidate_id: str, predictions: dict[str, Any]) -> str:
    canonical = json.dumps(predictions, sort_keys=True).encode("utf-8", "surrogatepass")
    return "evotrain-" + hashlib.sha256(candidate_id.encode() + b"\0" + canonical).hexdigest()[:48]


def read_predictions(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExternalTargetError(f"cannot read the predictions file: {exc}", path=path) from None
    predictions = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        raise ExternalTargetError(
            'the predictions file is not {"predictions": {id: answer text}}',
            path=path,
            fix="fix the substrate's predict command",
        )
    return predictions


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body))[:600] if isinstance(body, dict) else str(body)[:600]


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Transient)


class LeaderboardTarget:
    def __init__(self, config: LeaderboardTargetConfig, *, url: str | None = None, token: str | None = None) -> None:
        """`url`/`token` override the config (the demo passes the URL of the server it just started)."""
        self.config = config
        self.name = config.name
        self.url = (url or _from_env_or_value(config.url, config.url_env, "url")).rstrip("/")
        self._token = token or _from_env_or_value(config.token, config.token_env, "token")

    def submit(self, candidate_id: str, predictions: Path) -> ExternalScore:
        preds = read_predictions(predictions)
        body = {"predictions": preds, "candidate": candidate_id[:200]}
        headers = {"Idempotency-Key": idempotency_key(candidate_id, preds)}
        data = self._request("POST", SUBMISSIONS, json=body, headers=headers)
        if data.get("public_score") is None:
            raise ExternalTargetError(f"the leaderboard at {self.url} returned no public score: {data}")
        return ExternalScore(
            score=float(data["public_score"]),
            domains=data.get("domains"),
            n=data.get("n_public"),
            submission_id=data.get("id"),
        )

    def campaign(self) -> dict[str, Any]:
        """The campaign's budget and usage, as the server sees them."""
        return self._request("GET", CAMPAIGN)

    def submissions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", SUBMISSIONS)  # type: ignore[assignment]
        return result

    def _request(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        retrying = Retrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(multiplier=self.config.backoff_s, max=MAX_BACKOFF_S),
            retry=retry_if_exception(_transient),
        )
        try:
            with httpx.Client(base_url=self.url, timeout=self.config.timeout_s) as client:
                for attempt in retrying:
                    with attempt:
                        response = client.request(method, route, headers=headers, **kwargs)
                        if response.status_code >= 500:
                            raise _Transient(response)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise ExternalTargetError(
                f"the leaderboard at {self.url} did not answer after {self.config.retries + 1} tries: {cause}",
                fix="start it (`evotrain leaderboard serve`), check `url`, or raise `retries`/`timeout_s`",
            ) from None
        return self._checked(response)

    def _checked(self, response: httpx.Response) -> Any:
        code = response.status_code
        if code == 429:
            raise ExternalTargetError(
                f"the leaderboard refused the submission, budget spent: {_detail(response)}",
                fix="wait for the time the server names, or ask its operator for a larger budget",
            )
        if code == 401:
            raise ExternalTargetError(
                f"the leaderboard at {self.url} refused the token: {_detail(response)}",
                fix="pass the token `evotrain leaderboard token` printed for this campaign (via `token_env`)",
            )
        if code >= 400:
            raise ExternalTargetError(f"the leaderboard at {self.url} answered {code}: {_detail(response)}")
        try:
            return response.json()
        except ValueError:
            raise ExternalTargetError(
                f"the leaderboard at {self.url} answered non-JSON: {response.text[:200]}"
            ) from None
