"""The ``booking-import`` command as a user meets it: help, exit codes, one-line errors, nothing sent
when the input or configuration is wrong."""
from __future__ import annotations

import json

import pytest

from flows.cli import COMMANDS, main
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, SAMPLES, mapping_variant

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_top_level_help_lists_every_command_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert "exit codes" in out and "130" in out


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("make_args, fragment", [
    (lambda tmp: ["run", tmp / "nope.xlsx", "-m", MAPPING], "file not found"),
    (lambda tmp: ["validate", tmp / "nope.xlsx", "-m", MAPPING], "file not found"),
    (lambda tmp: ["validate", SHEET, "-m", tmp / "nope.yaml"], "does not exist"),
    (lambda tmp: ["validate", SHEET, "-m", MAPPING, "--sheet", "Nope"], "Bookings"),
    (lambda tmp: ["run", SHEET, "-m", MAPPING, "--concurrency", "0"], "must be 1 or more"),
    (lambda tmp: ["render", SHEET, "-m", mapping_variant(tmp, fields__email__column="E-mail")], "closest: 'Email'"),
], ids=["run-missing-sheet", "validate-missing-sheet", "missing-mapping", "unknown-worksheet", "bad-concurrency",
        "missing-column"])
def test_bad_input_exits_2_with_one_readable_line(make_args, fragment, tmp_path, capsys):
    try:
        code, _out, err = run_cli(make_args(tmp_path), capsys)
    except SystemExit as exc:  # argparse rejects bad option values itself, also with 2
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err


def test_missing_column_lists_what_was_found(tmp_path, capsys):
    mapping = mapping_variant(tmp_path, fields__email__column="E-mail")
    code, _, err = run_cli(["validate", SHEET, "-m", mapping], capsys)
    assert code == 2
    assert "'E-mail'" in err and "columns found: 'Booking Ref'" in err


def test_missing_secret_names_the_variable_and_sends_nothing(jicoo_sim, jicoo_env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("JICOO_API_KEY")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite"], capsys)
    assert code == 2
    assert "JICOO_API_KEY" in err
    assert sum(jicoo_sim.requests.values()) == 0


def test_a_broken_sheet_exits_2_and_sends_nothing(jicoo_sim, jicoo_env, tmp_path, capsys):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a workbook")
    code, _, err = run_cli(["run", broken, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite"], capsys)
    assert code == 2 and "broken.xlsx" in err
    assert sum(jicoo_sim.requests.values()) == 0


def test_validate_writes_a_workbook_with_invalid_rows_marked(tmp_path, capsys):
    out = tmp_path / "checked.xlsx"
    code, stdout, _ = run_cli(["validate", SHEET, "-m", MAPPING, "-o", out], capsys)
    assert code == 1  # some rows are invalid
    assert "60 rows checked: 55 valid, 5 invalid" in stdout
    df, summary = read_results(out)
    assert (df["_status"] == "invalid").sum() == 5
    assert summary["mode"].startswith("validate")


def test_render_prints_payloads_as_json_lines(capsys):
    code, out, err = run_cli(["render", SHEET, "-m", MAPPING, "--limit", "3"], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert lines[0]["payload"]["startedAt"].endswith("Z")
    assert "invalid" in err  # the invalid rows are listed on stderr


def test_render_masks_secrets_and_sensitive_fields(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JICOO_API_KEY", "sk_live_supersecret")
    mapping = mapping_variant(tmp_path, fields__email__sensitive=True,
                              fields__message={"template": "key {Guest Name} sk_live_supersecret"})
    code, out, _ = run_cli(["render", SHEET, "-m", mapping, "--limit", "2"], capsys)
    assert code == 0
    assert "sk_live_supersecret" not in out
    assert json.loads(out.splitlines()[0])["payload"]["email"] == "••••••"


def test_transforms_lists_every_transform_with_examples(capsys):
    from flows.mapping.transforms import REGISTRY

    code, out, _ = run_cli(["transforms"], capsys)
    assert code == 0
    for name in REGISTRY:
        assert name in out
    assert out.count("In:") >= len(REGISTRY)
