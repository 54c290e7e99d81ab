"""Schemathesis against Postgate's own OpenAPI document: no 5xx, Postmark's error envelope on every
error, and responses that match the documented schemas. Bounded: a fixed number of examples per
operation and generation mode (valid and invalid input).

Schemathesis' pytest plugin does not run under pytest 9, so its strategies are driven directly
with hypothesis, one test per operation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from api_service.config import Settings
from api_service.main import create_app
from tests.conftest import ACCOUNT_TOKEN

pytestmark = pytest.mark.slow

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
# verifyDkim, verifyDmarc and health look the domain up in public DNS: tests reach no host outside this machine.
OFFLINE_ONLY = {"PUT /domains/{domain_id}/verifydkim", "PUT /domains/{domain_id}/verifydmarc", "GET /domains/{domain_id}/health"}
OPERATIONS = {
    result.ok().label: result.ok()
    for result in SCHEMA.get_all_operations()
    if isinstance(result, Ok) and result.ok().label not in OFFLINE_ONLY
}
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def tokens(live_api: str) -> dict[str, str]:
    account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
    created = httpx.post(f"{live_api}/servers", json={"Name": "Fuzz"}, headers=account)
    assert created.status_code == 200, created.text
    httpx.post(f"{live_api}/senders", json={"FromEmail": "fuzz@example.com", "Name": "Fuzz"}, headers=account)
    return {"X-Postmark-Server-Token": created.json()["ApiTokens"][0], "X-Postmark-Account-Token": ACCOUNT_TOKEN}


def check(case: Any, response: requests.Response) -> None:
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"ErrorCode", "Message"}, body
        assert isinstance(body["ErrorCode"], int)
        headers = {name.lower(): value for name, value in response.headers.items()}
        code = headers["x-pm-apierrorcode"]
        assert (code[0] if isinstance(code, list) else code) == str(body["ErrorCode"])


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation(label: str, live_api: str, tokens: dict[str, str]) -> None:
    operation = OPERATIONS[label]
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    session = requests.Session()

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), **tokens}
        response = case.call(base_url=live_api, session=session, timeout=10)
        check(case, response)

    run()
