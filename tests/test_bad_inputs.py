"""A table of bad inputs: each is refused before the first request, with exit 2 and exactly one line on
stderr (no traceback), and the loopback simulator the run points at receives nothing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli import main

from .conftest import MAPPINGS, ROOT, SAMPLES, mapping_variant

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
CSV = SAMPLES / "jicoo" / "bookings.csv"
MAPPING = MAPPINGS / "jicoo.yaml"


def written(tmp: Path, name: str, text: str) -> Path:
    """The file ``name`` in ``tmp`` holding ``text`` (UTF-8): the input each builder below makes."""
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def alias_bomb(tmp: Path) -> Path:
    """Billion laughs: ten levels of nine aliases each, 9**10 values once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return written(tmp, "bomb.yaml", "\n".join(lines) + "\n")


def self_alias(tmp: Path) -> Path:
    return written(tmp, "self.yaml", "provider: jicoo\nfields: &f {a: *f}\n")


def symlink_loop(tmp: Path) -> Path:
    (tmp / "loop.yaml").symlink_to("loop.yaml")
    return tmp / "loop.yaml"


def header_only(tmp: Path) -> Path:
    return written(tmp, "empty.csv", CSV.read_text(encoding="utf-8-sig").splitlines()[0] + "\n")


def a_file(tmp: Path) -> Path:
    return written(tmp, "plain.txt", "not a folder")


def validated_workbook(tmp: Path) -> Path:
    """A results workbook written by `validate` (nothing sent), to rerun."""
    out = tmp / "checked.xlsx"
    assert main(["validate", str(SHEET), "-m", str(MAPPING), "-o", str(out)]) in (0, 1)
    return out


def unwritable_folder(tmp: Path) -> Path:
    """A folder no file can be created in. As root, permissions do not stop writes, but /sys does."""
    if os.geteuid() != 0:
        folder = tmp / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys")


@dataclass
class Case:
    id: str
    args: Callable[[Path], list]
    says: str  # a fragment of the one line
    #: lines on stderr: one, except a mapping file's validation errors, which are a heading and then one
    #: line per problem (line number and key), by design of flows/mapping/model.py
    lines: int = 1


CASES = [
    Case("out-readonly-folder", lambda t: ["run", SHEET, "-m", MAPPING, "-o", unwritable_folder(t) / "r.xlsx"],
         "cannot be written"),
    Case("out-existing-folder", lambda t: ["run", SHEET, "-m", MAPPING, "-o", t], "is a folder"),
    Case("out-under-a-file", lambda t: ["run", SHEET, "-m", MAPPING, "-o", a_file(t) / "r.xlsx"],
         "is a file, not a folder"),
    Case("out-is-the-input-sheet",
         lambda t: ["run", shutil.copy(CSV, t / "mine.csv"), "-m", MAPPING, "-o", t / "mine.csv"],
         "is the input sheet itself"),
    Case("rate-inf", lambda t: ["run", SHEET, "-m", MAPPING, "--rate", "inf"], "finite number"),
    Case("rate-nan", lambda t: ["run", SHEET, "-m", MAPPING, "--rate", "nan"], "finite number"),
    Case("rate-negative", lambda t: ["run", SHEET, "-m", MAPPING, "--rate", "-1"], "0 (no limit) or more"),
    Case("wait-callbacks-nan", lambda t: ["run", SHEET, "-m", MAPPING, "--wait-callbacks", "nan"], "finite number"),
    Case("mapping-rate-inf", lambda t: ["run", SHEET, "-m", mapping_variant(t, connection__rate=float("inf"))],
         "finite number", lines=2),
    Case("mapping-symlink-loop", lambda t: ["run", SHEET, "-m", symlink_loop(t)], "leads back to itself"),
    Case("mapping-alias-bomb", lambda t: ["run", SHEET, "-m", alias_bomb(t)], "more than 100,000 values"),
    Case("mapping-self-alias", lambda t: ["run", SHEET, "-m", self_alias(t)], "refers to the value it is inside"),
    Case("header-no-rows-run", lambda t: ["run", header_only(t), "-m", MAPPING], "nothing to import"),
    Case("header-no-rows-validate", lambda t: ["validate", header_only(t), "-m", MAPPING], "nothing to import"),
    Case("header-no-rows-render", lambda t: ["render", header_only(t), "-m", MAPPING], "nothing to import"),
    Case("validate-out-folder", lambda t: ["validate", SHEET, "-m", MAPPING, "-o", t], "is a folder"),
    Case("rerun-out-under-a-file", lambda t: ["rerun", validated_workbook(t), "-o", a_file(t) / "r.xlsx"],
         "is a file, not a folder"),
    Case("rerun-rate-inf", lambda t: ["rerun", validated_workbook(t), "--rate", "inf"], "finite number"),
    Case("callback-port-too-big", lambda t: ["run", SHEET, "-m", MAPPING, "--callback-port", "70000"],
         "0 (a free one) to 65535"),
    Case("serve-archive-under-a-file", lambda t: ["serve", "--inbox", t, "--mappings", MAPPINGS, "--archive",
                                                  a_file(t) / "archive"], "is a file, not a folder"),
    Case("serve-ledger-unusable", lambda t: ["serve", "--inbox", t, "--mappings", MAPPINGS, "--ledger",
                                             a_file(t) / "l.sqlite"], "ledger"),
    Case("serve-lease-inf", lambda t: ["serve", "--inbox", t, "--lease-seconds", "inf"], "finite number"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_anything_is_sent(case, jicoo_sim, jicoo_env, tmp_path, capfd):
    args = [str(a) for a in case.args(tmp_path)]
    if args[0] == "run":
        args += ["--ledger", str(tmp_path / "l.sqlite")]
    capfd.readouterr()  # what building the case printed (validate of the workbook to rerun)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse refuses bad option values itself
        code = exc.code
    err = capfd.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == case.lines, err
    assert case.says in err and "Traceback" not in err
    assert sum(jicoo_sim.requests.values()) == 0
    assert not list(tmp_path.glob("out/*.xlsx"))  # no results workbook either: nothing happened


def test_an_alias_bomb_is_refused_fast_by_the_real_command(tmp_path):
    """As a user meets it: a separate process and its real stderr. Before, this ran for a minute and died of
    MemoryError; the subprocess timeout is a loose backstop, not a timing assertion."""
    proc = subprocess.run([sys.executable, "-m", "flows", "validate", str(SHEET), "-m", str(alias_bomb(tmp_path))],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "more than 100,000 values" in proc.stderr
