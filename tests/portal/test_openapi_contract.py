"""The API's contract: one error body (ApiError) for every error, from our code and from django-ninja's own
validation, auth, 404s, 405s, 413s and bodies that are not JSON; and every such status declared in the schema."""

from __future__ import annotations

import jsonschema
import pytest
from django.test import Client, override_settings

from portal.api import api

pytestmark = pytest.mark.django_db

ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "415", "422", "423", "429", "503"}


@pytest.fixture(scope="module")
def openapi():
    return api.get_openapi_schema()


def assert_api_error(openapi, response, status):
    """The answer has the status, JSON content and a body valid against the schema's one ApiError."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    jsonschema.validate(body, {"$ref": "#/components/schemas/ApiError", "components": openapi["components"]})
    assert isinstance(body["detail"], str) and body["detail"] and isinstance(body["errors"], list)
    return body


@pytest.fixture
def read_secret(engineer, team, token_for):
    return token_for(engineer, team, "read")[1]


@pytest.fixture
def write_secret(engineer, team, token_for):
    return token_for(engineer, team, "write")[1]


def _bearer(secret):
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_every_error_response_in_the_schema_is_the_one_api_error(openapi):
    components = openapi["components"]["schemas"]
    assert not {"Error", "ErrorOut", "Problems", "Problem", "DetailErrors"} & set(components)
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"401", "429"} <= set(responses), f"{method} {path}"
            for status in ERROR_STATUSES & set(responses):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ApiError"}, f"{method} {path} {status}"


def test_operations_with_parameters_declare_422_and_bodies_declare_400_and_413(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in operation["responses"], f"{method} {path}"
            if operation.get("requestBody"):
                assert {"400", "413"} <= set(operation["responses"]), f"{method} {path}"
            if "{" in path:
                assert "404" in operation["responses"], f"{method} {path}"


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/api/v1/prompts"),
    ("post", "/api/v1/prompts/{name}/render"),
    ("post", "/api/v1/prompts/{name}/versions"),
    ("put", "/api/v1/prompts/{name}/labels/{label}"),
    ("post", "/api/v1/prompts/{name}/promotions"),
    ("get", "/api/v1/prompts/{name}/resolve"),
])
def test_the_prompt_operations_document_their_422_as_the_body_they_send(openapi, method, path):
    schema = openapi["paths"][path][method]["responses"]["422"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ApiError"}


def test_ninja_validation_errors_use_the_one_body_and_name_the_field(openapi, read_secret):
    response = _bearer(read_secret).get("/api/v1/prompts?limit=many")
    body = assert_api_error(openapi, response, 422)
    assert body["errors"][0]["field"] == "limit" and body["errors"][0]["where"] == "query"


def test_an_invalid_body_field_is_named_without_ninjas_argument_name(openapi, write_secret, team):
    response = _bearer(write_secret).post("/api/v1/prompts", {"name": "x/y", "team": team.slug, "tags": "nope"},
                                          content_type="application/json")
    body = assert_api_error(openapi, response, 422)
    assert [(e["field"], e["where"]) for e in body["errors"]] == [("tags", "body")]


def test_a_body_that_is_not_json_is_a_400(openapi, write_secret):
    response = _bearer(write_secret).post("/api/v1/prompts", "{not json", content_type="application/json")
    body = assert_api_error(openapi, response, 400)
    assert "not valid JSON" in body["detail"]


def test_a_missing_token_is_a_401_with_its_reason(openapi):
    body = assert_api_error(openapi, Client().get("/api/v1/prompts"), 401)
    assert body["reason"] == "missing"


def test_a_method_the_path_does_not_serve_is_a_json_405_with_allow(openapi, read_secret):
    response = _bearer(read_secret).delete("/api/v1/prompts")
    assert_api_error(openapi, response, 405)
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}


def test_an_unknown_api_path_is_a_json_404(openapi, read_secret):
    assert_api_error(openapi, _bearer(read_secret).get("/api/v1/no-such-thing"), 404)


def test_an_integer_path_parameter_that_is_not_one_is_a_json_404(openapi, read_secret):
    assert_api_error(openapi, _bearer(read_secret).get("/api/v1/use-cases/-1"), 404)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_limit_is_a_413(openapi, write_secret, team):
    response = _bearer(write_secret).post("/api/v1/prompts", {"name": "x/y", "team": team.slug,
                                                              "description": "d" * 2000},
                                          content_type="application/json")
    assert_api_error(openapi, response, 413)


def test_an_error_our_code_raises_has_the_same_body(openapi, read_secret):
    body = assert_api_error(openapi, _bearer(read_secret).get("/api/v1/prompts/no/such-prompt"), 404)
    assert body["errors"] == [] and "guard" not in body and "reason" not in body
