"""The README stays honest: every command, transform, status, mapping key and auth kind appears in it,
and the two commands it promises exist in the Makefile and .ci/run."""
from __future__ import annotations

import re
import typing

import pytest

from flows.cli import COMMANDS
from flows.mapping.model import MappingFile
from flows.mapping.transforms import REGISTRY
from flows.outcomes import Status

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command):
    assert re.search(rf"`{command}\b", README), f"README does not document `booking-import {command}`"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_transform_is_documented(name):
    assert f"`{name}`" in README or f"`{{{name}:" in README or f"`{name}` /" in README or f"/ `{name}`" in README, name


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_every_status_is_documented(status):
    assert f"| `{status}` |" in README


@pytest.mark.parametrize("key", sorted(MappingFile.model_fields))
def test_every_mapping_key_is_documented(key):
    assert f"`{key}`" in README


def test_every_auth_kind_is_documented():
    auth = MappingFile.model_fields["connection"].annotation.model_fields["auth"].annotation
    union = typing.get_args(auth)[0]
    for model in typing.get_args(union):
        kind = typing.get_args(model.model_fields["kind"].annotation)[0]
        assert f"`{kind}`" in README, kind


def test_the_two_commands_exist():
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_library_example_runs(tmp_path, jicoo_env, ledger_url):
    """The ten-line example under "Library use" imports the Jicoo sample into the simulator, as written."""
    from .conftest import MAPPINGS, SAMPLES

    code = re.search(r"## Library use.*?```python\n(.*?)```", README, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    import openpyxl

    book = openpyxl.load_workbook(SAMPLES / "jicoo" / "bookings.xlsx")  # the sample's first 8 rows: at the
    for ws in book.worksheets:  # mapping's 10 requests a second the whole sheet would take six seconds
        ws.delete_rows(10, ws.max_row)
    book.save(tmp_path / "bookings.xlsx")
    (tmp_path / "mappings").symlink_to(MAPPINGS)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # cwd is tmp_path (conftest)
    result = scope["result"]
    assert result.counts["created"] > 0 and result.results.parent.name == "out"
    assert result.results.is_file()
