"""Named transforms: each one does what its In/Out docs say, and bad specs fail with a hint.

The first test runs every documented example from ``transforms.REGISTRY`` (the same text that
``booking-import transforms`` prints and the README lists), so the docs cannot drift from the code.
"""
from __future__ import annotations

import datetime as dt

import pytest
import yaml

from flows.mapping.transforms import (
    REGISTRY,
    LookupTable,
    TransformProblem,
    build_transform,
    closest,
    is_iana_zone,
    to_text,
)

#: parameters for documented examples that do not spell out "with ..." (the docs show only In/Out)
EXAMPLE_PARAMS = {
    "default": "Europe/London",
    "lookup": {"In person": "inPerson"},
    "date": "%d/%m/%Y",
    "max_length": 3,
    "truncate": 3,
}


def _parse_doc_value(text: str):
    """The docs' notation: '(empty)' is None, quoted text is YAML-quoted, numbers are numbers."""
    return None if text == "(empty)" else yaml.safe_load(text)


def _doc_examples():
    for name, doc in REGISTRY.items():
        for i, (given, expected) in enumerate(doc.examples):
            yield pytest.param(name, given, expected, id=f"{name}-{i}")


#: what the remote_lookup examples resolve against (normally fetched from the provider per run)
EXAMPLE_TABLES = {"job_types": LookupTable("job_types", [("Boiler Service", 1042), ("Gas Safety Check", 1043)])}


def run(spec, value):
    return build_transform(spec, EXAMPLE_TABLES)[1](value)


def problem(spec, value) -> str:
    with pytest.raises(TransformProblem) as info:
        run(spec, value)
    return str(info.value)


# --- the docs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_transform_is_documented(name):
    doc = REGISTRY[name]
    assert doc.name == name
    assert doc.summary.strip().endswith("."), f"{name}: the summary should be a sentence"
    assert doc.examples, f"{name} needs at least one In/Out example"
    assert all(given and expected for given, expected in doc.examples)
    if doc.param:
        assert doc.param.strip(), f"{name}: say what the parameter is"


@pytest.mark.parametrize(("name", "given", "expected"), list(_doc_examples()))
def test_documented_examples_hold(name, given, expected):
    doc = REGISTRY[name]
    if " with " in given:
        given, param_text = given.split(" with ", 1)
        param = yaml.safe_load(param_text)
    else:
        param = EXAMPLE_PARAMS.get(name)
    spec = {name: param} if doc.param else name
    value = _parse_doc_value(given)
    if expected.startswith("problem: "):
        wanted = expected.removeprefix("problem: ").removesuffix("...").strip()
        assert wanted in problem(spec, value)
    else:
        assert run(spec, value) == _parse_doc_value(expected)


# --- behaviour, one line per case ---------------------------------------------------------------------

CASES = [
    # (transform spec, input, output)
    ("trim", "  Ann Lee ", "Ann Lee"),
    ("trim", "\u00a0Ann Lee\u00a0 ", "Ann Lee"),  # non-breaking spaces, as pasted from web pages
    ("trim", " \u00a0 \u00a0", None),  # all-space cell becomes empty
    ("trim", "", None),
    ("trim", None, None),
    ("trim", dt.date(2026, 3, 1), dt.date(2026, 3, 1)),  # non-text cells pass through
    ("collapse_spaces", "Ann \t  Lee", "Ann Lee"),
    ("lower", "Ann@Example.COM", "ann@example.com"),
    ("upper", "gb", "GB"),
    ("lower", None, None),
    ({"default": "Europe/London"}, None, "Europe/London"),
    ({"default": "Europe/London"}, "", "Europe/London"),
    ({"default": "Europe/London"}, "Asia/Tokyo", "Asia/Tokyo"),
    ({"max_length": 3}, "Ann", "Ann"),
    ({"max_length": 3}, None, None),
    ({"truncate": 3}, "Annabelle", "Ann"),
    ({"truncate": 3}, "An", "An"),
    ("email", "ann.lee+tag@example.co.uk", "ann.lee+tag@example.co.uk"),
    ("email", None, None),
    ("digits", "07700 900-123", "07700900123"),
    ("digits", " +44 (0)7700 900123", "+4407700900123"),
    ("digits", "n/a", None),
    ("digits", "+", None),  # a lone plus is not a number
    ("integer", "45", 45),
    ("integer", "45.0", 45),
    ("integer", " 1 234 ", 1234),  # spaces group thousands under either separator
    ("integer", "12,345,678", 12345678),  # two commas can only be grouping
    ("integer", "1.234.567", 1234567),
    ({"integer": "."}, " 1,234 ", 1234),  # issue 12: '1,234' alone is ambiguous; the mapping says the separator
    ({"integer": "."}, "45.0", 45),
    ({"integer": ","}, "1.234", 1234),
    ({"integer": ","}, "90,0", 90),
    ({"integer": ","}, "1\u00a0500", 1500),
    ("integer", "-3", -3),
    ("integer", "12345678901234567890", 12345678901234567890),  # no float rounding
    ("integer", 7, 7),
    ("integer", None, None),
    ({"lookup": {"In person": "inPerson", "Zoom": "zoom"}}, "In person", "inPerson"),
    ({"lookup": {"In person": "inPerson", "Zoom": "zoom"}}, "  in PERSON ", "inPerson"),  # case and spaces ignored
    ({"lookup": {"In person": "inPerson", "Zoom": "zoom"}}, "ZOOM", "zoom"),
    ({"lookup": {"yes": True, "no": False}}, "Yes", True),  # provider values keep their type
    ({"lookup": {"In person": "inPerson"}}, None, None),
    ("iana_zone", "Europe/London", "Europe/London"),
    ("iana_zone", "Asia/Tokyo", "Asia/Tokyo"),
    ("iana_zone", None, None),
    ({"date": "%d/%m/%Y"}, "21/11/2026", "2026-11-21"),
    ({"date": "%d/%m/%Y"}, "05/03/2026", "2026-03-05"),  # day first: 5 March, not 3 May
    ({"date": "%d/%m/%Y"}, " 29/02/2028 ", "2028-02-29"),  # a leap day
    ({"date": "%m/%d/%Y"}, "03/05/2026", "2026-03-05"),
    ({"date": "%d/%m/%Y"}, dt.datetime(2026, 3, 5, 10, 30), "2026-03-05"),  # real Excel cells
    ({"date": "%d/%m/%Y"}, dt.date(2026, 3, 5), "2026-03-05"),
    ({"date": "%d/%m/%Y"}, None, None),
]


@pytest.mark.parametrize(("spec", "given", "expected"), CASES)
def test_transform(spec, given, expected):
    assert run(spec, given) == expected


PROBLEMS = [
    # (transform spec, input, fragment of the cell's problem message)
    ({"max_length": 3}, "Annabelle", "is 9 characters long; at most 3 are allowed"),
    ({"max_length": 64}, "x" * 65, "is 65 characters long; at most 64 are allowed"),
    ("email", "ann@", "'ann@' is not a valid e-mail address"),
    ("email", "ann@example", "is not a valid e-mail address"),
    ("email", "ann lee@example.com", "is not a valid e-mail address"),
    ("email", "ann@@example.com", "is not a valid e-mail address"),
    ("integer", "4.5", "'4.5' is not a whole number"),
    ("integer", "abc", "'abc' is not a whole number"),
    ("integer", "nan", "is not a whole number"),
    ("integer", "inf", "is not a whole number"),
    ("integer", "90,0",
     "'90,0' has a decimal comma; if the sheet writes decimals with a comma, write the transform as {integer: ','}"),
    ("integer", "1,5", "has a decimal comma"),  # not 15
    ("integer", "1,234", "'1,234' could be 1234 or 1.234; say which separator"),
    ("integer", "1.500", "'1.500' could be 1.5 or 1500"),
    ({"integer": ","}, "1,5", "'1,5' is not a whole number"),
    ({"integer": "."}, "1,5", "'1,5' is not a whole number"),
    ({"integer": "."}, "1234,567", "is not a whole number"),
    ({"lookup": {"In person": "inPerson", "Zoom": "zoom"}}, "Massage", "'Massage' is not one of: In person, Zoom"),
    ({"lookup": {"In person": "inPerson", "Zoom": "zoom"}}, "In persn", "(closest: In person)"),
    ("iana_zone", "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone such as Europe/London"),
    ("iana_zone", "europe/london", "closest: Europe/London"),
    ("iana_zone", "Europe/Londn", "closest: Europe/London"),
    ({"date": "%d/%m/%Y"}, "31/02/2026", "'31/02/2026' is not a date in the form 31/12/2026"),
    ({"date": "%d/%m/%Y"}, "29/02/2027", "is not a date in the form 31/12/2026"),  # not a leap year
    ({"date": "%d/%m/%Y"}, "2026-03-05", "is not a date in the form 31/12/2026"),
    ({"date": "%Y-%m-%d"}, "13/01/2026", "is not a date in the form 2026-12-31"),
]


@pytest.mark.parametrize(("spec", "given", "fragment"), PROBLEMS)
def test_transform_problem(spec, given, fragment):
    assert fragment in problem(spec, given)


def test_lookup_lists_only_the_first_entries_of_a_long_table():
    table = {f"Room {i}": f"r{i}" for i in range(20)}
    message = problem({"lookup": table}, "Kitchen")
    assert "Room 11, ..." in message and "Room 12" not in message


# --- building transforms from a mapping file -------------------------------------------------------------

BUILD_ERRORS = [
    # (spec as written in YAML, fragment of the error)
    ("trimm", "unknown transform 'trimm'; did you mean 'trim'?"),
    ("maxlength", "did you mean 'max_length'?"),
    ("lowr", "did you mean 'lower'?"),
    ("xyzzy", "unknown transform 'xyzzy' (known: collapse_spaces, date, default"),
    ("max_length", "transform 'max_length' needs a parameter (N, a whole number), e.g. {max_length: ...}"),
    ("lookup", "transform 'lookup' needs a parameter"),
    ("date", "transform 'date' needs a parameter (the strftime format"),
    ({"trim": 1}, "transform 'trim' takes no parameter; write it as a bare name"),
    ({"email": True}, "transform 'email' takes no parameter"),
    ({"lookup": {}}, "lookup needs a non-empty table"),
    ({"lookup": ["a", "b"]}, "lookup needs a non-empty table"),
    ({"max_length": 3, "trim": None}, "a transform is a name or a one-key mapping like {max_length: 64}"),
    (["trim"], "a transform is a name or a one-key mapping"),
]


@pytest.mark.parametrize(("spec", "fragment"), BUILD_ERRORS)
def test_build_transform_errors(spec, fragment):
    with pytest.raises(ValueError) as info:
        build_transform(spec)
    assert fragment in str(info.value)


def test_build_transform_returns_its_name():
    assert build_transform("trim")[0] == "trim"
    assert build_transform({"max_length": "64"})[0] == "max_length"  # a quoted number is fine


# --- helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (None, None),
    ("x", "x"),
    (45, "45"),
    (dt.date(2026, 3, 5), "2026-03-05"),
    (dt.datetime(2026, 3, 5, 9, 30), "2026-03-05T09:30:00"),
    (dt.time(9, 30), "09:30:00"),
])
def test_to_text(value, text):
    assert to_text(value) == text


def test_closest_is_case_insensitive_and_returns_the_original_spelling():
    assert closest("guest name", ["Guest Name", "Email"]) == ["Guest Name"]
    assert closest("zzz", ["Guest Name", "Email"]) == []


@pytest.mark.parametrize(("zone", "ok"), [("Europe/London", True), ("Asia/Tokyo", True), ("UTC", True),
                                          ("europe/london", False), ("GMT+1", False), ("", False)])
def test_is_iana_zone(zone, ok):
    assert is_iana_zone(zone) is ok


@pytest.mark.parametrize("spec", ["email", {"lookup": {"In person": "inPerson"}}, "iana_zone", "integer",
                                  {"date": "%d/%m/%Y"}])
def test_a_huge_cell_with_control_bytes_gives_a_short_escaped_message(spec):
    message = problem(spec, "x\x00\x1b" * 300_000)
    assert "\x00" not in message and "\x1b" not in message and "\\x00" in message
    assert len(message) < 400 and "more characters" in message
