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
