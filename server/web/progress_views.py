"""Progress pages: the therapist's measure and goal charts, the client's own progress page, the
switch that turns the client's page off (with a reason), and the goals API.

The charts are server-rendered SVG (server.web.progress_charts) with the same numbers in a
table. Every therapist read of clinical content is audited (`clinical.read`). The client's
page uses plain, non-alarming words (docs/checkins.md, "The client's own progress").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.core.languages import N_
from server.core.measures import Measure, load_builtin_measures
from server.core.models import Client, Role
from server.errors import InvalidInput
from server.keys import AUDIT, CHECKINS, CLOCK, DB, GOALS, MEASURES
from server.services import scheduling
from server.services.progress import (
    GoalProgress,
    MeasurePoint,
    alliance_points,
    goal_progress,
    measure_points,
)
from server.web.guard import SIGNED_IN, page_guarded
from server.web.i18n import LANGUAGE, translate
from server.web.identity import after_session_visit, path_id
from server.web.openapi import Operation
from server.web.progress_charts import date_label, goals_chart, measure_chart, svg
from server.web.shapes import ERR

# The shipped measures are data files: parse them once per process.
builtin_measures = functools.cache(load_builtin_measures)

# What the client reads instead of severity labels (docs/checkins.md).
PLAIN_MEASURE_WORDS: Mapping[str, str] = {
    "phq9": N_("Mood over the past two weeks"),
    "gad7": N_("Worry and tension over the past two weeks"),
}
Gettext = Callable[[str], str]


def _same(message: str) -> str:
    return message


def _measure_table(
    points: Sequence[MeasurePoint], measure: Measure, language: str = "en"
) -> list[dict[str, Any]]:
    rows = []
    first = points[0].total if points else None
    for p in points:
        band = next((b.label for b in measure.bands if b.lower <= p.total <= b.upper), "")
        rows.append(
            {
                "date": date_label(p.at, language),
                "total": p.total,
                "band": band,
                "change": None if first is None else p.total - first,
            }
        )
    return rows


def _measure_charts(
    points: Sequence[MeasurePoint],
    measures: Mapping[str, Measure],
    *,
    for_client: bool,
    gettext: Gettext = _same,
    language: str = "en",
) -> list[dict[str, Any]]:
    charts = []
    for measure in measures.values():
        mine = [p for p in points if p.measure_id == measure.id]
        if not mine:
            continue
        title = (
            gettext(PLAIN_MEASURE_WORDS.get(measure.id, measure.title))
            if for_client
            else measure.title
        )
        chart = measure_chart(
            key=f"{'svg-my' if for_client else 'svg'}-{measure.id}",
            title=title,
            maximum=measure.max_total,
            bands=[(b.lower, b.upper, b.label) for b in measure.bands],
            reliable_change=measure.reliable_change_at_least,
            points=[(p.at, p.total) for p in mine],
            show_bands=not for_client,
            gettext=gettext,
            language=language,
        )
        charts.append(
            {
                "id": measure.id,
                "title": title,
                "maximum": measure.max_total,
                "reliable_change": measure.reliable_change_at_least,
                "svg": svg(chart),
                "rows": _measure_table(mine, measure, language),
                "plain": gettext(_plain_measure_line(mine, measure)),
            }
        )
    return charts


def _plain_measure_line(points: Sequence[MeasurePoint], measure: Measure) -> str:
    """One calm sentence about the change since the first answer (the client's page)."""
    if len(points) < 2:
        return N_("You have answered this once so far; a line appears after the next time.")
    delta = points[-1].total - points[0].total
    if delta <= -measure.reliable_change_at_least:
        return N_("Your answers now are clearly lower than the first time: fewer difficulties.")
    if delta >= measure.reliable_change_at_least:
        return N_(
            "Your answers now are higher than the first time. Ups and downs are common; "
            "your therapist sees these answers too and can talk them through with you."
        )
    return N_("Your answers are close to where they started. Change often takes a while.")


def _goal_rows(progress: Sequence[GoalProgress], language: str = "en") -> list[dict[str, Any]]:
    return [
        {
            "id": gp.goal.id,
            "text": gp.goal.text,
            "status": gp.goal.status.value,
            "latest": gp.latest,
            "points": [
                {"date": date_label(at, language), "score": score} for at, score in gp.points
            ],
        }
        for gp in progress
    ]


def _goal_chart(
    progress: Sequence[GoalProgress],
    key: str,
    title: str,
    gettext: Gettext = _same,
    language: str = "en",
) -> str | None:
    answered = [(gp.goal.text, gp.points) for gp in progress if gp.points]
    if not answered:
        return None
    return svg(
        goals_chart(key=key, title=title, goals=answered, gettext=gettext, language=language)
    )


async def therapist_progress(
    request: web.Request, client: Client, results: Sequence[Any]
) -> dict[str, Any]:
    """What the therapist's client page shows of progress (the caller audits the read)."""
    app = request.app
    measures = builtin_measures()
    points = await measure_points(app[MEASURES], client.id)
    progress = await goal_progress(app[GOALS], client.id)
    history = await app[GOALS].history(client.id)
    texts = {gp.goal.id: gp.goal.text for gp in progress}
    view = await app[GOALS].progress_view(client.id)
    return {
        "measure_charts": _measure_charts(points, measures, for_client=False),
        "goals": _goal_rows(progress),
        "goal_chart": _goal_chart(progress, "svg-goals", "Progress on shared goals"),
        "goal_history": [
            {
                "at": h.at,
                "goal": texts.get(h.goal_id, ""),
                "change": h.change.value,
                "by": h.by.value,
            }
            for h in reversed(history[-50:])
        ],
        "progress_view": view,
        "clinical_count": len(points) + len(progress) + len(results),
    }


# --- the therapist: the goals API and the switch for the client's page --------------------------


async def client_goals_api(request: web.Request) -> web.StreamResponse:
    """A client's goals with their progress and history (audited)."""
    therapist = request[SIGNED_IN].account
    app = request.app
    client = await scheduling.get_client(app[DB], therapist, path_id(request, "client_id"))
    progress = await goal_progress(app[GOALS], client.id)
    history = await app[GOALS].history(client.id)
    async with app[DB].write() as conn:
        await app[AUDIT].record(
            conn,
            at=app[CLOCK](),
            actor=f"account:{therapist.id}",
            action="clinical.read",
            targets=(f"client:{client.id}",),
            details={"what": "goals", "count": len(progress)},
        )
    return web.json_response(
        {
            "goals": [
                {
                    **gp.goal.to_json(),
                    "progress": [{"at": at.isoformat(), "score": score} for at, score in gp.points],
                }
                for gp in progress
            ],
            "history": [
                {
                    "goal_id": h.goal_id,
                    "at": h.at.isoformat(),
                    "by": h.by.value,
                    "change": h.change.value,
                }
                for h in history
            ],
        }
    )


async def progress_view_submit(request: web.Request) -> web.StreamResponse:
    """The therapist turns the client's own progress page off (with a reason) or on."""
    therapist = request[SIGNED_IN].account
    app = request.app
    client = await scheduling.get_client(app[DB], therapist, path_id(request, "client_id"))
    form = await request.post()
    shown = form.get("shown")
    reason = form.get("reason", "")
    if shown not in ("yes", "no") or not isinstance(reason, str):
        raise InvalidInput("shown: yes or no.")
    try:
        await app[GOALS].set_progress_view(
            client.id,
            shown=shown == "yes",
            reason=reason,
            actor=f"account:{therapist.id}",
            now=app[CLOCK](),
        )
    except InvalidInput as exc:
        from urllib.parse import urlencode

        raise web.HTTPSeeOther(
            f"/dashboard/clients/{client.id}?{urlencode({'error': exc.message})}#progress-view"
        ) from None
    raise web.HTTPSeeOther(f"/dashboard/clients/{client.id}#progress-view")


# --- the client's own progress page ------------------------------------------------------------


async def client_progress_page(request: web.Request) -> web.StreamResponse:
    """The client's own trends in plain words, unless their therapist turned the page off."""
    visit = after_session_visit(request)
    if visit is None:
        raise web.HTTPSeeOther("/visit")
    app = request.app
    client_id = visit.client_id
    view = await app[GOALS].progress_view(client_id)
    context: dict[str, Any] = {"shown": view.shown}
    if view.shown:
        measures = builtin_measures()
        points = await measure_points(app[MEASURES], client_id)
        progress = await goal_progress(app[GOALS], client_id)
        results = await app[CHECKINS].stored_for_client(app[DB], client_id)
        sessions = alliance_points(results)
        language = request[LANGUAGE]

        def gettext(message: str) -> str:
            return translate(request, message)

        context |= {
            "measure_charts": _measure_charts(
                points, measures, for_client=True, gettext=gettext, language=language
            ),
            "goals": _goal_rows(progress, language),
            "goal_chart": _goal_chart(
                progress,
                "svg-my-goals",
                gettext("Progress on your goals"),
                gettext,
                language,
            ),
            "alliance": [
                {"date": date_label(at, language), "total": total, "maximum": maximum}
                for at, total, maximum in sessions
            ],
            "alliance_chart": _alliance_chart(sessions, gettext, language),
        }
    return aiohttp_jinja2.render_template("client_progress.html", request, context)


def _alliance_chart(
    sessions: Sequence[tuple[datetime, int, int]], gettext: Gettext = _same, language: str = "en"
) -> str | None:
    if not sessions:
        return None
    maximum = max(m for _at, _t, m in sessions)
    chart = measure_chart(
        key="svg-my-sessions",
        title=gettext("How sessions felt to you"),
        maximum=maximum,
        bands=(),
        reliable_change=0,
        points=[(at, total) for at, total, _m in sessions],
        show_bands=False,
        gettext=gettext,
        language=language,
    )
    return svg(chart)


GOAL_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/v1/clients/{client_id}/goals",
        client_goals_api,
        "A client's shared goals with their progress answers and history (audited)",
        "clientGoals",
        auth="therapist",
        responses={200: ("Goals", {"type": "object"}), 404: ("Not found", ERR)},
        tags=["goals"],
    ),
)


def add_progress_pages(app: web.Application) -> None:
    """The client's progress page and the therapist's switch for it."""
    app.router.add_get("/visit/progress", client_progress_page)
    app.router.add_post(
        "/dashboard/clients/{client_id}/progress-view",
        page_guarded(progress_view_submit, Role.THERAPIST),
    )
