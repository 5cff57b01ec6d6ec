"""One provider id names its mapping(s), and for a shipped provider its sample folder, demo and env-var prefix,
all derived from mappings/.

Code is required only where a mapping names it (``contract:``, ``readback:``, ``handler:``,
``callback:``); a simulator is optional. Nothing lists providers by hand.
"""
from __future__ import annotations

import pytest
import yaml

from flows.hooks import resolve
from flows.mapping.catalog import callback_readers, demos, provider_ids
from flows.sandbox import SIMULATORS, simulator_for
from flows.sandbox.demo import DEMOS

from .conftest import MAPPINGS, ROOT, SAMPLES

REFERENCES = ("contract", "readback", "handler", "callback")


@pytest.mark.parametrize("provider", provider_ids())
def test_a_provider_id_names_everything_that_belongs_to_it(provider):
    mappings = [p for p in MAPPINGS.glob("*.yaml") if yaml.safe_load(p.read_text())["provider"] == provider]
    assert mappings and all(p.stem.startswith(provider) for p in mappings)
    for p in mappings:  # code only where the YAML names it, and then it resolves
        request = yaml.safe_load(p.read_text()).get("request") or {}
        for attr in REFERENCES:
            if request.get(attr):
                assert resolve(request[attr]) is not None
    if (SAMPLES / provider).is_dir():  # shipped with the project: a demo for every mapping, and its secrets documented
        demoed = {d.mapping for d in DEMOS if d.provider == provider}
        assert {f"mappings/{p.name}" for p in mappings} <= demoed, "every mapping has a demo sheet"
        prefix = provider.upper().split("_")[0]
        assert prefix in (ROOT / ".env.example").read_text(), f".env.example says nothing of {provider}"
    if provider in SIMULATORS:  # optional; when there is one it can point a run at itself
        assert SIMULATORS[provider] is simulator_for(provider)
        assert set(SIMULATORS[provider].sandbox_env("http://127.0.0.1:1"))


def test_every_mapping_belongs_to_a_derived_provider():
    for path in MAPPINGS.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["provider"] in provider_ids(), path.name


def test_a_copied_mapping_is_a_new_provider_with_no_code(tmp_path):
    """acme.yaml, a copy of jicoo.yaml under another id and secret, is a provider: derived ids, a demo once
    it has a sample sheet, no simulator (optional) and no Python anywhere."""
    (tmp_path / "mappings").mkdir()
    for p in MAPPINGS.glob("*.yaml"):
        (tmp_path / "mappings" / p.name).write_text(p.read_text())
    text = (MAPPINGS / "jicoo.yaml").read_text().replace("provider: jicoo", "provider: acme").replace(
        "JICOO_API_KEY", "ACME_API_KEY")
    (tmp_path / "mappings" / "acme.yaml").write_text(text)
    (tmp_path / "sample_data" / "acme").mkdir(parents=True)
    (tmp_path / "sample_data" / "acme" / "bookings.xlsx").write_bytes(
        (SAMPLES / "jicoo" / "bookings.xlsx").read_bytes())
    assert "acme" in provider_ids(tmp_path / "mappings")
    assert [d.mapping for d in demos(tmp_path) if d.provider == "acme"] == ["mappings/acme.yaml"]
    assert simulator_for("acme") is None
    assert callback_readers(tmp_path / "mappings") == callback_readers(MAPPINGS)
