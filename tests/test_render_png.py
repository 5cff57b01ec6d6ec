"""scripts/render_png.py: a results workbook rendered to PNG with LibreOffice headless, as a person sees it.

Marked ``libreoffice`` (a few seconds: LibreOffice starts once per sheet); skipped where LibreOffice or
poppler's pdftoppm is not installed (``apt-get install -y libreoffice-calc-nogui poppler-utils``)."""
from __future__ import annotations

import importlib.util
import shutil
import struct
import zlib

import pytest

from flows.outcomes import Outcome, Status
from flows.workbooks.results import write_results

from .conftest import ROOT

pytestmark = [
    pytest.mark.libreoffice,
    pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")) or not shutil.which("pdftoppm"),
                       reason="LibreOffice or pdftoppm not installed"),
]


def _script():
    spec = importlib.util.spec_from_file_location("render_png", ROOT / "scripts" / "render_png.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pixels(png: bytes) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the set of RGB colours of an 8-bit RGB PNG (what pdftoppm writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert (depth, colour) == (8, 2)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, stride, colours = zlib.decompress(idat), width * 3, set()
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(zip(line[0::3], line[1::3], line[2::3], strict=True))
        prev = line
    return width, height, colours


def test_results_workbook_renders_with_its_colours(tmp_path, capsys):
    rows = [["B1", "ann@example.com"], ["B2", "not-an-email"], ["B3", "cy@example.com"]]
    outcomes = [Outcome(Status.CREATED, provider_id="P1"),
                Outcome(Status.INVALID, "Email: not an e-mail address", column_messages={"Email": ["not an e-mail"]}),
                Outcome(Status.UNKNOWN, "timeout after the request was sent")]
    book = write_results(tmp_path / "r.xlsx", columns=["Ref", "Email"], rows=rows, line_numbers=[2, 3, 4],
                         outcomes=outcomes, summary={"provider": "jicoo"})
    code = _script().main([str(book), "--out-dir", str(tmp_path / "png"), "--dpi", "40"])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "png" / "r-Results.png"), str(tmp_path / "png" / "r-Summary.png")]
    width, height, colours = _pixels((tmp_path / "png" / "r-Results.png").read_bytes())
    assert width > 200 and height > 20
    assert (0xFF, 0xC7, 0xCE) in colours and (0xFF, 0xD9, 0x66) in colours  # the pink and amber rows
    assert (0xFF, 0x8F, 0x8F) in colours  # the marked cell
    assert book.read_bytes()[:2] == b"PK"  # the workbook itself is untouched


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("a\n1\n")
    assert _script().main([str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
