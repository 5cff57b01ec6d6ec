"""A CSV reads the same whichever parser reads it.

Text shorter than ``csv_reader._PANDAS_FROM`` is parsed by the standard library's reader (so a run of a
small sheet does not import pandas), longer text by pandas' C engine (flows/workbooks/csv_reader.py). These
tests read the same texts both ways and compare the records; a quote that is never closed is refused by
both, in one line.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from flows.errors import InputError
from flows.workbooks import csv_reader
from flows.workbooks.sheets import read_sheet

ROOT = Path(__file__).resolve().parents[1]

#: texts where CSV readers are known to differ; the header line is added by the test
ODD_TEXTS = {
    "short line": "1\n2,3\n",
    "long line": "1,2,3,4\n5,6\n",
    "blank lines": "\n1,2\n\n",
    "spaces only": "   \n 1 , 2 \n",
    "line break in quotes": '"x\ny",2\n',
    "CRLF line break in quotes": '"x\r\ny",2\r\n',
    "quote inside a cell": 'ab"c,2\n',
    "text after the closing quote": '"ab"c,2\n',
    "space before the quote": ' "ab",2\n',
    "doubled quotes": '"a""b",2\n',
    "empty quoted cell": '"",2\n',
    "trailing delimiter": "1,2,\n",
    "no final line break": "1,2",
    "backslash": "1\\,2,3\n",
    "hash": "#1,2\n",
    "quote at the end": '1,2"\n',
    "four quotes": '"""",2\n',
    "accents": "é,ü\n",
}

UNCLOSED = {
    "unclosed quote": '"ab,2\n3,4\n',
    "lone quote": '",2\n',
    "unclosed after a closed one": '"ab"c,"x\n3,4\n',
}


def records(text: str, parser: str) -> object:
    try:
        if parser == "standard library":
            return csv_reader._parse_csv_py(Path("in.csv"), text, ",")
        return csv_reader._parse_csv(Path("in.csv"), [text.encode("utf-8")], ",")
    except InputError:
        return InputError


@pytest.mark.parametrize("name", ODD_TEXTS)
def test_both_parsers_read_odd_csv_alike(name: str) -> None:
    text = "h1,h2\n" + ODD_TEXTS[name]
    assert records(text, "standard library") == records(text, "pandas")


def test_both_parsers_read_random_csv_alike() -> None:
    """Seeded random texts of cells, delimiters, quotes and line ends: the same records, or both refused."""
    rng = random.Random(20261202)
    tokens = ["a", "b", "1", " ", ",", '"', '""', "\n", "\r\n", "é"]
    for _ in range(400):
        text = "h1,h2\n" + "".join(rng.choice(tokens) for _ in range(rng.randint(1, 25)))
        assert records(text, "standard library") == records(text, "pandas"), repr(text)


@pytest.mark.parametrize("sample", sorted((ROOT / "sample_data").glob("*/*.csv")), ids=lambda p: p.parent.name)
def test_the_sample_sheets_read_alike_either_way(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = read_sheet(sample)
    monkeypatch.setattr(csv_reader, "_PANDAS_FROM", 0)  # every text is "large": pandas parses it
    large = read_sheet(sample)
    assert (small.columns, small.rows, small.line_numbers) == (large.columns, large.rows, large.line_numbers)


@pytest.mark.parametrize("name", UNCLOSED)
@pytest.mark.parametrize("line_end", ["\n", "\r"])
def test_a_quote_never_closed_is_refused_not_swallowed(tmp_path: Path, name: str, line_end: str) -> None:
    """Read leniently, an unclosed quote swallows every line after it into one cell: those rows would
    silently not be booked. Refused instead, naming the line (also in a file with old Mac line ends, which
    the standard library's reader always reads)."""
    p = tmp_path / "in.csv"
    p.write_text(("ref,note\nB1,fine\n" + UNCLOSED[name]).replace("\n", line_end), encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    message = str(err.value)
    assert "\n" not in message
    assert "never closed" in message and "line 3" in message and "check the quotes" in message


def test_a_quote_never_closed_in_a_large_file_is_refused_too(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_reader, "_PANDAS_FROM", 0)
    p = tmp_path / "in.csv"
    p.write_text('ref,note\nB1,fine\n"ab,2\n3,4\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"cannot be parsed as CSV .* check the quotes"):
        read_sheet(p)


def test_checking_a_small_csv_does_not_import_pandas() -> None:
    """Importing pandas took half of a 60-row run's wall time (issue 16, target 1): a small sheet is read,
    mapped, checked and written as a results workbook without it."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from flows.engine.plan import prepare\n"
        "from flows.workbooks.results import write_results\n"
        f"plan = prepare({str(ROOT / 'sample_data/jicoo/bookings.csv')!r}, {str(ROOT / 'mappings/jicoo.yaml')!r})\n"
        "assert plan.rows\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
