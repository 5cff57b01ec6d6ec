"""flows.workbooks.sheets: real CSV and Excel files written to tmp_path and read back."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import xlsxwriter

from flows.errors import InputError
from flows.workbooks.sheets import Sheet, column_letter, list_sheets, read_sheet


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def write_xlsx(tmp_path: Path, sheets: dict[str, list[tuple[int, int, object, str | None]]],
               name: str = "in.xlsx") -> Path:
    """``sheets``: name -> [(row, col, value, kind)]; kind picks the XlsxWriter call."""
    p = tmp_path / name
    wb = xlsxwriter.Workbook(str(p))
    fmts = {
        "text": wb.add_format({"num_format": "@"}),
        "date": wb.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": wb.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
        "time": wb.add_format({"num_format": "hh:mm"}),
    }
    for sheet_name, cells in sheets.items():
        ws = wb.add_worksheet(sheet_name)
        for r, c, value, kind in cells:
            if kind in ("date", "datetime", "time"):
                ws.write_datetime(r, c, value, fmts[kind])
            elif kind == "text":
                ws.write_string(r, c, value, fmts["text"])
            elif kind == "number":
                ws.write_number(r, c, value)
            elif kind == "bool":
                ws.write_boolean(r, c, value)
            else:
                ws.write_string(r, c, value)
    wb.close()
    return p


def row_cells(r: int, values: list[object], kind: str | None = None) -> list[tuple[int, int, object, str | None]]:
    return [(r, c, v, kind) for c, v in enumerate(values) if v is not None]


def assert_one_line(err: pytest.ExceptionInfo[InputError]) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# --------------------------------------------------------------------------- CSV: encodings and delimiters


def test_csv_utf8_keeps_text_exactly(tmp_path):
    p = write_csv(tmp_path, "name,phone,postcode,note\nZoë,0612345678,01234,NA\nBob, 06 12 ,00000,null\n")
    s = read_sheet(p)
    assert s.columns == ["name", "phone", "postcode", "note"]
    assert s.rows == [["Zoë", "0612345678", "01234", "NA"], ["Bob", " 06 12 ", "00000", "null"]]
    assert (s.encoding, s.delimiter, s.sheet_name) == ("utf-8-sig", ",", None)
    assert s.line_numbers == [2, 3]


def test_csv_utf8_bom_is_not_glued_to_the_first_header(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfbooking_ref,name\nB1,Ann\n")
    s = read_sheet(p)
    assert s.columns == ["booking_ref", "name"]
    assert s.column_index("booking_ref") == 0
    assert s.encoding == "utf-8-sig"


def test_csv_cp1252_semicolons(tmp_path):
    p = write_csv(tmp_path, "Nom;Ville;Montant\nJosé;Besançon;€12,50\nRenée;Orléans;3\n", encoding="cp1252")
    s = read_sheet(p)
    assert s.encoding == "cp1252" and s.delimiter == ";"
    assert s.columns == ["Nom", "Ville", "Montant"]
    assert s.rows == [["José", "Besançon", "€12,50"], ["Renée", "Orléans", "3"]]


def test_csv_latin1_bytes_outside_cp1252_still_read(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes(b"name,code\nJos\xe9,\x81x\n")  # 0x81 is undefined in cp1252
    s = read_sheet(p)
    assert s.encoding == "latin-1"
    assert s.rows == [["José", "\x81x"]]


@pytest.mark.parametrize(
    ("text", "name", "delimiter"),
    [
        ("a\tb\tc\n1\t2,5\t3\n", "in.tsv", "\t"),
        ("a\tb\tc\n1\t2,5\t3\n", "in.txt", "\t"),
        ("a|b|c\n1|2,5|3\n", "in.csv", "|"),
        ("a;b;c\n1;2,5;3\n", "in.csv", ";"),
    ],
)
def test_csv_delimiter_detected(tmp_path, text, name, delimiter):
    s = read_sheet(write_csv(tmp_path, text, name=name))
    assert s.delimiter == delimiter
    assert s.columns == ["a", "b", "c"]
    assert s.rows == [["1", "2,5", "3"]]


def test_csv_delimiter_fallback_counts_the_header(tmp_path):
    # a header-only file gives the sniffer nothing to compare; the header line decides
    s = read_sheet(write_csv(tmp_path, "name;email;phone\n"))
    assert s.delimiter == ";" and s.columns == ["name", "email", "phone"]
    assert s.rows == [] and s.line_numbers == []
    # one column: no delimiter anywhere, comma is the default
    s = read_sheet(write_csv(tmp_path, "name\nAnn\nBob\n"))
    assert s.delimiter == "," and s.rows == [["Ann"], ["Bob"]]


def test_csv_forced_encoding_and_delimiter(tmp_path):
    p = write_csv(tmp_path, "a,b;c\n1,2;3\n", encoding="latin-1")
    s = read_sheet(p, delimiter=";", encoding="latin-1")
    assert s.columns == ["a,b", "c"] and s.rows == [["1,2", "3"]]
    assert (s.encoding, s.delimiter) == ("latin-1", ";")
    assert read_sheet(p, delimiter="tab").columns == ["a,b;c"]


def test_csv_forced_encoding_that_does_not_fit(tmp_path):
    p = write_csv(tmp_path, "name\nJosé\n", encoding="cp1252")
    with pytest.raises(InputError) as err:
        read_sheet(p, encoding="utf-8")
    assert "is not valid utf-8 text (byte 0xe9" in assert_one_line(err)
    with pytest.raises(InputError, match="unknown encoding"):
        read_sheet(p, encoding="klingon")


def test_csv_quoted_fields_and_multiline_records_keep_the_rows_excel_shows(tmp_path):
    p = write_csv(tmp_path, 'ref,note\r\nB1,"line one\r\nline two"\r\nB2,"a, ""quoted"" b"\r\n\r\nB3,x\r\n')
    s = read_sheet(p)
    assert s.rows == [["B1", "line one\r\nline two"], ["B2", 'a, "quoted" b'], ["B3", "x"]]
    assert s.line_numbers == [2, 3, 5]  # Excel shows B1's note as one cell of row 2; B2 is row 3 (issue 12)


def test_csv_empty_fields_are_none_and_ragged_lines_are_padded(tmp_path):
    s = read_sheet(write_csv(tmp_path, "a,b,c\n1,,3\n4\n5,6,7,8\n"))
    assert s.columns == ["a", "b", "c", "Column D"]
    assert s.rows == [["1", None, "3", None], ["4", None, None, None], ["5", "6", "7", "8"]]


# --------------------------------------------------------------------------- header and blank rows


def test_header_is_first_non_blank_row_trimmed_and_blank_rows_keep_line_numbers(tmp_path):
    text = ",,\n\n  Booking Ref , Name\t,\ufeffCity \nB1,Ann,Paris\n,,\n   ,  ,\nB2,Bob,\n"
    s = read_sheet(write_csv(tmp_path, text))
    assert s.columns == ["Booking Ref", "Name", "City"]
    assert s.rows == [["B1", "Ann", "Paris"], ["B2", "Bob", None]]
    assert s.line_numbers == [4, 7]


def test_blank_header_over_data_is_named_by_letter_and_empty_columns_dropped(tmp_path):
    cells = row_cells(1, [None, "ref", "name", None, "city", None, None])
    cells += row_cells(2, [None, "B1", "Ann", "x", "Paris"])
    cells += row_cells(4, [None, "B2", "Bob", None, "Lyon", None])
    s = read_sheet(write_xlsx(tmp_path, {"Data": cells}))
    assert s.columns == ["ref", "name", "Column D", "city"]
    assert s.rows == [["B1", "Ann", "x", "Paris"], ["B2", "Bob", None, "Lyon"]]
    assert s.line_numbers == [3, 5]  # header on Excel row 2, row 4 blank


def test_duplicate_header_names_both_columns(tmp_path):
    p = write_csv(tmp_path, "ref,email,name, email \nB1,a@x,Ann,b@x\n")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    msg = assert_one_line(err)
    assert '"email"' in msg and "columns B and D" in msg and "rename" in msg


def test_column_index_names_the_columns_found(tmp_path):
    s = read_sheet(write_csv(tmp_path, "Booking Ref,Email\nB1,a@x\n"))
    assert s.column_index("Email") == 1
    with pytest.raises(InputError) as err:
        s.column_index("email")
    msg = assert_one_line(err)
    assert 'did you mean "Email"' in msg and '"Booking Ref"' in msg


# --------------------------------------------------------------------------- Excel


def test_xlsx_cells_are_text_first(tmp_path):
    header = ["phone", "postcode", "count", "price", "bare phone", "ok", "note", "empty", "name"]
    cells = row_cells(0, ["  " + h + " " if h == "name" else h for h in header])
    cells += [
        (1, 0, "0612345678", "text"), (1, 1, "01234", "text"), (1, 2, 5, "number"), (1, 3, 5.5, "number"),
        (1, 4, 612345678, "number"), (1, 5, True, "bool"), (1, 6, "NA", None), (1, 8, " Ann  Lee ", None),
        (2, 0, "null", None), (2, 1, "None", None), (2, 2, -3, "number"), (2, 3, 0.1 + 0.2, "number"),
        (2, 4, 1e20, "number"), (2, 5, False, "bool"), (2, 6, "=not a formula", None),
    ]
    s = read_sheet(write_xlsx(tmp_path, {"Data": cells}))
    assert s.columns == ["phone", "postcode", "count", "price", "bare phone", "ok", "note", "empty", "name"]
    assert s.rows[0] == ["0612345678", "01234", "5", "5.5", "612345678", "TRUE", "NA", None, " Ann  Lee "]
    assert s.rows[1] == ["null", "None", "-3", "0.3", "1e+20", "FALSE", "=not a formula", None, None]
    assert s.sheet_name == "Data" and s.encoding is None and s.delimiter is None
    assert all(len(r) == len(s.columns) for r in s.rows)


def test_xlsx_dates_and_times_stay_dates_and_times(tmp_path):
    cells = row_cells(0, ["day", "start", "at", "midnight"])
    cells += [
        (1, 0, dt.date(2026, 3, 1), "date"),
        (1, 1, dt.datetime(2026, 3, 1, 9, 30), "datetime"),
        (1, 2, dt.time(14, 45), "time"),
        (1, 3, dt.datetime(2026, 3, 2, 0, 0), "datetime"),
    ]
    s = read_sheet(write_xlsx(tmp_path, {"Data": cells}))
    day, start, at, midnight = s.rows[0]
    assert day == dt.date(2026, 3, 1) and not isinstance(day, dt.datetime)
    assert start == dt.datetime(2026, 3, 1, 9, 30)
    assert at == dt.time(14, 45)
    # calamine alone reports a date-time at 00:00 as a date; the cell's format shows a time, so it is one
    # (issue 12: a midnight date-time was refused in a combined date-and-time column)
    assert midnight == dt.datetime(2026, 3, 2, 0, 0)


def test_xlsx_blank_rows_skipped_with_true_row_numbers(tmp_path):
    cells = row_cells(2, ["ref", "name"]) + row_cells(3, ["B1", "Ann"]) + row_cells(4, ["  ", " "])
    cells += row_cells(6, ["B2", "Bob"])
    s = read_sheet(write_xlsx(tmp_path, {"Data": cells}))
    assert s.rows == [["B1", "Ann"], ["B2", "Bob"]]
    assert s.line_numbers == [4, 7]


def test_xlsx_header_only_is_an_empty_sheet(tmp_path):
    s = read_sheet(write_xlsx(tmp_path, {"Data": row_cells(0, ["ref", "name"])}))
    assert s == Sheet(s.path, ["ref", "name"], [], [], "Data", None, None)


def test_sheet_selection_and_unknown_sheet(tmp_path):
    p = write_xlsx(tmp_path, {
        "Notes": row_cells(0, ["read me"]),
        "Bookings": row_cells(0, ["ref"]) + row_cells(1, ["B1"]),
    })
    assert list_sheets(p) == ["Notes", "Bookings"]
    assert read_sheet(p).sheet_name == "Notes"  # the first sheet by default
    s = read_sheet(p, sheet="Bookings")
    assert (s.sheet_name, s.columns, s.rows) == ("Bookings", ["ref"], [["B1"]])
    with pytest.raises(InputError) as err:
        read_sheet(p, sheet="bookings")
    msg = assert_one_line(err)
    assert 'no sheet named "bookings"' in msg and '"Notes", "Bookings"' in msg and 'did you mean "Bookings"' in msg


def test_sheet_argument_is_ignored_for_csv(tmp_path):
    p = write_csv(tmp_path, "a\n1\n")
    assert list_sheets(p) == []
    assert read_sheet(p, sheet="Bookings").rows == [["1"]]


def test_xlsx_renamed_to_xls_is_still_read(tmp_path):
    p = write_xlsx(tmp_path, {"Data": row_cells(0, ["a"]) + row_cells(1, ["1"])})
    xls = p.rename(tmp_path / "old.xls")
    assert read_sheet(xls).rows == [["1"]]


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        read_sheet(tmp_path / "nope.xlsx")
    assert "file not found" in assert_one_line(err)


def test_directory(tmp_path):
    with pytest.raises(InputError) as err:
        read_sheet(tmp_path)
    assert "is a folder" in assert_one_line(err)


def test_unsupported_extension_lists_supported_ones(tmp_path):
    p = tmp_path / "bookings.pdf"
    p.write_bytes(b"%PDF-1.4")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    msg = assert_one_line(err)
    assert ".pdf" in msg and ".csv" in msg and ".xlsx" in msg and ".ods" in msg


def test_corrupt_xlsx(tmp_path):
    p = tmp_path / "broken.xlsx"
    p.write_bytes(b"this is not a zip file at all")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    msg = assert_one_line(err)
    assert "not a valid .xlsx" in msg and "save it again" in msg


def test_truncated_xlsx(tmp_path):
    good = write_xlsx(tmp_path, {"Data": row_cells(0, ["a"]) + row_cells(1, ["1"])})
    p = tmp_path / "cut.xlsx"
    p.write_bytes(good.read_bytes()[:400])  # a zip header, then nothing
    with pytest.raises(InputError) as err:
        read_sheet(p)
    assert "cannot be read as a workbook" in assert_one_line(err)


@pytest.mark.parametrize("suffix", [".xlsx", ".xlsm"])
def test_password_protected_xlsx(tmp_path, suffix):
    p = tmp_path / f"locked{suffix}"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0junk" * 200)
    with pytest.raises(InputError) as err:
        read_sheet(p)
    assert "is password-protected or encrypted: save an unprotected copy" in assert_one_line(err)
    with pytest.raises(InputError, match="password-protected"):
        list_sheets(p)


@pytest.mark.parametrize("name", ["empty.csv", "empty.xlsx"])
def test_empty_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    assert "is empty" in assert_one_line(err)


def test_csv_without_header_row(tmp_path):
    with pytest.raises(InputError) as err:
        read_sheet(write_csv(tmp_path, "\n ,  ,\n\n"))
    assert "has no header row" in assert_one_line(err)


def test_xlsx_without_header_row(tmp_path):
    p = write_xlsx(tmp_path, {"Data": [(3, 2, "   ", None)]})
    with pytest.raises(InputError) as err:
        read_sheet(p)
    msg = assert_one_line(err)
    assert 'sheet "Data"' in msg and "has no header row" in msg


def test_html_saved_as_xls(tmp_path):
    p = tmp_path / "export.xls"
    p.write_bytes(b"<html><table><tr><td>a</td></tr></table></html>")
    with pytest.raises(InputError) as err:
        read_sheet(p)
    assert "HTML" in assert_one_line(err)


def test_column_letters():
    assert [column_letter(i) for i in (0, 5, 25, 26, 27, 701, 702)] == ["A", "F", "Z", "AA", "AB", "ZZ", "AAA"]


def test_default_sheet_is_the_first_visible_one(tmp_path):
    p = tmp_path / "hidden.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    lookup, data = wb.add_worksheet("Lookup"), wb.add_worksheet("Data")
    lookup.write_string(0, 0, "code")
    data.write_string(0, 0, "ref")
    data.write_string(1, 0, "B1")
    data.activate()
    lookup.hide()
    wb.close()
    assert list_sheets(p) == ["Lookup", "Data"]
    assert read_sheet(p).sheet_name == "Data"
    assert read_sheet(p, sheet="Lookup").columns == ["code"]


def test_non_text_header_cells_become_names(tmp_path):
    cells = [(0, 0, 2024, "number"), (0, 1, dt.date(2026, 1, 31), "date"), (0, 2, "\ufeffref ", None)]
    cells += row_cells(1, ["a", "b", "c"])
    s = read_sheet(write_xlsx(tmp_path, {"Data": cells}))
    assert s.columns == ["2024", "2026-01-31", "ref"]


# --------------------------------------------------------------------------- issue 12 / 11: messy files


def test_csv_sep_line_names_the_delimiter_and_is_not_a_row(tmp_path):
    p = write_csv(tmp_path, "sep=;\r\nref;amount;city\r\nB1;1,5;Besançon\r\nB2;2,0;Lyon\r\n", encoding="cp1252")
    s = read_sheet(p)
    assert (s.columns, s.delimiter, s.encoding) == (["ref", "amount", "city"], ";", "cp1252")
    assert s.rows == [["B1", "1,5", "Besançon"], ["B2", "2,0", "Lyon"]]
    assert s.line_numbers == [2, 3]  # Excel hides the sep= line: the header is its row 1


def test_csv_bare_cr_inside_quotes_stays_in_its_cell_and_rows_stay_true(tmp_path):
    p = tmp_path / "mac.csv"
    p.write_bytes(b'ref,note\nB1,"first\rsecond"\nB2,"x\r\ny"\nB3,z\n')
    s = read_sheet(p)
    assert s.rows == [["B1", "first\rsecond"], ["B2", "x\r\ny"], ["B3", "z"]]
    assert s.line_numbers == [2, 3, 4]


def test_csv_utf16_without_bom_is_detected(tmp_path):
    for enc in ("utf-16-le", "utf-16-be"):
        p = write_csv(tmp_path, "ref,name\nB1,Zoë\n", encoding=enc, name=f"{enc}.csv")
        s = read_sheet(p)
        assert (s.columns, s.rows, s.encoding) == (["ref", "name"], [["B1", "Zoë"]], enc)


def test_a_binary_file_named_csv_is_refused_in_one_clean_line(tmp_path):
    p = tmp_path / "garbage.csv"
    p.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(InputError) as err:
        read_sheet(p)
    msg = assert_one_line(err)
    assert "holds NUL bytes" in msg and "\x00" not in msg and len(msg) < 300


def test_messages_built_from_file_content_are_escaped_and_capped(tmp_path):
    # a million-column-like header with control bytes in the names, and a 100 kB column name
    names = [f"c\x1b[31m{i}" for i in range(50_000)] + ["x" * 100_000]
    p = write_csv(tmp_path, ",".join(names) + "\n" + ",".join("v" for _ in names) + "\n")
    s = read_sheet(p)
    with pytest.raises(InputError) as err:
        s.column_index("Booking Ref")
    msg = assert_one_line(err)
    assert "\x1b" not in msg and "\\x1b" in msg and "… and 49,981 more" in msg and len(msg) < 1000
    dup = write_csv(tmp_path, "\x07ref\r\x00,\x07ref\r\x00\n1,2\n", name="dup.csv")
    with pytest.raises(InputError) as err:
        read_sheet(dup, encoding="latin-1")
    assert "holds NUL bytes" in assert_one_line(err)


def test_title_rows_above_the_header_are_found_from_the_expected_columns(tmp_path):
    cells = row_cells(0, ["Clinic export, November"]) + row_cells(1, ["printed 01/12/2026"])
    cells += row_cells(3, ["Ref", "Name", "City"]) + row_cells(4, ["B1", "Ann", "Paris"])
    p = write_xlsx(tmp_path, {"Data": cells})
    s = read_sheet(p, expect=["Ref", "Name"])
    assert s.columns == ["Ref", "Name", "City"] and s.rows == [["B1", "Ann", "Paris"]]
    assert s.line_numbers == [5] and s.header_line == 4
    assert len(s.notes) == 1 and "the header is row 4" in s.notes[0] and "source.header_row" in s.notes[0]
    plain = read_sheet(p)  # without expectations: the first non-blank row, as before
    assert plain.columns[0] == "Clinic export, November" and plain.notes == []
    assert read_sheet(p, header_row=4).columns == ["Ref", "Name", "City"]
    with pytest.raises(InputError, match=r"row 3, named as the header row .* is blank"):
        read_sheet(p, header_row=3)
    with pytest.raises(InputError, match="is past the end"):
        read_sheet(p, header_row=40)


def test_a_missing_sheet_with_none_of_the_columns_asks_about_the_mapping(tmp_path):
    p = write_xlsx(tmp_path, {"Bookings": row_cells(0, ["Booking Ref", "Guest Name"]) + row_cells(1, ["B1", "Ann"])})
    with pytest.raises(InputError) as err:
        read_sheet(p, sheet="Jobs", expect=["Reference", "Job Type", "Customer"])
    msg = assert_one_line(err)
    assert "in.xlsx: 0 of 3 columns found: is this the right mapping?" in msg and '"Jobs", which this file lacks' in msg
    with pytest.raises(InputError) as err:
        read_sheet(p, sheet="Jobs", expect=["Booking Ref", "Guest Name", "Email"])
    assert 'sheet "Bookings" has 2 of 3 columns the mapping needs: give --sheet "Bookings"' in assert_one_line(err)


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    (123, "000000", "000123"),
    (2134, "00000", "02134"),  # Excel's Zip Code
    (21340001, "00000-0000", "02134-0001"),  # Zip Code + 4
    (123456789, "000-00-0000", "123-45-6789"),  # Social Security Number
    (5551234, "[<=9999999]###-####;(###) ###-####", "555-1234"),  # Phone Number, both sections
    (3125551234, "[<=9999999]###-####;(###) ###-####", "(312) 555-1234"),
    (42, '"REF-"0000', "REF-0042"),
    (1234567, "000000", "1234567"),  # more digits than the format: all shown
    (12.5, "000000", "12.5"),  # not a whole number: as General
    (1500, "#,##0", "1500"),  # grouping: not a padding format, read as General
    (7, "0", "7"),
])
def test_xlsx_numbers_read_as_the_sheet_shows_them(tmp_path, value, fmt, shown):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["code"])
    ws.append([value])
    ws["A2"].number_format = fmt
    wb.save(tmp_path / "f.xlsx")
    assert read_sheet(tmp_path / "f.xlsx").rows == [[shown]]


def test_a_csv_title_line_with_a_comma_does_not_decide_the_delimiter(tmp_path):
    p = write_csv(tmp_path, "Export des réservations, novembre\r\n\r\nRef;Nom;Ville\r\nB1;José;Besançon\r\n",
                  encoding="cp1252")
    s = read_sheet(p, expect=["Ref", "Nom", "Ville"])
    assert ((s.columns, s.delimiter, s.rows, s.line_numbers)
            == (["Ref", "Nom", "Ville"], ";", [["B1", "José", "Besançon"]], [4]))
    assert "the header is row 3" in s.notes[0] and "the 2 rows above it" in s.notes[0]


def test_a_duration_header_cell_reads_as_its_time_not_an_error():
    # a duration under a day converts to a time of day; the header text is its isoformat, as for a time cell
    from flows.workbooks.sheet_rows import _header_text

    assert _header_text(dt.timedelta(hours=2)) == "02:00:00"
    assert _header_text(dt.timedelta(days=2)) == "48:00:00"
