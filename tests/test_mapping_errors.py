"""Invalid mapping files, as a table: one line per (change to mappings/jicoo.yaml, expected error).

Each case starts from the bundled mappings/jicoo.yaml (or a stand-alone snippet) and must end in
exactly one readable :class:`ConfigError` that says where and what. ``{line}`` in an expected
message is the line, in the changed file, of the case's ``at`` text, so the table keeps working
when comments are added to jicoo.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.errors import ConfigError
from flows.mapping.model import load_mapping

JICOO = Path(__file__).resolve().parents[1] / "mappings" / "jicoo.yaml"
BASE = JICOO.read_text(encoding="utf-8")


@dataclass
class Case:
    id: str
    yaml: str  # the whole file as given to the loader
    expected: list[str]  # fragments of the message; {line} / {line2} filled from `at`
    at: tuple[str, ...] = ()  # text whose line (first occurrence) the message must name
    not_in_message: tuple[str, ...] = ()


def edit(old: str, new: str, count: int = 1) -> str:
    assert BASE.count(old) >= 1, f"jicoo.yaml no longer contains {old!r}; update the table"
    return BASE.replace(old, new, count)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(f"{needle!r} not in the case's YAML")


NAME_FIELD = ("  name:\n    column: Guest Name\n    transforms: [trim, collapse_spaces, {max_length: 64}]\n"
              "    required: true\n")

CASES = [
    # --- unknown keys ---------------------------------------------------------------------------------
    Case("unknown top-level key", BASE + "\nbogus: 1\n",
         ["line {line}, bogus: unknown key (check the spelling; mappings/mapping.schema.json lists the keys)"],
         at=("bogus: 1",)),
    Case("unknown key in a field", edit("    column: Guest Name\n", "    column: Guest Name\n    colum: Guest\n"),
         ["line {line}, fields.name.colum: unknown key"], at=("colum: Guest",)),
    Case("unknown key in a datetime", edit('      format: "%d/%m/%Y"', '      format: "%d/%m/%Y"\n      fromat: x'),
         ["line {line}, fields.startedAt.datetime.fromat: unknown key"], at=("fromat: x",)),
    Case("unknown key in connection", edit("  concurrency: 8", "  concurency: 8"),
         ["line {line}, connection.concurency: unknown key"], at=("concurency: 8",)),
    # --- field sources ---------------------------------------------------------------------------------
    Case("field with column and const", edit("    column: Guest Name\n", "    column: Guest Name\n    const: Ann\n"),
         ["line {line}, fields.name: give exactly one of column, const, template, datetime or run_value "
          "(found column, const)"],
         at=("  name:",)),
    Case("field with no source", edit("    column: Guest Name\n", ""),
         ["line {line}, fields.name: give exactly one of column, const, template, datetime or run_value"],
         at=("  name:",), not_in_message=("found",)),
    Case("field that is not a mapping",
         edit("  phoneNumber:\n    column: Phone\n    transforms: [trim, {max_length: 32}]\n",
              "  phoneNumber: Phone\n"),
         ["line {line}, fields.phoneNumber: Input should be a valid dictionary"], at=("phoneNumber: Phone",)),
    Case("template without placeholder", edit("    column: Guest Name\n", "    template: Guest\n"),
         ["line {line}, fields.name: a template needs at least one {{Column Name}} placeholder; "
          "use const for fixed text"],
         at=("  name:",)),
    Case("when_empty not omit or null",
         edit("    column: Guest Name\n", "    column: Guest Name\n    when_empty: skip\n"),
         ["line {line}, fields.name.when_empty: Input should be 'omit' or 'null'"], at=("when_empty: skip",)),
    Case("malformed field path", edit("  company:\n", "  com pany:\n"),
         ["fields: 'com pany' is not a field path (use names joined by dots, with [n] for list items)"]),
    Case("field paths that clash", BASE + "  name.first:\n    const: Ann\n",
         ["fields: fields 'name' and 'name.first' clash: one makes 'name' a value, the other an object"]),
    Case("field paths that fill the same place", BASE + "  answers[0]:\n    const: a\n  answers[00]:\n    const: b\n",
         ["fields 'answers[0]' and 'answers[00]' both fill 'answers[0]'; keep one"]),
    Case("no fields", BASE.split("\nfields:")[0] + "\nfields: {}\n",
         ["line {line}, fields: Dictionary should have at least 1 item"], at=("fields: {}",)),
    # --- transforms --------------------------------------------------------------------------------------
    Case("unknown transform", edit("[trim, collapse_spaces,", "[trimm, collapse_spaces,"),
         ["line {line}, fields.name.transforms.0: unknown transform 'trimm'; did you mean 'trim'?"],
         at=("[trimm, collapse_spaces",)),
    Case("transform missing its parameter", edit("{max_length: 64}", "max_length"),
         ["line {line}, fields.name.transforms.2: transform 'max_length' needs a parameter (N, a whole number), "
          "e.g. {{max_length: ...}}"], at=("collapse_spaces, max_length",)),
    Case("parameter given to a bare transform", edit("[trim, collapse_spaces,", "[{trim: yes}, collapse_spaces,"),
         ["fields.name.transforms.0: transform 'trim' takes no parameter; write it as a bare name"]),
    Case("max_length that is not a number", edit("{max_length: 64}", "{max_length: lots}"),
         ["fields.name.transforms.2: transform 'max_length': N must be a whole number, not 'lots'"]),
    Case("empty lookup table", edit("{lookup: {en: en, ja: ja, english: en, japanese: ja}}", "{lookup: {}}"),
         ["fields.locale.transforms.2: transform 'lookup': lookup needs a non-empty table"]),
    Case("transforms not a list", edit("transforms: [trim, collapse_spaces, {max_length: 64}]", "transforms: trim"),
         ["line {line}, fields.name.transforms: Input should be a valid list"], at=("transforms: trim",)),
    # --- secrets and connection --------------------------------------------------------------------------------
    Case("secret in lower case", edit("secret: JICOO_API_KEY", "secret: jicoo_api_key"),
         ["line {line}, connection.auth.secret: must be the NAME of the environment variable that holds the secret, "
          "in capitals (e.g. JICOO_API_KEY), never the secret itself"], at=("secret: jicoo_api_key",)),
    Case("secret value instead of a name", edit("secret: JICOO_API_KEY", "secret: sk_live_123"),
         ["line {line}, connection.auth.secret: must be the NAME of the environment variable"],
         at=("secret: sk_live_123",), not_in_message=("sk_live_123",)),  # never echo what may be the key
    Case("unknown auth kind", edit("kind: api_key_header", "kind: oauth"),
         ["connection.auth: Input tag 'oauth' found using 'kind' does not match any of the expected tags: "
          "'api_key_header', 'api_key_body', 'none'"]),
    Case("auth without its header", edit("    header: X-Jicoo-Api-Key\n", ""),
         ["connection.auth.header: Field required"]),
    # the kind pydantic chose (its tag in the error's loc) never shows in the path, whichever kind it is
    Case("oauth2 scope with an empty name", edit(
        "    kind: api_key_header\n    header: X-Jicoo-Api-Key\n    secret: JICOO_API_KEY",
        "    kind: oauth2_client_credentials\n    token_url: https://login.example.com/token\n"
        "    client_id: JICOO_CLIENT_ID\n    client_secret: JICOO_CLIENT_SECRET\n    scope: [jobs:read, '']"),
         ["line {line}, connection.auth.scope: give scope names"], at=("scope: [jobs:read",),
         not_in_message=("oauth2_client_credentials.",)),
    Case("jwt login with an unknown key", edit(
        "    kind: api_key_header\n    header: X-Jicoo-Api-Key\n    secret: JICOO_API_KEY",
        "    kind: jwt_login\n    username: JICOO_USER\n    password: JICOO_PASSWORD\n    tokn_field: token"),
         ["line {line}, connection.auth.tokn_field: unknown key"], at=("tokn_field: token",),
         not_in_message=("jwt_login.",)),
    Case("base_url not http(s)", edit("https://api.jicoo.com/v1", "ftp://api.jicoo.com"),
         ["line {line}, connection.base_url: 'ftp://api.jicoo.com' is not an http(s) URL"], at=("ftp://api.jicoo.com",)),
    Case("base_url without scheme", edit("https://api.jicoo.com/v1", "api.jicoo.com/v1"),
         ["connection.base_url: 'api.jicoo.com/v1' is not an http(s) URL"]),
    Case("concurrency zero", edit("concurrency: 8", "concurrency: 0"),
         ["line {line}, connection.concurrency: Input should be greater than or equal to 1"], at=("concurrency: 0",)),
    # --- datetime -------------------------------------------------------------------------------------------------
    Case("datetime without any timezone",
         edit("      timezone_column: Time Zone\n      timezone: Europe/London", "     "),
         ["line {line}, fields.startedAt.datetime: give `timezone` (an IANA zone such as Europe/London) or "
          "`timezone_column`, or both"], at=("    datetime:",)),
    Case("timezone that is not IANA", edit("      timezone: Europe/London", "      timezone: London"),
         ["line {line}, fields.startedAt.datetime: timezone 'London' is not an IANA time zone such as Europe/London"],
         at=("    datetime:",)),
    # --- request --------------------------------------------------------------------------------------------------
    Case("method GET", edit("method: POST", "method: GET"),
         ["line {line}, request.method: Input should be 'POST', 'PUT' or 'PATCH'"], at=("method: GET",)),
    Case("path without slash", edit("path: /bookings", "path: bookings"),
         ["line {line}, request.path: path must start with /"], at=("path: bookings",)),
    Case("response action misspelt", edit("409: {action: reject", "409: {action: rejekt"),
         ["line {line}, request.responses.409.action: Input should be 'success', 'reject', 'retry', 'unknown', "
          "'stop' or 'fail'"], at=("409: {action: rejekt",)),
    Case("response reason without phrases",
         edit("409: {action: reject", "409: {reasons: [{action: reject, text: []}], action: reject"),
         ["line {line}, request.responses.409.reasons.0.text: List should have at least 1 item"],
         at=("409: {reasons:",)),
    Case("response reason that matches anything",
         edit("409: {action: reject", "409: {reasons: [{action: reject, text: ['*']}], action: reject"),
         ["request.responses.409.reasons.0.text: '*' matches any text: give words from the provider's answer"]),
    Case("response reason action misspelt",
         edit("409: {action: reject", "409: {reasons: [{action: rejekt, text: [taken]}], action: reject"),
         ["request.responses.409.reasons.0.action: Input should be 'success', 'reject'"]),
    Case("contract the provider does not have", edit("jicoo.CreateBooking", "jicoo.Nope"),
         ["jicoo.yaml, line {line}: request.contract: provider 'jicoo' has no 'Nope' "
          "(it offers: CreateBooking, find_booking)"], at=("contract: jicoo.Nope",)),
    Case("contract of an unknown provider", edit("jicoo.CreateBooking", "nope.X"),
         ["jicoo.yaml, line {line}: request.contract: no provider module 'nope' (known: bigchange, jicoo,"],
         at=("contract: nope.X",)),
    Case("contract without a provider", edit("jicoo.CreateBooking", "CreateBooking"),
         ["request.contract: 'CreateBooking' is not of the form <provider>.<Name>, e.g. jicoo.CreateBooking"]),
    Case("readback that does not exist", edit("jicoo.find_booking", "jicoo.find_bookings"),
         ["jicoo.yaml, line {line}: request.readback: provider 'jicoo' has no 'find_bookings'"],
         at=("readback: jicoo.find_bookings",)),
    Case("contract field the mapping does not fill", edit(NAME_FIELD, ""),
         ["jicoo.yaml, line {line}: fields: the provider requires name but the mapping does not fill it; "
          "add a field for each (a column, a const or a template)"], at=("fields:",)),
    Case("two contract fields not filled", edit(NAME_FIELD, "").replace("  locationId:", "  location:"),
         ["the provider requires name, locationId but the mapping does not fill them"]),
    # --- top level ---------------------------------------------------------------------------------------------------
    Case("provider id with capitals", edit("provider: jicoo", "provider: Jicoo"),
         ["line {line}, provider: String should match pattern"], at=("provider: Jicoo",)),
    Case("key missing", edit("key: Booking Ref", "# key: Booking Ref"), ["key: Field required"]),
    Case("key empty", edit("key: Booking Ref ", "key: [] "),
         ["line {line}, key: Value should have at least 1 item"], at=("key: []",)),
    Case("retry attempts zero", edit("attempts: 5", "attempts: 0"),
         ["line {line}, retry.attempts: Input should be greater than or equal to 1"], at=("attempts: 0",)),
    Case("a list instead of a mapping", "- provider: jicoo\n",
         ["line 1, (top level): Input should be a valid dictionary"]),
    # --- YAML itself -------------------------------------------------------------------------------------------------
    Case("duplicate key", edit("  path: /bookings\n", "  path: /bookings\n  path: /events\n"),
         ["jicoo.yaml, line {line2}: the key 'path' appears twice (first on line {line}); keep one"],
         at=("path: /bookings", "path: /events")),
    Case("duplicate field", BASE + NAME_FIELD,
         ["jicoo.yaml, line {line2}: the key 'name' appears twice (first on line {line}); keep one"],
         at=("  name:", "  name:#2")),
    Case("invalid YAML syntax", edit("  method: POST\n", "  method: [POST\n"),
         ["jicoo.yaml, line {line}: not valid YAML: expected ',' or ']'"], at=("path: /bookings",)),
    Case("tab indentation", edit("  method: POST\n", "\tmethod: POST\n"),
         ["jicoo.yaml, line {line}: not valid YAML: found character '\\t' that cannot start any token"],
         at=("\tmethod: POST",)),
    Case("control character", BASE + "description: bell\x07\n",
         ["jicoo.yaml, line {line}: not valid YAML: special characters are not allowed (character #x0007); remove it"],
         at=("description: bell",)),
    Case("python tag", "provider: !!python/name:os.system\n",
         ["jicoo.yaml, line 1: not a valid value: could not determine a constructor for the tag"]),
    Case("impossible YAML date", "provider: jicoo\ndescription: 2026-13-45\n",
         ["jicoo.yaml, line 2: not a valid value: month must be in 1..12"]),
    Case("empty file", "", ["jicoo.yaml is empty; see mappings/jicoo.yaml for an example"]),
    Case("only comments", "# provider: jicoo\n", ["jicoo.yaml is empty"]),
    # --- formats that no sheet value could match (issue 12): refused when the mapping loads ------------------
    Case("a date format with no directives", edit('      format: "%d/%m/%Y"', '      format: "dd/mm/yyyy"'),
         ["line {line}, fields.startedAt.datetime.format: format 'dd/mm/yyyy' has no % directives",
          "did you mean '%d/%m/%Y'?"], at=('format: "dd/mm/yyyy"',)),
    Case("a date format half written", edit('      format: "%d/%m/%Y"', '      format: "%d/%m/yyyy"'),
         ["line {line}, fields.startedAt.datetime.format: format '%d/%m/yyyy' mixes % directives with 'yyyy'",
          "did you mean '%d/%m/%Y'?"], at=('format: "%d/%m/yyyy"',)),
    Case("a date format without a year", edit('      format: "%d/%m/%Y"', '      format: "%d/%m"'),
         ["line {line}, fields.startedAt.datetime.format: format '%d/%m' lacks a day, month or year"],
         at=('format: "%d/%m"',)),
    Case("a Java time format", edit('      format: "%d/%m/%Y"', '      format: "%d/%m/%Y"\n      time_format: "HH:mm"'),
         ["line {line}, fields.startedAt.datetime.time_format: format 'HH:mm' has no % directives",
          "did you mean '%H:%M'?"], at=('time_format: "HH:mm"',)),
    Case("a 12-hour time format without AM/PM",
         edit('      format: "%d/%m/%Y"', '      format: "%d/%m/%Y"\n      time_format: "%I:%M"'),
         ["line {line}, fields.startedAt.datetime.time_format:", "%I (12-hour) needs %p (AM/PM)"],
         at=('time_format: "%I:%M"',)),
    Case("an unknown ambiguous choice",
         edit('      format: "%d/%m/%Y"', '      format: "%d/%m/%Y"\n      ambiguous: first'),
         ["line {line}, fields.startedAt.datetime.ambiguous: Input should be 'refuse', 'earlier' or 'later'"],
         at=("ambiguous: first",)),
    Case("a date transform with no directives",
         edit("    transforms: [trim, {max_length: 2000}]", "    transforms: [trim, {date: dd/mm/yyyy}]"),
         ["fields.message.transforms.1:", "format 'dd/mm/yyyy' has no % directives", "did you mean '%d/%m/%Y'?"]),
    Case("an integer with a bad separator",
         edit("    transforms: [trim, {max_length: 2000}]", "    transforms: [trim, {integer: ';'}]"),
         ["fields.message.transforms.1:", "the decimal separator is ',' or '.'"]),
]


def _expand(case: Case) -> list[str]:
    lines = {}
    for i, needle in enumerate(case.at):
        nth = 1
        if "#" in needle and needle.rsplit("#", 1)[1].isdigit():
            needle, n = needle.rsplit("#", 1)
            nth = int(n)
        lines["line" if i == 0 else f"line{i + 1}"] = line_of(case.yaml, needle, nth)
    return [fragment.format(**lines) for fragment in case.expected]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_mapping(case, tmp_path):
    path = tmp_path / "jicoo.yaml"
    path.write_text(case.yaml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    message = str(info.value)
    for fragment in _expand(case):
        assert fragment in message
    for fragment in case.not_in_message:
        assert fragment not in message
    # one readable error: no pydantic internals, no traceback text, one problem line
    assert "errors.pydantic.dev" not in message and "[type=" not in message and "Traceback" not in message
    problem_lines = message.splitlines()[1:]
    assert len(problem_lines) <= 1, message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"mapping file .*nope\.yaml does not exist; see mappings/ for examples"):
        load_mapping(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder; give the path of a mapping \.yaml file"):
        load_mapping(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "jicoo.yaml"
    path.write_bytes(BASE.replace("Guest Name", "G\u00e4st").encode("cp1252"))
    with pytest.raises(ConfigError, match="is not UTF-8 text; save the mapping file as UTF-8"):
        load_mapping(path)


def test_every_problem_is_listed_with_its_line(tmp_path):
    text = edit("concurrency: 8", "concurrency: 0").replace("method: POST", "method: GET")
    path = tmp_path / "jicoo.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    lines = str(info.value).splitlines()
    assert lines[0] == "jicoo.yaml is not a valid mapping file:"
    assert lines[1:] == [
        f"  line {line_of(text, 'concurrency: 0')}, connection.concurrency: Input should be greater than or equal to 1",
        f"  line {line_of(text, 'method: GET')}, request.method: Input should be 'POST', 'PUT' or 'PATCH'",
    ]


def test_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "jicoo.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode("utf-8"))
    assert load_mapping(path).provider == "jicoo"
