"""Render a workbook's sheets to PNG with LibreOffice (headless), as a person sees them on opening.

    .venv/bin/python scripts/render_png.py out/demo/jicoo-results-run1.xlsx --out-dir docs/img

writes ``<out-dir>/<workbook stem>-<sheet>.png`` per sheet (``--sheets Results,Summary`` to choose)
and prints their paths. Each sheet is rendered on one page sized to its content (LibreOffice's
``SinglePageSheets`` PDF export), then rasterised with poppler's ``pdftoppm``. Large sheets are cut
to their first ``--rows`` rows (default 25) and ``--columns`` columns (default 12): a picture for the
README or a review, not a print-out. The workbook itself is never changed (a trimmed copy is rendered).

Needs LibreOffice Calc and poppler-utils: ``apt-get install -y libreoffice-calc-nogui poppler-utils``
(or ``libreoffice-calc``). LibreOffice runs with a throwaway profile, so it does not clash with a
LibreOffice already open. Exit codes: 0 written, 2 bad input or tools missing, 1 a tool failed.

Assumption: what a reader sees first is the top-left of each sheet at 100 % zoom; LibreOffice lays
out row heights for wrapped text as it does on opening, so long ``_message`` cells show whole.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl

INSTALL = "apt-get install -y libreoffice-calc-nogui poppler-utils"
_PDF_FILTER = "pdf:calc_pdf_Export:" + json.dumps({"SinglePageSheets": {"type": "boolean", "value": "true"}})


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(f"error: {names[0]} not found; install it with: {INSTALL}")


def trimmed_copy(src: Path, sheet: str, rows: int, columns: int, folder: Path) -> Path:
    """A copy of ``src`` holding only ``sheet``, cut to ``rows`` x ``columns`` (formats, fills, notes kept)."""
    wb = openpyxl.load_workbook(src)
    for other in list(wb.sheetnames):
        if other != sheet:
            del wb[other]
    ws = wb[sheet]
    ws.sheet_state = "visible"
    if ws.max_row > rows:
        ws.delete_rows(rows + 1, ws.max_row - rows)
    if ws.max_column > columns:
        ws.delete_cols(columns + 1, ws.max_column - columns)
    ws.auto_filter.ref = None  # filter buttons print as noise
    ws.page_setup.orientation = "landscape"
    out = folder / f"{src.stem}-{sheet}.xlsx".replace(" ", "_")
    wb.save(out)
    return out


def render(src: Path, out_dir: Path, *, sheets: list[str] | None = None, rows: int = 25, columns: int = 12,
           dpi: int = 80) -> list[Path]:
    soffice = _tool("soffice", "libreoffice")
    pdftoppm = _tool("pdftoppm")
    names = openpyxl.load_workbook(src, read_only=True).sheetnames
    wanted = sheets or names
    missing = [s for s in wanted if s not in names]
    if missing:
        raise SystemExit(f"error: {src} has no sheet {', '.join(missing)}; it has {', '.join(names)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="render-png-") as tmp:
        folder = Path(tmp)
        profile = (folder / "profile").as_uri()
        for sheet in wanted:
            copy = trimmed_copy(src, sheet, rows, columns, folder)
            done = subprocess.run(
                [soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore", "--convert-to", _PDF_FILTER,
                 "--outdir", str(folder), str(copy)],
                capture_output=True, text=True, timeout=180,
            )
            pdf = copy.with_suffix(".pdf")
            if done.returncode != 0 or not pdf.is_file():
                print(f"error: LibreOffice could not render {src} ({sheet}): "
                      f"{done.stderr.strip() or done.stdout.strip()}", file=sys.stderr)
                raise SystemExit(1)
            target = out_dir / f"{src.stem}-{sheet}".replace(" ", "_")
            subprocess.run([pdftoppm, "-png", "-r", str(dpi), "-singlefile", str(pdf), str(target)], check=True,
                           timeout=120)
            written.append(target.with_suffix(".png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="render_png.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("workbook", type=Path, help="an .xlsx workbook, e.g. a results workbook")
    parser.add_argument("--out-dir", type=Path, default=Path("out/png"), help="where the PNGs go (default out/png)")
    parser.add_argument("--sheets", help="comma-separated sheet names (default: every sheet)")
    parser.add_argument("--rows", type=int, default=25, help="rows rendered per sheet (default 25)")
    parser.add_argument("--columns", type=int, default=12, help="columns rendered per sheet (default 12)")
    parser.add_argument("--dpi", type=int, default=80, help="resolution (default 80)")
    args = parser.parse_args(argv)
    if not args.workbook.is_file() or args.workbook.suffix.lower() not in (".xlsx", ".xlsm"):
        print(f"error: {args.workbook} is not an .xlsx workbook; give a results workbook", file=sys.stderr)
        return 2
    if min(args.rows, args.columns, args.dpi) < 1:
        print("error: --rows, --columns and --dpi must be 1 or more", file=sys.stderr)
        return 2
    sheets = [s.strip() for s in args.sheets.split(",")] if args.sheets else None
    try:
        paths = render(args.workbook, args.out_dir, sheets=sheets, rows=args.rows, columns=args.columns, dpi=args.dpi)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
