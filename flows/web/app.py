"""The web page: sign in, choose a mapping, upload, match columns, review and fix, book, results, history.

Starlette with Jinja2 templates and htmx (vendored in static/, from npm ``htmx.org``). Every handler but
sign-in and static files needs a session; every POST needs the session's CSRF token (a form field ``csrf``
or the header ``X-CSRF-Token``, which htmx sends for every request from the page). Nothing the browser
sends is used as a path: mappings are chosen by name from the configured folder, uploads are found by a
random id and only by their owner.
"""
from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..errors import ImporterError
from ..redact import MASK
from ..workbooks.sheets import SUPPORTED_SUFFIXES
from . import engine_calls
from .auth import Session
from .config import ADVICE, WebConfig, list_mappings
from .matching import guess_columns
from .rows import (
    combined_workbook,
    counts_view,
    forget_secrets,
    rebuild,
    renamed,
    required_columns,
    row_view,
    secret_values,
)
from .signin import Gate, SignIn
from .store import Upload, Uploads, WebStore

__all__ = ["WebConfig", "create_app"]

HERE = Path(__file__).resolve().parent
#: file types the page accepts (the CLI's readers): anything else is refused before it is stored
SUFFIXES = tuple(SUPPORTED_SUFFIXES)

def create_app(config: WebConfig) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    store = WebStore(config.ledger_url)
    uploads = Uploads(config.uploads_dir, config.keep_seconds, records=store)

    # -- helpers ------------------------------------------------------------------------------------

    def page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        s: Session | None = request.state.session if hasattr(request.state, "session") else None
        ctx.update(request=request, user=s.user if s else None, csrf=s.csrf if s else "", advice=ADVICE, MASK=MASK)
        return templates.TemplateResponse(request, name, ctx, status_code=status_code)

    signin = SignIn(config, store, page)
    guarded = signin.guarded

    def upload_of(request: Request) -> Upload | None:
        return uploads.get(request.path_params["uid"], request.state.session.user)

    def not_found() -> HTMLResponse:
        return HTMLResponse("<p>No such upload (it may have expired): <a href='/'>start again</a>.</p>",
                            status_code=404)

    def upload_row(request: Request) -> tuple[Upload, int] | Response:
        """The upload and the row index a row's URL names, or the 404 to answer instead."""
        up = upload_of(request)
        if up is None:
            return not_found()
        try:
            index = int(request.path_params["index"])
            up.plan.rows[index]
        except (ValueError, IndexError):
            return HTMLResponse("No such row.", status_code=404)
        return up, index

    # -- choose a mapping and upload ----------------------------------------------------------------------

    async def home(request: Request) -> Response:
        return page(request, "home.html", mappings=list_mappings(config.mappings_dir), max_mb=config.max_bytes / 2**20)

    async def upload(request: Request) -> Response:
        user = request.state.session.user
        form = await request.form()
        mappings = list_mappings(config.mappings_dir)

        def refuse(message: str, code: int = 400) -> Response:
            store.record(user, "upload refused", message)
            return page(request, "home.html", status_code=code, mappings=mappings, error=message,
                        chosen=form.get("mapping"), max_mb=config.max_bytes / 2**20)

        choice = mappings.get(str(form.get("mapping", "")))
        if choice is None or choice.error:
            return refuse("Choose one of the mappings listed." if choice is None
                          else f"That mapping cannot be used: {choice.error}")
        f = form.get("file")
        if f is None or isinstance(f, str) or not f.filename:
            return refuse("Choose a CSV or Excel file to upload.")
        suffix = Path(f.filename).suffix.lower()
        if suffix not in SUFFIXES:
            return refuse(f"{Path(f.filename).name} is not a CSV or Excel file: upload one of {', '.join(SUFFIXES)}.")
        uid, path = uploads.new_path(suffix)
        size = 0
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            while chunk := await f.read(1 << 20):
                size += len(chunk)
                if size > config.max_bytes:
                    break
                out.write(chunk)
        if size > config.max_bytes:
            path.unlink(missing_ok=True)
            return refuse(f"{f.filename} is larger than {config.max_bytes / 2**20:g} MB: split it into smaller "
                          f"sheets.", 413)
        up = Upload(uid, user, Path(f.filename).name, path, choice.name)
        try:
            mapping = engine_calls.load(choice.path)
            sheet = engine_calls.read(path, mapping)
        except ImporterError as exc:  # the CLI's own one-line reason, naming the upload, not our private path
            path.unlink(missing_ok=True)
            return refuse(str(exc).replace(str(path), up.file_name).replace(path.name, up.file_name))
        if len(sheet.rows) > config.max_rows:
            path.unlink(missing_ok=True)
            return refuse(f"{up.file_name} has {len(sheet.rows)} rows; the page takes at most {config.max_rows}: "
                          f"split it, or use the command line (booking-import run).")
        up.columns = list(sheet.columns)
        up.sheet = sheet
        uploads.add(up)
        store.record(user, "uploaded",
                     f"{up.file_name} ({size} bytes, {len(sheet.rows)} rows) for {choice.name}; upload {uid}")
        return RedirectResponse(f"/u/{uid}/match", status_code=303)

    # -- match columns ----------------------------------------------------------------------------------

    def mapping_of(up: Upload) -> tuple[Any, Path]:
        choice = list_mappings(config.mappings_dir).get(up.mapping_name)
        if choice is None or choice.error:
            raise ImporterError(f"the mapping {up.mapping_name} is gone or broken: start again")
        return engine_calls.load(choice.path), choice.path

    async def match(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        mapping, mpath = mapping_of(up)
        needed = mapping.columns()
        required = required_columns(mapping)
        if request.method == "GET":
            guesses = guess_columns(needed, up.columns, store.remembered(up.user, up.mapping_name))
            return page(request, "match.html", up=up, guesses=guesses, columns=up.columns, required=required,
                        mapping=mapping)
        form = await request.form()
        chosen: dict[str, str | None] = {}
        problems = []
        for i, n in enumerate(needed):
            v = str(form.get(f"col{i}", ""))
            if v and v not in up.columns:
                problems.append(f"{n}: pick one of the sheet's columns")
            chosen[n] = v or None
            if not v and n in required:
                problems.append(f"{n} is needed by the mapping: pick the sheet column that holds it")
        used = [c for c in chosen.values() if c]
        for c in {c for c in used if used.count(c) > 1}:
            problems.append(f"the sheet column {c!r} is picked twice: each column fills one field")
        if problems:
            guesses = [dataclasses.replace(g, column=chosen[g.needed]) for g in
                       guess_columns(needed, up.columns, store.remembered(up.user, up.mapping_name))]
            return page(request, "match.html", status_code=400, up=up, guesses=guesses, columns=up.columns,
                        required=required, mapping=mapping, errors=problems)
        up.match = chosen
        store.remember(up.user, up.mapping_name, {n: c for n, c in chosen.items() if c})
        store.record(up.user, "matched columns", json.dumps({"upload": up.id, "match": chosen}))
        up.sheet = renamed(engine_calls.read(up.path, mapping), chosen)
        try:
            up.plan = engine_calls.validate(mapping, mpath, up.sheet)
        except ImporterError as exc:
            return page(request, "match.html", status_code=400, up=up, required=required, mapping=mapping,
                        guesses=guess_columns(needed, up.columns, chosen), columns=up.columns, errors=[str(exc)])
        up.state = "review"
        uploads.save(up)
        return RedirectResponse(f"/u/{up.id}/review", status_code=303)

    for problem in uploads.load(lambda up: rebuild(up, *mapping_of(up))):  # uploads a process before this one kept
        store.record("-", "upload not restored", problem)

    # -- review: grid, fix in place, exclude, payload ------------------------------------------------------

    def revalidate(up: Upload) -> None:
        mapping, mpath = mapping_of(up)
        up.plan = engine_calls.validate(mapping, mpath, up.sheet)

    def grid(up: Upload, show: str, page_no: int, statuses: set[str] | None = None) -> dict[str, Any]:
        plan = up.plan
        needed = plan.mapping.columns()
        rows = plan.rows
        if statuses is not None:
            rows = [r for r in rows if r.index not in up.excluded and r.index in up.outcomes
                    and up.outcomes[r.index].status.value in statuses]
        elif show == "fix":
            rows = [r for r in rows if not r.is_valid and r.index not in up.excluded]
        elif show == "excluded":
            rows = [r for r in rows if r.index in up.excluded]
        pages = max(1, -(-len(rows) // config.page_size))
        page_no = min(max(1, page_no), pages)
        shown = rows[(page_no - 1) * config.page_size: page_no * config.page_size]
        return dict(needed=needed, rows=[row_view(up, r) for r in shown], page_no=page_no, pages=pages,
                    matching=len(rows), show=show)

    async def review(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        if up.plan is None:
            return RedirectResponse(f"/u/{up.id}/match", status_code=303)
        show = request.query_params.get("show", "fix" if counts_view(up)["fix"] else "all")
        try:
            page_no = int(request.query_params.get("page", "1"))
        except ValueError:
            page_no = 1
        return page(request, "review.html", up=up, counts=counts_view(up), error=up.error, **grid(up, show, page_no))

    async def edit_row(request: Request) -> Response:
        found = upload_row(request)
        if isinstance(found, Response):
            return found
        up, index = found
        r = up.plan.rows[index]
        form = await request.form()
        needed = up.plan.mapping.columns()
        sensitive = up.plan.mapping.sensitive_columns()
        changed = []
        with up.lock:
            if up.state == "booking":
                return HTMLResponse("The import is running: wait for it to finish before fixing rows.", status_code=409)
            cells = up.sheet.rows[r.index]
            for j, c in enumerate(needed):
                key = f"c{j}"
                if key not in form:
                    continue
                v = str(form[key])
                if c in sensitive and v == "" and up.state == "review":
                    continue  # a password left blank keeps the value typed before (never shown back)
                pos = up.sheet.columns.index(c)
                new = v if v.strip() else None
                if (cells[pos] if cells[pos] is None else str(cells[pos])) != new:
                    cells[pos] = new
                    changed.append(c)
                    if c not in sensitive:  # kept for a restart; a password never leaves memory
                        up.cells.setdefault(r.index, {})[c] = new
            revalidate(up)
            up.edited.add(r.index)
            uploads.save(up)
        store.record(up.user, "fixed row", f"upload {up.id} row {r.line}: {', '.join(changed) or 'no change'}")
        return row_response(request, up, index)

    def row_response(request: Request, up: Upload, index: int) -> Response:
        view = row_view(up, up.plan.rows[index])
        r = page(request, "_row.html", up=up, row=view, needed=up.plan.mapping.columns(), counts=counts_view(up),
                 oob=True, results=bool(up.outcomes))
        return r

    async def exclude_row(request: Request) -> Response:
        found = upload_row(request)
        if isinstance(found, Response):
            return found
        up, index = found
        r = up.plan.rows[index]
        with up.lock:
            if up.state == "booking":
                return HTMLResponse("The import is running: wait for it to finish.", status_code=409)
            if index in up.excluded:
                up.excluded.discard(index)
            else:
                up.excluded.add(index)
            uploads.save(up)
        store.record(up.user, "excluded row" if index in up.excluded else "included row",
                     f"upload {up.id} row {r.line}")
        return row_response(request, up, index)

    async def payload(request: Request) -> Response:
        found = upload_row(request)
        if isinstance(found, Response):
            return found
        up, index = found
        r = up.plan.rows[index]
        if not r.is_valid:
            text = "Not valid yet: " + "; ".join(map(str, r.problems))
        else:
            text = json.dumps(up.plan.masked_payload(r.payload, secret_values(up.plan.mapping)), indent=2,
                              ensure_ascii=False, default=str)
        return HTMLResponse(f"<pre class='payload'>{html.escape(text)}</pre>")

    # -- book, progress, results ------------------------------------------------------------------------

    def start(up: Upload, indexes: list[int], label: str) -> str | None:
        """Book these rows (valid ones are sent, the ledger skips what is booked already)."""
        mapping, mpath = mapping_of(up)
        sub = dataclasses.replace(up.sheet, rows=[up.sheet.rows[i] for i in indexes],
                                  line_numbers=[up.sheet.line_numbers[i] for i in indexes], notes=[])
        try:
            plan = engine_calls.validate(mapping, mpath, sub)
        except ImporterError as exc:
            return str(exc)
        out = config.uploads_dir / f"{secrets.token_hex(16)}.results.xlsx"
        up.state, up.error, up.started, up.sent_rows = "booking", None, time.monotonic(), indexes
        store.save_import(up)
        uploads.save(up)

        def on_run(run: Any) -> None:
            with up.lock:
                up.run_ids.append(run.run_id)
            store.save_import(up)

        def on_done(b: engine_calls.Booking) -> None:
            with up.lock:  # the state changes last, once the import and its audit line are stored
                run = b.run
                if run is not None:
                    for k, i in enumerate(indexes):
                        if run.outcomes[k] is not None:
                            up.outcomes[i] = run.outcomes[k]
                if b.error:
                    up.error = b.error
                if b.result is not None:
                    up.results_path = (combined_workbook(up, out, run) if label == "resend"
                                       else Path(b.result["results"]))
                if b.flow_run_url or b.flow_run_id:
                    up.flow_run_url = b.flow_run_url or engine_calls.flow_run_url(str(b.flow_run_id))
                forget_secrets(up)
                # refused before anything was sent (a missing secret, a provider that refused the login): back
                # to the review, which shows why; the rows can be booked again once it is fixed
                final = "review" if b.error and not up.outcomes else "done"
                store.save_import(dataclasses.replace(up, state=final, lock=threading.Lock()))
                store.record(up.user, f"{label} finished", f"upload {up.id}: {json.dumps(up.final_counts())}"
                             + (f"; error: {b.error}" if b.error else ""))
                up.state = final
                uploads.save(up)

        use_prefect = engine_calls.prefect_configured() if config.prefect is None else config.prefect
        up.booked_via = "prefect" if use_prefect else "direct"
        up.booking = engine_calls.start_booking(plan, ledger_url=config.ledger_url, out=out, on_run=on_run,
                                                on_done=on_done, transport=config.transport,
                                                wait_callbacks=config.wait_callbacks, use_prefect=use_prefect,
                                                name=f"{up.mapping_name}: {up.file_name} (web, {up.user})")
        store.record(up.user, label, f"upload {up.id}: {len(plan.valid)} valid rows of {len(indexes)}")
        return None

    async def book(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        if up.state != "review":
            return RedirectResponse(f"/u/{up.id}/{'match' if up.plan is None else 'progress'}", status_code=303)
        indexes = [r.index for r in up.plan.rows if r.index not in up.excluded]
        error = start(up, indexes, "booked")
        if error:
            return page(request, "review.html", status_code=400, up=up, counts=counts_view(up), error=error,
                        **grid(up, "all", 1))
        return RedirectResponse(f"/u/{up.id}/progress", status_code=303)

    async def resend(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        if up.state != "done":
            return RedirectResponse(f"/u/{up.id}/progress", status_code=303)
        again = [i for i, o in sorted(up.outcomes.items())
                 if o.status.value in ("invalid", "rejected", "failed", "unknown") and i not in up.excluded]
        if not again:
            return RedirectResponse(f"/u/{up.id}/results", status_code=303)
        error = start(up, again, "resend")
        if error:
            up.error = error
            return RedirectResponse(f"/u/{up.id}/results", status_code=303)
        return RedirectResponse(f"/u/{up.id}/progress", status_code=303)

    def progress_view(up: Upload) -> dict[str, Any]:
        run_id = up.run_ids[-1] if up.run_ids and up.state == "booking" else None
        live = store.run_counts(run_id) if run_id else {}
        to_send = sum(1 for i in up.sent_rows if up.plan.rows[i].is_valid)
        settled = sum(n for s, n in live.items() if s != "sending")
        eta = None
        if up.started and settled and to_send > settled:
            eta = round((time.monotonic() - up.started) / settled * (to_send - settled))
        link = up.booking.flow_run_url if up.booking is not None else None
        return dict(live=live, to_send=to_send, settled=settled, eta=eta, run_id=run_id,
                    flow_run_url=link or up.flow_run_url)

    async def progress(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        if up.state != "booking":  # finished, or nothing booked yet (or refused before sending: review says why)
            target = f"/u/{up.id}/" + ("results" if up.state in ("done", "failed") else
                                       "match" if up.plan is None else "review")
            if request.headers.get("hx-request"):
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        name = "_progress.html" if request.headers.get("hx-request") else "progress.html"
        return page(request, name, up=up, **progress_view(up))

    async def results(request: Request) -> Response:
        up = upload_of(request)
        if up is None:
            return not_found()
        if up.state == "booking":
            return RedirectResponse(f"/u/{up.id}/progress", status_code=303)
        if not up.outcomes and up.state != "failed":
            return RedirectResponse(f"/u/{up.id}/review", status_code=303)
        status = request.query_params.get("status", "")
        wanted = {status} if status in ADVICE else set(ADVICE)
        try:
            page_no = int(request.query_params.get("page", "1"))
        except ValueError:
            page_no = 1
        resendable = sum(1 for i, o in up.outcomes.items()
                         if o.status.value in ("invalid", "rejected", "failed", "unknown") and i not in up.excluded)
        return page(request, "results.html", up=up, counts=up.final_counts(), status=status, resendable=resendable,
                    sensitive=sorted(up.plan.mapping.sensitive_columns()), **grid(up, "results", page_no, wanted))

    async def download(request: Request) -> Response:
        up = upload_of(request)
        if up is None or up.results_path is None or not up.results_path.is_file():
            return not_found()
        store.record(up.user, "downloaded results", f"upload {up.id}")
        return FileResponse(up.results_path, filename=f"{Path(up.file_name).stem}.results.xlsx",
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    async def history(request: Request) -> Response:
        user = request.state.session.user
        who = "mine" if request.query_params.get("who") == "mine" else "everyone"
        imports = [i for i in store.imports() if who == "everyone" or i["user"] == user]
        mine = {i["id"] for i in imports if i["user"] == user and uploads.get(i["id"], user) is not None}
        web_runs = {r for i in imports for r in i["run_ids"]}
        others = [dict(r, counts=json.loads(r["counts"]) if r["counts"] else {}) for r in store.runs()
                  if r["run_id"] not in web_runs]
        return page(request, "history.html", imports=imports, mine=mine, others=others, who=who)

    routes = [
        Route("/login", signin.login, methods=["GET", "POST"]),
        Route("/logout", guarded(signin.logout), methods=["POST"]),
        Route("/", home),
        Route("/upload", guarded(upload), methods=["POST"]),
        Route("/u/{uid}/match", guarded(match), methods=["GET", "POST"]),
        Route("/u/{uid}/review", review),
        Route("/u/{uid}/row/{index:int}", guarded(edit_row), methods=["POST"]),
        Route("/u/{uid}/row/{index:int}/exclude", guarded(exclude_row), methods=["POST"]),
        Route("/u/{uid}/row/{index:int}/payload", payload),
        Route("/u/{uid}/book", guarded(book), methods=["POST"]),
        Route("/u/{uid}/resend", guarded(resend), methods=["POST"]),
        Route("/u/{uid}/progress", progress),
        Route("/u/{uid}/results", results),
        Route("/u/{uid}/download", download),
        Route("/history", history),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def on_error(request: Request, exc: Exception) -> Response:
        return HTMLResponse(f"<p>{html.escape(str(exc))}</p><p><a href='/'>Start again</a></p>", status_code=400)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        for booking in uploads.bookings():  # imports in progress finish (and record) before the store closes
            booking.thread.join()
        store.close()

    app = Starlette(routes=routes, middleware=[Middleware(Gate, signin=signin)],
                    exception_handlers={ImporterError: on_error},
                    lifespan=lifespan)
    app.state.store, app.state.uploads, app.state.config = store, uploads, config
    return app
