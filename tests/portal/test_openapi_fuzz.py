"""Schemathesis against the live server: every operation of /api/v1/openapi.json, with a read, a write and an
ingest token, valid and invalid inputs. No answer is a 5xx, every status is declared and every body (errors
included: the one ApiError) matches the schema.

`make test` runs a few examples per operation and token (PORTAL_FUZZ_EXAMPLES, default 3, derandomized so the
suite is repeatable); `make fuzz` runs many more with a fresh random seed and prints the tally.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.models import Role
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create
from tests.factories import MembershipFactory, TeamFactory, UserFactory

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "3"))
RANDOM = os.environ.get("PORTAL_FUZZ_RANDOM", "") == "1"
SCOPES = ("read", "write", "ingest")
PROMPT = "support/fuzz-summary"


@pytest.fixture
def portal_data(transactional_db, token_for):
    """A team, an engineer in it, a token per scope and one prompt whose name the fuzzer also uses."""
    team = TeamFactory(name="Support AI", slug="support-ai")
    engineer = UserFactory(username="evan-engineer")
    MembershipFactory(team=team, user=engineer, role=Role.ENGINEER)
    prompt_create(team=team, name=PROMPT, actor=engineer,
                  draft=Draft(kind="text", template="Summarise for {{ customer }}: {{ ticket }}", messages=[],
                              variables_schema=None, config={}))
    return {scope: token_for(engineer, team, scope)[1] for scope in SCOPES}


def _strategy(operation):
    """Valid and invalid cases; half of the valid ones name the seeded prompt, so they get past the 404."""
    known = {"name": PROMPT} if "{name}" in operation.path else None
    modes = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if known:
        modes.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    return st.one_of(modes)


def _fuzz(operation, secret: str, session: requests.Session, tally: Counter, failures: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=_strategy(operation))
    def run(case):
        headers = {"Authorization": f"Bearer {secret}"}
        response = case.call(session=session, headers=headers, timeout=60)
        tally["requests"] += 1
        tally[f"status {response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            tally["failing requests"] += 1
            tally.update(f"failure {k}" for k in sorted({type(f).__name__ for f in group.exceptions}))
            failures.append(f"{operation.label} -> {response.status_code}: "
                            f"{', '.join(f.title for f in group.exceptions)}\n"
                            f"    {case.as_curl_command(headers={'Authorization': 'Bearer …'})}")

    run()


def test_every_operation_answers_only_declared_statuses_and_bodies(live_server, portal_data, settings):
    # Invalid tokens are part of the fuzz: do not let the address lockout (a declared 429) end it after 20
    settings.API_TOKEN_FAILURE_LIMIT = 10**9
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    tally: Counter = Counter()
    failures: list[str] = []
    started = time.monotonic()
    request_log = logging.getLogger("django.request")
    level, request_log.level = request_log.level, logging.ERROR  # thousands of expected 4xx lines otherwise
    try:
        with requests.Session() as session:
            for scope in SCOPES:
                for operation in operations:
                    _fuzz(operation, portal_data[scope], session, tally, failures)
    finally:
        request_log.setLevel(level)
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {len(operations)} operations x {len(SCOPES)} tokens, {EXAMPLES} examples each, "
          f"{elapsed:.0f} s: " + ", ".join(f"{key} {count}" for key, count in sorted(tally.items())))
    assert len(operations) >= 50  # every router is mounted and in the schema
    assert not failures, f"{len(failures)} failing request(s):\n" + "\n".join(failures[:40])
