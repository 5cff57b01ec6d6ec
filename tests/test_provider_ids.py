"""One provider id names its module, simulator, sample folder, mapping(s), demo and env-var prefix."""
from __future__ import annotations

import importlib

import pytest
import yaml

from flows.demo import DEMOS
from flows.providers import PROVIDER_IDS
from flows.sandbox import SIMULATORS

from .conftest import MAPPINGS, ROOT, SAMPLES


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_a_provider_id_names_everything_that_belongs_to_it(provider):
    importlib.import_module(f"flows.providers.{provider}")
    assert provider in SIMULATORS, f"flows/sandbox has no simulator registered for {provider}"
    assert (SAMPLES / provider).is_dir(), f"sample_data/{provider}/ is missing"
    mappings = [p for p in MAPPINGS.glob("*.yaml") if yaml.safe_load(p.read_text())["provider"] == provider]
    assert mappings and all(p.stem.startswith(provider) for p in mappings)
    demoed = {d.mapping for d in DEMOS if d.provider == provider}
    assert {f"mappings/{p.name}" for p in mappings} <= demoed, "every mapping has a demo sheet"
    prefix = provider.upper().split("_")[0]
    assert prefix in (ROOT / ".env.example").read_text(), f".env.example says nothing of {provider}"


def test_every_mapping_belongs_to_a_known_provider():
    for path in MAPPINGS.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["provider"] in PROVIDER_IDS, path.name
