"""The OpenAPI document is complete (enums, resolvable $refs, the bearer scheme, error answers) and
/docs works offline (its assets come from the server itself)."""
from __future__ import annotations

import json
import re

from tuneserve.schemas.enums import FailKind, StudyMethod, TrialState


def _resolve(spec: dict, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_ref_resolves_and_the_study_document_is_a_component(client):
    spec = client.get("/openapi.json").json()
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec)))
    assert refs, "the document has no $ref at all"
    for ref in refs:
        _resolve(spec, ref)  # raises KeyError when a $ref points nowhere
    body = spec["paths"]["/api/v1/studies"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/StudyCreate"}
    assert "application/yaml" in body
    study = spec["components"]["schemas"]["StudyCreate"]
    assert {"parameters", "method", "metric", "max_trials", "early_terminate"} <= set(study["properties"])


def test_methods_states_and_fail_kinds_are_enums(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["StudyMethod"]["enum"]) == {m.value for m in StudyMethod}
    assert set(schemas["TrialState"]["enum"]) == {s.value for s in TrialState}
    assert set(schemas["FailKind"]["enum"]) == {k.value for k in FailKind}
    assert schemas["TrialRead"]["properties"]["state"] == {"$ref": "#/components/schemas/TrialState"}


def test_bearer_scheme_and_error_answers_are_documented(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"]}
    paths = spec["paths"]
    complete = paths["/api/v1/trials/{trial_id}/complete"]["post"]
    assert complete["security"] == [{"bearerAuth": []}]
    assert {"401", "403", "404", "409", "413", "422", "503"} <= set(complete["responses"])
    assert {"404", "422"} <= set(paths["/api/v1/studies/{name}"]["get"]["responses"])
    assert "409" in paths["/api/v1/studies/{name}/pause"]["post"]["responses"]
    assert "security" not in paths["/healthz"]["get"]
    error = _resolve(spec, complete["responses"]["409"]["content"]["application/json"]["schema"]["$ref"])
    assert set(error["properties"]) == {"detail", "code"}


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: ?'([^']+)'", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_every_enum_is_a_named_schema(client):
    from enum import StrEnum

    from tuneserve.schemas import enums

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    found = {name: obj for name, obj in vars(enums).items()
             if isinstance(obj, type) and issubclass(obj, StrEnum) and obj is not StrEnum}
    assert {"Goal", "Gate", "AdviceKind", "Role", "TrialSource", "StageState", "TrialKind"} <= set(found)
    for name, enum in found.items():
        assert schemas[name]["enum"] == [m.value for m in enum], name
    # The fields that carry them point at them.
    assert schemas["StudyRead"]["properties"]["counts"] == {"$ref": "#/components/schemas/TrialCounts"}
    assert set(schemas["TrialCounts"]["properties"]) == {s.value for s in TrialState} | {"total"}
    assert {"$ref": "#/components/schemas/Gate"} in schemas["StudyRead"]["properties"]["gate"]["anyOf"]
    assert schemas["AdviceRead"]["properties"]["kind"] == {"$ref": "#/components/schemas/AdviceKind"}
    assert schemas["MetricRead"]["properties"]["goal"] == {"$ref": "#/components/schemas/Goal"}


def test_every_json_body_documents_what_a_malformed_body_gets(client):
    from tuneserve_service.api.openapi import json_body_operations

    spec = client.get("/openapi.json").json()
    operations = json_body_operations(spec)
    assert ("/api/v1/trials/{trial_id}/report", "post") in operations and ("/api/v1/tokens", "post") in operations
    for path, method in operations:
        responses = spec["paths"][path][method]["responses"]
        assert "400" in responses and "422" in responses, (method, path, sorted(responses))
        assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BodyNotDecoded"}
    # The study document decodes its own body: undecodable is a 422 there, documented as such.
    assert "422" in spec["paths"]["/api/v1/studies"]["post"]["responses"]

    for path, method in operations:
        concrete = path.replace("{name}", "s").replace("{trial_id}", "1")
        json_headers = {"content-type": "application/json"}
        # Not JSON at all (not UTF-8): FastAPI's 400, as documented.
        r = client.request(method.upper(), concrete, content=b'{"a": "\xff"}', headers=json_headers)
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert r.json() == {"detail": "There was an error parsing the body"}
        # JSON that does not parse: a 422 naming the offset and the parser's complaint.
        r = client.request(method.upper(), concrete, content=b'{"a": ', headers=json_headers)
        assert r.status_code == 422, (method, path, r.status_code, r.text)
        (err,) = r.json()["detail"]
        assert err["type"] == "json_invalid" and err["loc"] == ["body", 6] and err["ctx"]["error"] == "Expecting value"
    r = client.post("/api/v1/studies", content=b'{"a": "\xff"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"][0]["msg"]
