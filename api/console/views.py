"""The console's pages: sign-in, 待办 (my work), 事件 (incidents), one incident, 统计.

Every action is a form that goes through the API's own decision path (`api.routes.incidents.
deliver`), in the signed-in person's name: the incident decides, records, and refuses what is
not theirs to do, and the page shows the refusal with its reason and the refusal's status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

import asyncpg
import structlog
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.console import access
from api.console.pages import Reader, calendar_for, diff, now, reader_language, render
from api.console.session import LANG_COOKIE, Sessions
from api.deps import Services, services
from api.errors import ApiError, Refusal, detail_in
from api.health import readiness
from api.routes.incidents import STEP_SIGNALS, Step, deliver
from api.routes.listing import Filters, Status, list_page
from yuqing import i18n, incident_workflow_id
from yuqing.audit.compliance import MISSED, DeadlineRow, deadlines_in
from yuqing.authorization import Authorization, ReadScope
from yuqing.decider import describe
from yuqing.listing import ClockMemo, clock_of, memo_of
from yuqing.models import SIGNAL_PAYLOADS, Grade, PublicationChannel
from yuqing.roles import Role
from yuqing.roster import Person
from yuqing.state import IncidentState, Stage
from yuqing.working_time import SHANGHAI

log = structlog.get_logger("yuqing.console")
E = TypeVar("E", bound=StrEnum)

router = APIRouter(prefix="/console", include_in_schema=False)

IncidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
TODO_PAGES = 5  # at most 500 open incidents are looked through for one person's work
ACTION_SIGNALS = {
    "report": ("submit_report", "reporter_id"),
    "assess": ("submit_assessment", "assessor_id"),
    "draft": ("submit_draft", "author_id"),
    "legal": ("legal_opinion", "author_id"),
    "close": ("close_incident", "closed_by"),
    "review": ("submit_review", "author_id"),
}


class Visit:
    """One request's services, session, person and reader."""

    def __init__(self, request: Request, svc: Services) -> None:
        self.request = request
        self.svc = svc
        self.sessions: Sessions = request.app.state.console_sessions
        self.session = self.sessions.read(request)
        roster = svc.directory.roster
        person = None
        trusted: str | None = request.app.state.console_trusted_header
        if trusted is not None:
            # The sign-on proxy in front vouches for the person; it must strip this header
            # from what clients send, and be the only way to reach the API.
            email = request.headers.get(trusted, "").strip().lower()
            person = next(
                (p for p in roster.people if email and (p.email or "").lower() == email), None
            )
        elif self.session is not None and self.session.person_id is not None:
            person = roster.person(self.session.person_id)
        self.me: Person | None = person
        settings = svc.settings
        self.reader = Reader(
            lang=reader_language(request),
            roster=svc.directory.roster,
            calendar=calendar_for(settings.office_hours, settings.calendar_override_path),
            now=now(),
        )

    @property
    def authz(self) -> Authorization:
        return self.svc.directory.authorization

    @property
    def scope(self) -> ReadScope:
        assert self.me is not None
        return self.svc.directory.read_scope(self.me)

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        session = self.session or self.sessions.fresh()
        response = render(
            self.request,
            name,
            reader=self.reader,
            session=session,
            me=self.me,
            status_code=status_code,
            **context,
        )
        if self.session is None:
            self.sessions.write(self.request, response, session)
        return response

    def to_login(self) -> RedirectResponse:
        target = quote(self.request.url.path, safe="/")
        return RedirectResponse(f"/console/login?next={target}", status_code=303)


def visit(request: Request, svc: Annotated[Services, Depends(services)]) -> Visit:
    return Visit(request, svc)


V = Annotated[Visit, Depends(visit)]


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an open redirect.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/console/todo"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/console/todo"
    return target


# -- sign-in, sign-out, language ---------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(v: V) -> Response:
    return RedirectResponse("/console/todo" if v.me else "/console/login", status_code=303)


@router.get("/login")
async def login_form(v: V, next: str | None = None) -> Response:
    if v.me is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    error = None
    if v.request.app.state.console_trusted_header is not None:
        error = v.reader.t("login.sso_unknown")
    return v.page("login.html", nav="login", next=_safe_next(next), error=error)


@router.post("/login")
async def login(
    v: V,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    if not Sessions.csrf_ok(v.session, csrf):
        return v.page("login.html", 403, nav="login", next=_safe_next(next),
                      error=v.reader.t("error.csrf"))
    person = v.svc.directory.authenticate(token.strip()) if token.strip() else None
    if person is None:
        return v.page("login.html", 401, nav="login", next=_safe_next(next),
                      error=v.reader.t("login.unknown"))
    response = RedirectResponse(_safe_next(next), status_code=303)
    v.sessions.write(v.request, response, v.sessions.fresh(person.id))
    log.info("console sign-in", person=person.id)
    return response


@router.post("/logout")
async def logout(v: V, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    if not Sessions.csrf_ok(v.session, csrf):
        return v.page("error.html", 403, nav="", message=v.reader.t("error.csrf"))
    response = RedirectResponse("/console/login", status_code=303)
    v.sessions.write(v.request, response, v.sessions.fresh())
    return response


@router.get("/lang/{lang}")
async def switch_language(lang: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    chosen = i18n.language(lang)
    response.set_cookie(
        LANG_COOKIE, chosen, max_age=365 * 24 * 3600, path="/", samesite="lax", httponly=True
    )
    return response


# -- 待办 ---------------------------------------------------------------------------------------


@router.get("/todo")
async def todo(v: V) -> Response:
    if v.me is None:
        return v.to_login()
    items: list[tuple[access.Work, ClockMemo | None]] = []
    token: str | None = None
    for _ in range(TODO_PAGES):
        page, found = await list_page(
            v.svc.workflows.client,
            v.scope,
            Filters(status=Status.open),
            page_size=100,
            page_token=token,
            now=v.reader.now,
        )
        for listed, memo in found:
            if memo is None:
                continue
            clocks = {c.key: c for c in memo.clocks}
            for work in access.owed(v.authz, v.me, listed.incident_id, memo):
                clock = clocks.get(work.clock_key or "")
                if work.post_id is not None:
                    post = next((p for p in memo.posts if p.post_id == work.post_id), None)
                    clock = post.clocks[0] if post and post.clocks else None
                items.append((work, clock))
        token = page.next_page_token
        if token is None:
            break
    far = datetime.max.replace(tzinfo=UTC)
    items.sort(key=lambda pair: pair[1].due_at if pair[1] else far)
    return v.page("todo.html", nav="todo", items=items)


# -- 事件 ---------------------------------------------------------------------------------------


def _choice(kind: type[E], value: str) -> E | None:
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def _optional_bool(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


@router.get("/incidents")
async def incidents(
    v: V,
    grade: Annotated[str, Query(max_length=32)] = "",
    stage: Annotated[str, Query(max_length=32)] = "",
    unit: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$|^$")] = "",
    breached: Annotated[str, Query(pattern=r"^(yes|no)?$")] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    page: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    if v.me is None:
        return v.to_login()
    # A form's "any" sends an empty value; an unknown one is treated the same.
    filters = Filters(
        grade=_choice(Grade, grade),
        stage=_choice(Stage, stage),
        unit=unit or None,
        breached=_optional_bool(breached),
        status=_choice(Status, status) or Status.all,
    )
    scope = v.scope
    listing, _ = await list_page(
        v.svc.workflows.client, scope, filters, page_size=25, page_token=page, now=v.reader.now
    )
    roster_units = sorted(
        {g.unit for p in v.reader.roster.people for g in p.roles if g.unit}
        | {u.id for u in v.reader.roster.units}
    )
    choices = [u for u in roster_units if scope.allows(u)]
    return v.page(
        "incidents.html",
        nav="incidents",
        listing=listing,
        filters=filters,
        breached=breached or "",
        units=choices,
        grades=list(Grade),
        stages=list(Stage),
        statuses=list(Status),
    )


# -- one incident --------------------------------------------------------------------------------


async def _deliveries(pool: asyncpg.Pool, incident_id: str) -> dict[str, list[asyncpg.Record]]:
    try:
        rows = await pool.fetch(
            "SELECT idempotency_key, channel, target, status, detail, delivered_at"
            " FROM deliveries WHERE incident_id = $1 AND purpose = 'notice'"
            " ORDER BY idempotency_key, channel, target",
            incident_id,
        )
    except (OSError, asyncpg.PostgresError) as err:
        log.warning("deliveries unavailable", error=str(err))
        return {}
    found: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        found.setdefault(row["idempotency_key"], []).append(row)
    return found


async def _incident_page(
    v: Visit,
    incident_id: str,
    *,
    status_code: int = 200,
    refusal: str | None = None,
    done: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    assert v.me is not None
    workflows = v.svc.workflows
    what = f"incident {incident_id}"
    try:
        state = await workflows.state(incident_workflow_id(incident_id), IncidentState, what)
    except ApiError as err:
        message = (
            v.reader.t("incident.not_found")
            if err.status == 404
            else detail_in(err, v.reader.lang, v.reader.roster)
        )
        return v.page("error.html", err.status, nav="incidents", message=message)
    if not v.scope.allows(state.unit):
        # A refused decision still says why, without showing the incident itself.
        return v.page(
            "error.html",
            status_code if refusal else 403,
            nav="incidents",
            message=refusal or v.reader.t("incident.not_yours", unit=v.reader.unit(state.unit)),
        )
    memo = None
    try:
        description = await workflows.client.get_workflow_handle(state.workflow_id).describe()
        memo = memo_of(await description.memo())
    except Exception as err:  # the page still shows the state without the memo
        log.warning("memo unavailable", incident_id=incident_id, error=str(err))
    awaiting = memo.awaiting if memo else []
    at = v.reader.now
    lights = {d.key: clock_of(d).light(at) for d in state.deadlines}
    post_lights = {
        p.post_id: {d.key: clock_of(d).light(at) for d in p.deadlines} for p in state.posts
    }
    roster = v.reader.roster
    next_people = "、".join(
        roster.person(r.id).name  # type: ignore[union-attr]
        for r in roster.recipients([Role(role) for role in awaiting[:1]], state.unit)
        if roster.person(r.id) is not None
    )
    current = state.current_draft
    previous = state.drafts[-2] if len(state.drafts) > 1 else None
    changes = diff(previous.text, current.text) if current and previous else []
    deliveries = await _deliveries(v.svc.pool, state.incident_id)
    offered = access.actions(v.authz, v.me, state, awaiting)
    return v.page(
        "incident.html",
        status_code,
        nav="incidents",
        s=state,
        current=current,
        previous=previous,
        changes=changes,
        awaiting=awaiting,
        lights=lights,
        post_lights=post_lights,
        next_people=next_people,
        deliveries=deliveries,
        actions=offered,
        refusal=refusal,
        done=done,
        form=form or {},
        channels=list(PublicationChannel),
        statement_versions=sorted(
            {p.draft_version for p in state.publications if p.status == "published"}
        ),
    )


@router.get("/incidents/{incident_id}")
async def incident(v: V, incident_id: IncidentId, done: str | None = None) -> Response:
    if v.me is None:
        return v.to_login()
    done_key = done if done in (*ACTION_SIGNALS, "approve", "reject") else None
    return await _incident_page(v, incident_id, done=done_key)


def _payload(action: str, fields: dict[str, str], me: Person) -> tuple[str, dict[str, Any]]:
    """The signal and its payload for one of the incident page's forms."""
    if action == "approve":
        step = fields.get("step", "")
        try:
            signal = STEP_SIGNALS[Step(step)]
        except ValueError as err:
            raise ValueError(f"step: {step!r} is not a step of the approval chain") from err
        version = fields.get("draft_version", "")
        payload: dict[str, Any] = {
            "approver_id": me.id,
            "decision": fields.get("decision", ""),
            "draft_version": int(version) if version.isdigit() else version,
            "comment": fields.get("comment", ""),
        }
        return signal, payload
    signal, field = ACTION_SIGNALS[action]
    if action == "report":
        units = [u.strip() for u in fields.get("units_involved", "").replace("，", ",").split(",")]
        payload = {
            "medium": fields.get("medium", ""),
            "facts": {
                "time": fields.get("time", ""),
                "place": fields.get("place", ""),
                "units_involved": [u for u in units if u],
                "course": fields.get("course", ""),
                "outcome": fields.get("outcome", ""),
            },
            "comment_tendency": fields.get("comment_tendency", ""),
        }
    elif action == "assess":
        payload = {
            "cross_district": fields.get("cross_district") == "on",
            "large_image_effect": fields.get("large_image_effect") == "on",
            "mainstream_media_exposure": fields.get("mainstream_media_exposure") == "on",
            "comment": fields.get("comment", ""),
        }
    elif action == "draft":
        chosen = [c for c in PublicationChannel if fields.get(f"channel_{c.value}") == "on"]
        payload = {"text": fields.get("text", "")}
        if chosen:
            payload["channels"] = [c.value for c in chosen]
    elif action == "legal":
        payload = {
            "opinion": fields.get("opinion", ""),
            "legal_basis": fields.get("legal_basis", ""),
        }
    elif action == "close":
        payload = {"reason": fields.get("reason", "")}
    else:  # review
        payload = {
            key: fields.get(key, "") for key in ("what_happened", "what_worked", "what_to_change")
        }
    payload[field] = me.id
    return signal, payload


@router.post("/incidents/{incident_id}/{action}")
async def act(v: V, incident_id: IncidentId, action: str) -> Response:
    if v.me is None:
        return v.to_login()
    form = await v.request.form()
    fields = {k: str(value) for k, value in form.items() if isinstance(value, str)}
    if not Sessions.csrf_ok(v.session, fields.get("csrf")):
        return v.page("error.html", 403, nav="incidents", message=v.reader.t("error.csrf"))
    if action not in (*ACTION_SIGNALS, "approve"):
        return v.page("error.html", 404, nav="incidents", message=v.reader.t("error.no_action"))
    kept = {k: val for k, val in fields.items() if k != "csrf"}
    # Like the API's own writes: nothing is taken that could not be recorded.
    if await readiness(v.request).problem("postgresql") is not None:
        return v.page("error.html", 503, nav="incidents", message=v.reader.t("error.db"))
    try:
        signal, payload = _payload(action, fields, v.me)
        payload = SIGNAL_PAYLOADS[signal].model_validate(payload).model_dump(mode="json")
    except ValidationError as err:
        return await _incident_page(
            v, incident_id, status_code=422, refusal=describe(err), form=kept
        )
    except ValueError as err:
        return await _incident_page(v, incident_id, status_code=422, refusal=str(err), form=kept)
    try:
        # The API's own path: the incident decides, and records a refusal in its trail.
        await deliver(v.svc, incident_id, signal, payload, v.me.id)
    except Refusal as refusal:
        return await _incident_page(
            v,
            incident_id,
            status_code=refusal.status,
            refusal=detail_in(refusal, v.reader.lang, v.reader.roster),
            form=kept,
        )
    except ApiError as err:
        refused = detail_in(err, v.reader.lang, v.reader.roster)
        return await _incident_page(
            v, incident_id, status_code=err.status, refusal=refused, form=kept
        )
    done = action
    if action == "approve" and payload.get("decision") == "reject":
        done = "reject"
    return RedirectResponse(f"/console/incidents/{incident_id}?done={done}", status_code=303)


# -- 统计 ---------------------------------------------------------------------------------------


def _month_start(text: str | None, fallback: datetime) -> datetime:
    if text:
        try:
            year, month = (int(part) for part in text.split("-"))
            return datetime(year, month, 1, tzinfo=SHANGHAI)
        except ValueError:
            pass
    return fallback


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month)


@router.get("/compliance")
async def compliance(
    v: V,
    start: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}$|^$")] = None,
    end: Annotated[str | None, Query(alias="to", pattern=r"^\d{4}-\d{2}$|^$")] = None,
) -> Response:
    if v.me is None:
        return v.to_login()
    local_now = v.reader.now.astimezone(SHANGHAI)
    this_month = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    default_first = this_month
    for _ in range(5):
        default_first = (default_first - timedelta(days=1)).replace(day=1)
    first = _month_start(start, default_first)
    last = _month_start(end, this_month)
    if last < first:
        first, last = last, first
    if (last.year - first.year) * 12 + last.month - first.month > 36:
        first = last.replace(year=last.year - 3)
    until = _next_month(last)
    try:
        rows = await deadlines_in(v.svc.pool, first, until, now=v.reader.now)
    except (OSError, asyncpg.PostgresError) as err:
        log.error("compliance unavailable", error=str(err))
        return v.page("error.html", 503, nav="compliance", message=v.reader.t("error.db"))
    scope = v.scope
    rows = [r for r in rows if scope.allows(r.responsible_unit)]
    months: list[str] = []
    cursor = first
    while cursor < until:
        months.append(cursor.strftime("%Y-%m"))
        cursor = _next_month(cursor)
    per_month = {m: [0, 0] for m in months}
    per_unit: dict[str, list[int]] = {}
    for row in rows:
        month = row.due_at.astimezone(SHANGHAI).strftime("%Y-%m")
        tally = per_unit.setdefault(row.responsible_unit, [0, 0])
        if row.outcome == "met":
            per_month.setdefault(month, [0, 0])[0] += 1
            tally[0] += 1
        elif row.outcome in MISSED:
            per_month.setdefault(month, [0, 0])[1] += 1
            tally[1] += 1
    misses = [row for row in rows if row.outcome in MISSED]
    return v.page(
        "compliance.html",
        nav="compliance",
        first=first.strftime("%Y-%m"),
        last=last.strftime("%Y-%m"),
        total=len(rows),
        month_bars=bars([(m, per_month[m][0], per_month[m][1]) for m in months]),
        unit_bars=bars([(v.reader.unit(u), c[0], c[1]) for u, c in sorted(per_unit.items())]),
        misses=misses,
        lateness=lambda row: _lateness(v.reader, row),
    )


def _lateness(reader: Reader, row: DeadlineRow) -> str:
    late = row.late_by
    if late is None:
        return ""
    working = row.clock.startswith("working")
    if working:
        end = row.met_at or row.as_of
        try:
            late = reader.calendar.working_hours_between(row.due_at, end)
        except ValueError:
            working = False
    return i18n.span(late, reader.lang, "working" if working else "calendar")


def bars(counts: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Bar geometry for met and missed per label, for the template's inline SVG."""
    peak = max((max(met, missed) for _, met, missed in counts), default=0) or 1
    group, bar, height, left = 88, 28, 160, 36
    groups = []
    for index, (name, met, missed) in enumerate(counts):
        x = left + index * group + 8
        groups.append(
            {
                "name": name,
                "x": x,
                "met": met,
                "missed": missed,
                "met_h": round(height * met / peak),
                "missed_h": round(height * missed / peak),
            }
        )
    return {
        "groups": groups,
        "peak": peak,
        "bar": bar,
        "height": height,
        "left": left,
        "width": max(left + group * max(len(counts), 1) + 16, 320),
    }
