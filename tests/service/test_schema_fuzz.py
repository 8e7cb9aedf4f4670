"""Schemathesis against the live server's /openapi.json: generated requests to every
operation (valid and invalid bodies, paths and parameters) never get a 5xx, and every
answer matches its documented schema.

The operations are driven from one test with Hypothesis (``operation.as_strategy()``),
because the server's address is known only once its fixture has started it.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.service.conftest import Server, serve


def test_no_operation_gives_a_server_error(servers: list[Server], style_folder: Path, tmp_path: Path) -> None:
    env = {"STYLEFORGE_RATE_LIMIT": "0", "STYLEFORGE_MAX_UPLOAD_BYTES": "200000"}
    server = serve(servers, style_folder, tmp_path / "data", env=env)
    schema = schemathesis.openapi.from_url(server.url("/openapi.json"))
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        check()
        tested.append(operation.label)
    assert len(tested) >= 9, tested
