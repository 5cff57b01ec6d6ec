"""The README's "Reading sheets" (with "Dates and times") and "Transforms" sections state the rules the
code follows: the examples they give are run through the code here, so a change to either shows."""
from __future__ import annotations

import re
import typing

import pytest

from flows.mapping.datetimes import _DIRECTIVES, TIME_FORMS_12, TIME_FORMS_24
from flows.mapping.model import DateTimeSource
from flows.mapping.transforms import (
    REGISTRY,
    TransformProblem,
    format_problem,
    parse_time,
)
from flows.workbooks.excel_formats import _render_pad

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    return README[start:end if end > 0 else None]


READING = section("## Reading sheets")
TRANSFORMS = section("### Transforms")


def ticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def time_table() -> list[tuple[list[str], list[str], list[str]]]:
    """(time formats, accepted examples, refused examples) per row of the README's table."""
    rows = []
    for line in READING.splitlines():
        if line.startswith(("| `%", "| any other")):
            formats, accepted, refused = (c.strip() for c in line.strip("|").split("|"))
            rows.append((ticked(formats), ticked(accepted), ticked(refused)))
    assert len(rows) == 3, rows
    return rows


@pytest.mark.parametrize("row", range(3))
def test_every_time_form_the_readme_accepts_is_accepted_and_every_refused_one_refused(row):
    formats, accepted, refused = time_table()[row]
    for fmt in formats:
        if row == 2:  # "any other": exactly that form, shown with %H%M
            fmt = "%H%M"
        for text in accepted:
            parse_time(text, fmt)  # raises if the README promises too much
        for text in refused:
            if text.startswith("%"):
                continue
            with pytest.raises(TransformProblem):
                parse_time(text, fmt)


def test_the_readme_lists_the_forms_messages_offer():
    accepted = {t for _, a, _ in time_table() for t in a}
    assert set(TIME_FORMS_24) <= accepted and set(TIME_FORMS_12) <= accepted


@pytest.mark.parametrize("text", ["9:3", "9am", "25:00", "13:00 PM"])
def test_what_the_readme_calls_not_a_time_is_not(text):
    assert f"`{text}`" in READING
    for fmt in ("%H:%M", "%I:%M %p"):
        with pytest.raises(TransformProblem, match="is not a time"):
            parse_time(text, fmt)


def test_the_directives_listed_are_the_ones_read():
    listed = re.search(r"Directives read from sheets: ([^.]+)\.", READING).group(1)
    assert set(re.findall(r"%(\w)", listed)) == set(_DIRECTIVES) - {"%"}


def test_the_format_mistakes_the_readme_names_are_refused_with_the_hint_it_quotes():
    assert "`did you mean '%d/%m/%Y'?`" in READING
    assert "did you mean '%d/%m/%Y'?" in format_problem("dd/mm/yyyy", "date")


def test_every_ambiguous_choice_is_documented():
    choices = typing.get_args(DateTimeSource.model_fields["ambiguous"].annotation)
    assert set(choices) == {"refuse", "earlier", "later"}
    for choice in ("earlier", "later"):
        assert f"`ambiguous: {choice}`" in READING
    assert "is invalid by default, and the message names\nboth UTC instants" in READING


@pytest.mark.parametrize(("fmt", "value", "shown"), [("000000", 123, "000123"), ("00000", 2134, "02134")])
def test_the_padded_formats_shown_in_the_readme(fmt, value, shown):
    assert f"`{fmt}` → `{shown}`" in READING
    assert _render_pad(fmt, float(value)) == shown


NUMBER_CLAIMS = [
    # (README text, transform, result or None for "invalid")
    ("`45`, `-3`, `45.0`, `1 234`", "integer", [45, -3, 45, 1234]),
    ("(`12,345,678`, `1.234.567`)", "integer", [12345678, 1234567]),
    ("(`90,0`, `1,5`)", "integer", [None, None]),
    ("`1,500`: 1500 or 1.5", "integer", [None]),
    ("`1.500`: 1.5 or 1500", "integer", [None]),
    ('`{integer: ","}` reads `90,0` as 90 and\n`1.500` as 1500', ",", [90, 1500]),
    ('`{integer: "."}` reads `1,500` as 1500 and `45.0`\nas 45', ".", [1500, 45]),
    ("`4.5` is invalid", "integer", [None]),
]


@pytest.mark.parametrize(("claim", "spec", "results"), NUMBER_CLAIMS)
def test_the_number_rules_in_the_readme(claim, spec, results):
    assert claim in TRANSFORMS
    fn = REGISTRY["integer"].factory(*(() if spec == "integer" else (spec,)))
    texts = [t for t in ticked(claim) if not t.startswith("{")]
    assert len(texts) == len(results)
    for text, expected in zip(texts, results, strict=True):
        if expected is None:
            with pytest.raises(TransformProblem):
                fn(text)
        else:
            assert fn(text) == expected
