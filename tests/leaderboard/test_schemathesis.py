"""Property-based fuzzing of the running server from its own OpenAPI spec (schemathesis): no 5xx, and every
response conforms to the spec (status codes, content types, response schemas), for valid and invalid inputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .server import LeaderboardProcess, write_jsonl

MAX_EXAMPLES = 50  # per operation and generation mode


@pytest.mark.slow
def test_fuzzing_the_openapi_spec_finds_no_5xx(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": f"q{i}", "answer": f"a{i}", "domain": "d"} for i in range(30)])
    server = LeaderboardProcess(answers, tmp_path / "b.sqlite", "--per-domain").start()
    try:
        token = server.token("fuzz", "--max-per-period", "0")
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        statuses: Counter[int] = Counter()
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 6
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
                )
                def check(case: schemathesis.Case) -> None:
                    response = case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
                    statuses[response.status_code] += 1
                    assert response.status_code < 500

                try:
                    check()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid input
        cases = sum(statuses.values())
        print(
            f"schemathesis: {cases} cases over {len(operations)} operations; statuses {dict(sorted(statuses.items()))}"
        )
        assert cases >= 6 * MAX_EXAMPLES
        assert not [code for code in statuses if code >= 500]
    finally:
        server.stop()
