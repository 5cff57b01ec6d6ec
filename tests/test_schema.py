"""mappings/mapping.schema.json is generated from the mapping model and must stay current."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from flows.mapping.model import MappingFile

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
SCHEMA_FILE = MAPPINGS / "mapping.schema.json"


def generated() -> str:
    return json.dumps(MappingFile.json_schema(), indent=2, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schema_file_is_current():
    assert SCHEMA_FILE.exists(), "mappings/mapping.schema.json is missing: run `make schema`"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == generated(), (
        "mappings/mapping.schema.json is out of date with flows/mapping/model.py: "
        "run `make schema` and commit the result")


def test_schema_is_draft_2020_12_with_a_title():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "booking-importer mapping file"
    assert schema["additionalProperties"] is False  # unknown keys are errors for editors too


@pytest.mark.parametrize("mapping", sorted(MAPPINGS.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_mappings_satisfy_the_schema(mapping, validator):
    text = mapping.read_text(encoding="utf-8")
    assert "$schema=./mapping.schema.json" in text.splitlines()[0], "point editors at the schema on line 1"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(yaml.safe_load(text))]
    assert errors == []


@pytest.mark.parametrize(("change", "path"), [
    (lambda d: d.update(bogus=1), ""),
    (lambda d: d["fields"]["name"].update(colum="x"), "fields/name"),
    (lambda d: d["fields"]["name"]["transforms"].append("trimm"), "fields/name/transforms/3"),
    (lambda d: d["request"].update(method="GET"), "request/method"),
    (lambda d: d["connection"]["auth"].update(secret="sk_live_123"), "connection/auth"),
])
def test_the_schema_catches_what_the_loader_catches(change, path, validator):
    data = yaml.safe_load((MAPPINGS / "jicoo.yaml").read_text(encoding="utf-8"))
    change(data)
    errors = list(validator.iter_errors(data))
    assert errors
    assert any("/".join(map(str, e.absolute_path)).startswith(path) for e in errors)
