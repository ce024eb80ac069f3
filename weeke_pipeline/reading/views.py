"""HTTP layer: pages, JSON endpoints and de-identified images, each checked against the role.

Readers see only reading code, postmenstrual age, day of life and sequences, and only their own
read. A case a user may not see answers 404 (its existence is not revealed).
"""

from __future__ import annotations

import json
from functools import wraps
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST, require_safe

from weeke_pipeline.reading import audit, hanging, services, study, throttle, timing
from weeke_pipeline.reading.models import (
    Adjudication,
    Case,
    DatabaseLock,
    Read,
    ReaderAssignment,
    ReaderPreference,
)
from weeke_pipeline.reading.sequences import SEQUENCES
from weeke_pipeline.reading.throttle import client_address


def roles(user: Any) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_weeke_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._weeke_roles = cached
    return cached


def role_required(*allowed: str):  # type: ignore[no-untyped-def]
    def deco(view):  # type: ignore[no-untyped-def]
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not roles(request.user) & set(allowed):
                if request.path.startswith("/api/"):
                    return JsonResponse({"error": "not allowed for your role"}, status=403)
                return render(request, "reading/message.html",
                              {"title": "Not allowed", "text": "Your role cannot open this page."},
                              status=403)
            return view(request, *args, **kwargs)
        return wrapped
    return deco


# ---------------------------------------------------------------- login with throttling

class ThrottleMixin:
    """Refuses a login once the (normalised) user name or the client address has too many
    recent failures (:mod:`weeke_pipeline.reading.throttle`); used by the app's and the admin's
    login forms."""

    def clean(self) -> dict[str, Any]:
        username = throttle.normalise_username(self.data.get("username"))
        try:
            throttle.check(username, client_address(self.request))
        except throttle.Throttled as exc:
            audit.record("anonymous", "login.throttled", object_type="user",
                         object_id=username[:64])
            raise forms.ValidationError(str(exc), code="throttled") from exc
        return super().clean()  # type: ignore[misc]


class ThrottledAuthenticationForm(ThrottleMixin, AuthenticationForm):
    """The app's login form."""


class ThrottledAdminAuthenticationForm(ThrottleMixin, AdminAuthenticationForm):
    """The admin site's login form (``admin.site.login_form``): the same limits."""


class LoginView(auth_views.LoginView):
    template_name = "reading/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True


@require_safe
@login_required
def home(request: HttpRequest) -> HttpResponse:
    r = roles(request.user)
    if "reader" in r:
        return redirect("worklist")
    if "adjudicator" in r:
        return redirect("adjudication_list")
    if "coordinator" in r:
        return redirect("coordinator")
    return render(request, "reading/message.html", {
        "title": "Analyst", "text": "Score, metric and agreement tables come from the "
        "`weeke export` and `weeke agreement` commands; `weeke unblind` after database lock."})


# ---------------------------------------------------------------- reader

def _assigned_case(request: HttpRequest, code: str) -> Case:
    assignment = ReaderAssignment.objects.select_related("case").filter(
        case__code=code, reader=request.user).first()
    if assignment is None:
        raise Http404("no such case on your worklist")
    return assignment.case


def _own_read(request: HttpRequest, code: str) -> Read:
    """The reader's read of a case on their worklist (one query once it exists; created on
    first opening). 404 when the case is not on the worklist."""
    read = Read.objects.select_related("case").filter(
        case__code=code, reader=request.user, case__assignments__reader=request.user).first()
    if read is None:
        read = services.get_or_create_read(_assigned_case(request, code), request.user)
    return read


def worklist_rows(user: Any) -> list[dict[str, Any]]:
    """The reader's cases in their worklist order with the state of their own read."""
    rows = []
    assignments = ReaderAssignment.objects.filter(reader=user).select_related("case")
    reads = {r.case_id: r for r in user.reads.all()}
    shown = study.reader_sequences()
    for a in assignments.order_by("position"):
        read = reads.get(a.case_id)
        rows.append({"case": a.case, "status": read.status if read else "not started",
                     "updated": read.updated_at if read else None,
                     "sequences": [s for s in a.case.sequences if s in shown]})
    return rows


#: worklist filters: ?show=<key>
WORKLIST_FILTERS = {"all": None, "todo": "not started", "draft": "draft", "signed": "signed"}


@role_required("reader")
@require_safe
def worklist(request: HttpRequest) -> HttpResponse:
    rows = worklist_rows(request.user)
    progress = {"signed": 0, "draft": 0, "todo": 0}
    for row in rows:
        progress["todo" if row["status"] == "not started" else row["status"]] += 1
    show = request.GET.get("show", "all")
    wanted = WORKLIST_FILTERS.get(show)
    shown_rows = [r for r in rows if wanted is None or r["status"] == wanted]
    return render(request, "reading/worklist.html", {
        "rows": shown_rows, "locked": DatabaseLock.is_locked(), "progress": progress,
        "total": len(rows), "show": show if show in WORKLIST_FILTERS else "all",
        "filters": list(WORKLIST_FILTERS), "next_code": _next_case(rows)})


def _next_case(rows: list[dict[str, Any]], after: str | None = None) -> str | None:
    """Where the reader goes on: the draft they touched last (resume), else the first case
    not started after ``after`` in worklist order (wrapping), else None (all signed)."""
    drafts = [r for r in rows if r["status"] == "draft" and r["case"].code != after]
    if drafts:
        return max(drafts, key=lambda r: r["updated"])["case"].code
    codes = [r["case"].code for r in rows]
    start = codes.index(after) + 1 if after in codes else 0
    for row in rows[start:] + rows[:start]:
        if row["status"] == "not started" and row["case"].code != after:
            return row["case"].code
    return None


@role_required("reader", "adjudicator")
@require_safe
def next_case(request: HttpRequest) -> HttpResponse:
    """Go to the next case to read (``?after=CODE``: the case just signed); the worklist with
    a message when nothing is left."""
    after = request.GET.get("after")
    if "reader" in roles(request.user):
        code = _next_case(worklist_rows(request.user), after)
        if code:
            return redirect("read_page", code)
        messages.success(request, "All cases on your worklist are signed.")
        return redirect("worklist")
    rows = [r for r in _adjudication_cases(request.user) if r["status"] != "signed"
            and not r["other"] and r["case"].code != after]
    if rows:
        return redirect("adjudication_page", rows[0]["case"].code)
    messages.success(request, "No case is waiting for adjudication.")
    return redirect("adjudication_list")


def form_spec(form: Any) -> dict[str, Any]:
    """The form definition as the page's JavaScript renders it (from the score-engine Form)."""
    return {
        "id": form.id, "version": form.version, "title": form.title,
        "total_max": form.total_max,
        "subscores": [{"id": s.id, "label": s.label, "max": s.max} for s in form.subscores],
        "items": [{
            "id": i.id, "subscore": i.subscore, "label": i.label, "lateralised": i.lateralised,
            "extents": [{"value": e.value, "label": e.label} for e in i.extents],
            "max_score": i.max_score, "sequences": list(i.sequences), "help": i.help,
        } for i in form.items],
    }


def shown_sequences(case: Case) -> list[str]:
    """The case's sequences readers and adjudicators are shown (study setting)."""
    allowed = study.reader_sequences()
    return [s for s in case.sequences if s in allowed and s in case.images]


def _viewer_config(request: HttpRequest, case: Case, sequences: list[str]) -> dict[str, Any]:
    """The hanging protocol, the reader's layout and keys, and the images in viewer order."""
    protocol = hanging.load_protocol(study.hanging_protocol())
    pref = ReaderPreference.objects.filter(user=request.user).first()
    order = protocol["sequence_order"]
    ordered = sorted(sequences, key=lambda s: order.index(s) if s in order else len(order))
    layouts = [lay["id"] for lay in protocol["layouts"]]
    return {
        "protocol": protocol,
        "layout": pref.layout if pref and pref.layout in layouts else protocol["default_layout"],
        "keys": hanging.keymap(pref.keys if pref else None),
        "key_help": hanging.KEY_HELP,
        "images": [{"sequence": s, "url": f"/case/{case.code}/image/{s}.nii.gz",
                    "colormap": protocol.get("colormaps", {}).get(s, "gray")}
                   for s in ordered],
    }


def _page_config(request: HttpRequest, case: Case, obj: Any, api: str,
                 sequences: list[str]) -> dict[str, Any]:
    form = services.form_of(obj)
    return {
        "form": form_spec(form),
        "items": obj.items.get("items", {}),
        "version": obj.version, "status": obj.status,
        "signed_at": obj.signed_at.isoformat() if obj.signed_at else None,
        "api": api, "score_url": f"/api/score/{form.id}/{form.version}",
        "locked": DatabaseLock.is_locked(),
        "next_url": f"/next/?after={case.code}",
        "prefs_url": "/api/preferences",
        **_viewer_config(request, case, sequences),
    }


@role_required("reader")
@require_safe
def read_page(request: HttpRequest, code: str) -> HttpResponse:
    try:
        read = _own_read(request, code)
    except services.ReadingError as exc:
        return render(request, "reading/message.html", {"title": "Cannot open", "text": str(exc)},
                      status=exc.status)
    case = read.case
    timing.mark_opened(read)
    shown = shown_sequences(case)
    config = _page_config(request, case, read, f"/api/case/{case.code}/read", shown)
    return render(request, "reading/form.html", {"case": case, "config": config,
                                                 "mode": "read", "sequences": shown})


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise services.ReadingError("the request body is not valid JSON") from exc
    except RecursionError as exc:  # nested thousands deep: refused, not a server error
        raise services.ReadingError("the request body is not valid JSON (nested too "
                                    "deeply)") from exc
    if not isinstance(body, dict):
        raise services.ReadingError("expected a JSON object")
    return body


def _version(body: dict[str, Any]) -> int:
    v = body.get("version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise services.ReadingError("missing version of the edited draft")
    return v


def _api(fn):  # type: ignore[no-untyped-def]
    """Turn ReadingError into a JSON error with its status."""
    @wraps(fn)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return JsonResponse(fn(request, *args, **kwargs))
        except services.ReadingError as exc:
            return JsonResponse({"error": str(exc), "item": exc.item}, status=exc.status)
        except Http404 as exc:  # an API answers JSON, also when the case is not found
            return JsonResponse({"error": str(exc) or "not found", "item": None}, status=404)
    return wrapped


#: the actions of the read and consensus APIs ("" = get or autosave the draft)
ACTIONS = ("", "sign", "revise")


def _dispatch(request: HttpRequest, obj: Any, action: str) -> dict[str, Any]:
    if request.method == "GET" and action == "":
        form = services.form_of(obj)
        return services.score_response(obj, form, obj.items.get("items", {})) | {
            "items": obj.items.get("items", {})}
    if request.method != "POST":
        raise services.ReadingError("use POST")
    body = _json_body(request)
    increment = body.pop("timing", None)
    since = obj.updated_at
    if action == "":
        out = services.save_draft(obj, request.user, body, _version(body))
    elif action == "sign":
        out = services.sign(obj, request.user, body.get("password", ""), _version(body),
                            address=client_address(request))
    elif action == "revise":
        return services.revise(obj, request.user, body, body.pop("reason", ""),
                               body.pop("password", ""), _version(body),
                               address=client_address(request))
    else:
        raise Http404
    # the reading time measured by the page since its last acknowledged save (after the
    # action succeeded: a refused save or signature never counts twice)
    try:
        item_ids = {i.id for i in services.form_of(obj).items}
        timing.add(obj, increment, item_ids, since=since)
    except timing.TimingError as exc:
        out["timing_error"] = str(exc)
    if action == "sign":
        timing.record_signed(obj, request.user)
    return out


@role_required("reader")
@_api
def read_api(request: HttpRequest, code: str, action: str = "") -> dict[str, Any]:
    if action not in ACTIONS:
        raise Http404("no such action")
    return _dispatch(request, _own_read(request, code), action)


@role_required("reader", "adjudicator")
@require_POST
@_api
def score_api(request: HttpRequest, form_id: str, version: str) -> dict[str, Any]:
    """Live subscores and total for the items on screen (nothing is stored)."""
    from weeke_pipeline.scoring import FormError

    try:
        form = services.get_form(form_id, version)
    except FormError as exc:
        raise services.ReadingError(str(exc)) from exc
    items = services.clean_items(form, _json_body(request))
    return services.score_response(None, form, items)


# ---------------------------------------------------------------- images

def _may_view_images(user: Any, case: Case) -> bool:
    r = roles(user)
    if "coordinator" in r:
        return True
    if "reader" in r and ReaderAssignment.objects.filter(case=case, reader=user).exists():
        return True
    return "adjudicator" in r and (Adjudication.objects.filter(case=case).exists()
                                   or services.needs_adjudication(case))


def image_path(case: Case, sequence: str) -> Path | None:
    """The case's image file, only if it resolves (symbolic links followed) to a file inside
    ``<data>/images/``; a path edited to lead anywhere else (the secret key, ``../..``, an
    absolute path, a link) gives None."""
    root = (Path(settings.WEEKE_DATA_DIR) / "images").resolve()
    rel = case.images.get(sequence)
    if not isinstance(rel, str) or not rel:
        return None
    path = (Path(settings.WEEKE_DATA_DIR) / rel).resolve()
    if not path.is_relative_to(root) or path == root or not path.is_file():
        return None
    return path


@login_required
@require_GET
def image(request: HttpRequest, code: str, sequence: str) -> HttpResponse:
    """A de-identified image. Readers and adjudicators get only the sequences the study
    setting shows them (anything else is 404, as if absent); the coordinator gets any."""
    case = Case.objects.filter(code=code).first()
    if case is None or not _may_view_images(request.user, case) or sequence not in case.images:
        raise Http404("no such image")
    if "coordinator" not in roles(request.user) and sequence not in study.reader_sequences():
        raise Http404("no such image")
    path = image_path(case, sequence)
    if path is None:
        raise Http404("no such image")
    # FileResponse closes the file when the response is done
    response = FileResponse(open(path, "rb"),  # noqa: SIM115
                            content_type="application/octet-stream")
    response["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- adjudicator

def _adjudication_cases(user: Any) -> list[dict[str, Any]]:
    rows = []
    for case in Case.objects.order_by("code"):
        adj = Adjudication.objects.filter(case=case).first()
        if adj is not None or services.needs_adjudication(case):
            rows.append({"case": case, "status": "to do" if adj is None else adj.status,
                         "other": adj is not None and adj.adjudicator_id != user.pk})
    return rows


@role_required("adjudicator")
@require_safe
def adjudication_list(request: HttpRequest) -> HttpResponse:
    return render(request, "reading/adjudication_list.html",
                  {"rows": _adjudication_cases(request.user), "locked": DatabaseLock.is_locked()})


def _adjudication_case(code: str) -> Case:
    case = get_object_or_404(Case, code=code)
    if not (Adjudication.objects.filter(case=case).exists() or services.needs_adjudication(case)):
        raise Http404("this case does not need adjudication")
    return case


@role_required("adjudicator")
@require_safe
def adjudication_page(request: HttpRequest, code: str) -> HttpResponse:
    case = _adjudication_case(code)
    try:
        adj = services.get_or_create_adjudication(case, request.user)
    except services.ReadingError as exc:
        return render(request, "reading/message.html", {"title": "Cannot open", "text": str(exc)},
                      status=exc.status)
    timing.mark_opened(adj)
    reads = services.signed_reads(case)[:2]
    form = services.form_of(adj)
    differ = set(services.differing_items(reads[0], reads[1]))
    rows = []
    for item in form.items:
        cells = []
        for r in reads:
            v = r.items.get("items", {}).get(item.id)
            cells.append(_describe(item, v))
        rows.append({"label": item.label, "id": item.id, "cells": cells,
                     "differs": item.id in differ})
    shown = shown_sequences(case)
    config = _page_config(request, case, adj, f"/api/case/{case.code}/consensus", shown)
    return render(request, "reading/form.html", {"case": case, "config": config,
                                                 "mode": "consensus", "rows": rows,
                                                 "sequences": shown})


def _describe(item: Any, value: dict[str, Any] | None) -> str:
    if not value:
        return "not scored"
    if value.get("assessable") is False:
        return f"not assessable ({value.get('reason', '')})"
    extent = next((e.label for e in item.extents if e.value == value.get("extent")),
                  str(value.get("extent")))
    lat = {1: "unilateral", 2: "bilateral"}.get(value.get("laterality") or 0, "")
    return f"{value.get('extent')}: {extent}" + (f", {lat}" if lat else "")


@role_required("adjudicator")
@_api
def consensus_api(request: HttpRequest, code: str, action: str = "") -> dict[str, Any]:
    if action not in ACTIONS:
        raise Http404("no such action")
    case = _adjudication_case(code)
    return _dispatch(request, services.get_or_create_adjudication(case, request.user), action)


# ---------------------------------------------------------------- coordinator

@role_required("coordinator")
@require_safe
def coordinator(request: HttpRequest) -> HttpResponse:
    rows = []
    for case in Case.objects.prefetch_related("assignments__reader", "reads").order_by("code"):
        reads = {r.reader_id: r.status for r in case.reads.all()}
        adj = Adjudication.objects.filter(case=case).first()
        rows.append({
            "case": case,
            "readers": [(a.reader.username, reads.get(a.reader_id, "not started"))
                        for a in case.assignments.all()],
            "adjudication": adj.status if adj else
            ("needed" if services.needs_adjudication(case) else "-"),
        })
    return render(request, "reading/coordinator.html", {
        "rows": rows, "locked": DatabaseLock.is_locked(),
        "lock_history": DatabaseLock.objects.select_related("by").order_by("-id")[:20],
        "audit": audit.verify(),
        "reader_sequences": study.reader_sequences(),
        "read_sessions": study.read_sessions(),
        "all_sequences": SEQUENCES, "default_sequences": study.DEFAULTS[study.READER_SEQUENCES],
        "setting_history": study.history()[:20]})


@role_required("coordinator")
@require_POST
def coordinator_settings(request: HttpRequest) -> HttpResponse:
    """Change which sequences readers see (with a reason; audited)."""
    try:
        study.set_reader_sequences(request.user, request.POST.getlist("sequence"),
                                   request.POST.get("reason", ""))
        messages.success(request, "Readers now see: "
                         + ", ".join(study.reader_sequences()) + ".")
    except services.ReadingError as exc:
        messages.error(request, str(exc))
    return redirect("coordinator")


@role_required("coordinator")
@require_POST
def coordinator_lock(request: HttpRequest) -> HttpResponse:
    want = request.POST.get("action") == "lock"
    try:
        services.set_lock(request.user, want, request.POST.get("reason", ""))
        messages.success(request, "Database locked." if want else "Database unlocked.")
    except services.ReadingError as exc:
        messages.error(request, str(exc))
    return redirect("coordinator")


# ---------------------------------------------------------------- reader preferences

@role_required("reader", "adjudicator")
@_api
def preferences_api(request: HttpRequest) -> dict[str, Any]:
    """GET: the reader's layout and key bindings; POST ``{"layout": id}`` and/or
    ``{"keys": {action: key}}`` (``{}`` restores the defaults) to change them."""
    pref, _ = ReaderPreference.objects.get_or_create(user=request.user)
    if request.method == "POST":
        body = _json_body(request)
        if set(body) - {"layout", "keys"}:
            raise services.ReadingError("expected {\"layout\": ..., \"keys\": {...}}")
        protocol = hanging.load_protocol(study.hanging_protocol())
        if "layout" in body:
            layouts = [lay["id"] for lay in protocol["layouts"]]
            if body["layout"] not in layouts:
                raise services.ReadingError(f"unknown layout {body['layout']!r}: one of "
                                            + ", ".join(layouts))
            pref.layout = body["layout"]
        if "keys" in body:
            try:
                pref.keys = hanging.check_keys(body["keys"])
            except hanging.ProtocolError as exc:
                raise services.ReadingError(str(exc)) from exc
        pref.save()
    return {"layout": pref.layout, "keys": hanging.keymap(pref.keys),
            "custom_keys": pref.keys}
