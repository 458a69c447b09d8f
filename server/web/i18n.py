"""Pages in the client's language: Babel message catalogues, jinja2's i18n extension with a
gettext per request, the browser modules' strings as a JSON block, and the language switcher.

Catalogues live in `client_web/locales/<lang>/LC_MESSAGES/`: `messages.po` for templates (and
Python), `js.po` for the ES modules' `t("…")` strings. `make` compiles `.mo` files next to them;
a `.po` without a fresh `.mo` (a fresh checkout, an installed wheel) is compiled in memory at
start, so the `.po` text is always what is shown. English is the source language: its
catalogue is the message ids themselves.

A page is shown in the negotiated language only when its route is in `TRANSLATED_ROUTES`;
every other page stays English with `lang="en"`, so no page claims a language it is not in.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from server.core.languages import N_, SOURCE_LANGUAGE, negotiate, offered
from server.core.models import Role
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, DB, PAGE_LANGUAGES, SETTINGS
from server.security.redirects import safe_next
from server.services import scheduling
from server.settings import Settings
from server.web.catalogues import PageLanguages, load_catalogues
from server.web.forms import read_form
from server.web.guard import SIGNED_IN, page_guarded
from server.web.identity import (
    after_session_visit,
    client_visit,
    measure_link,
    path_id,
    set_cookie,
)

LANGUAGE = web.RequestKey("language", str)
"""The language this request's page (or notice) is shown in."""

TRANSLATED_ROUTES: Final = frozenset(
    {
        "/join/{token}",  # the "too early" and "link does not work" pages
        "/visit",  # the join path: devices, connection check, consent, waiting room
        "/weather",  # the quick exit's neutral page
        "/language",
        "/api/v1/visit/consents",  # the notices, in the language they are shown
        "/visit/consent",  # the consent page (from the join path) and its receipt
        "/visit/consent/receipt",
        "/visit/after",  # the after-session page (its check-in form: checkins.js)
        "/visit/data",  # the data rights: what is kept, download, erase
        "/visit/data/export.json",  # its error pages (the file itself is data, not words)
        "/visit/data/erase",
        "/visit/data/erased",  # what an erasure did (post/redirect/get)
        "/visit/contact",  # email reminders: the address and its consent
        "/email/unsubscribe/{token}",  # a reminder's stop link (no cookie: Accept-Language)
        "/m/{token}",  # an emailed measures link that does not work
        "/measures",  # its token-free page (measures between sessions)
        "/visit/progress",  # the client's own progress page
    }
)
"""Routes whose pages (and error pages) follow the negotiated language; add a route here
once every string its page shows is marked and translated (tests/unit/test_i18n_catalogues)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def language_cookie_name(settings: Settings) -> str:
    """The cookie that remembers a person's own choice of language (`__Host-` under TLS)."""
    return "__Host-attune-lang" if settings.uses_tls else "attune-lang"


def install_languages(app: web.Application, env: jinja2.Environment, locales: Path) -> None:
    """Load the catalogues and give templates gettext: English until a request says more."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True  # a message is its words, not its line breaks
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    app[PAGE_LANGUAGES] = PageLanguages.build(load_catalogues(locales))
    app.router.add_post("/language", choose_language)
    app.router.add_post(
        "/dashboard/clients/{client_id}/language",
        page_guarded(client_language_submit, Role.THERAPIST),
    )


def wanted_language(request: web.Request) -> str:
    """The person's choice in this browser (cookie), else the client's remembered preference
    (their own earlier choice, or their therapist's setting; known from the session link's
    cookie or an emailed measures link's), else their browser's
    `Accept-Language`, else the clinic's `default_language`."""
    settings = request.app[SETTINGS]
    visit = after_session_visit(request) or measure_link(request)
    if isinstance(visit, scheduling.ClientVisit):
        remembered = visit.language
    else:
        remembered = visit.session.client_language if visit else None
    return negotiate(
        offered(request.cookies.get(language_cookie_name(settings))) or remembered,
        request.headers.get("Accept-Language"),
        settings.default_language,
    )


def _translated_route(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in TRANSLATED_ROUTES


def start_page(request: web.Request) -> str:
    """Where an error page's "Back to the start" leads: a client's pages (the translated ones)
    back to their visit, which shows what their link allows now (never the staff sign-in);
    everything else to `/`."""
    return "/visit" if _translated_route(request) else "/"


def set_page_language(request: web.Request) -> None:
    """Put this request's language where handlers and templates find it: the negotiated one
    on a translated route, English elsewhere."""
    code = wanted_language(request) if _translated_route(request) else SOURCE_LANGUAGE
    request[LANGUAGE] = code
    languages = request.app[PAGE_LANGUAGES]
    context = {**languages.template_context[code], "here": request.path_qs}
    with warnings.catch_warnings():
        # aiohttp_jinja2 reads its per-request context under this plain string key (as its own
        # context processors do); aiohttp would rather every key were a RequestKey.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request[aiohttp_jinja2.REQUEST_CONTEXT_KEY] = context


@web.middleware
async def page_language(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The language of this request's page (and the error pages of anything the handler
    raises). Runs after identity, so it knows the client; an error page of a request refused
    before (a missing CSRF token, the database away) gets its language from the errors
    middleware (`set_page_language`), from what is known by then."""
    set_page_language(request)
    return await handler(request)


CLIENT_API: Final = "/api/v1/visit/"
"""The client's API: its pages show its error messages, so they come in the client's language."""


def client_api_message(request: web.Request, message: str) -> str:
    """An error message of the client's API in the client's language (when it is marked and
    translated; English otherwise). The response stays JSON and its `code` stays as it is."""
    catalogues = request.app[PAGE_LANGUAGES].catalogues
    return catalogues[wanted_language(request)].translations.gettext(message)


def translate(request: web.Request, message: str) -> str:
    """One message in this request's language (for text made outside templates)."""
    catalogue = request.app[PAGE_LANGUAGES].catalogues[request[LANGUAGE]]
    return catalogue.translations.gettext(message)


async def choose_language(request: web.Request) -> web.StreamResponse:
    """The switcher's form: remember the choice and show the page again. This browser keeps
    the code in a cookie that ends with the browser session; a client on their link also has
    it remembered with their client record (the code only), for their next visit."""
    fields = await read_form(request)
    code = offered(fields.get("lang"))
    target = safe_next(fields.get("next"), "/visit")
    if code is None or code != fields.get("lang"):
        raise InvalidInput(N_("Choose one of the offered languages."))
    app = request.app
    visit = client_visit(request)
    if (
        visit is not None
        and not visit.is_guest  # a guest has no record to remember it with
        and visit.may_act
        and visit.language != code
    ):
        await scheduling.set_client_language(
            app[DB], app[AUDIT], visit.client_id, code, app[CLOCK]()
        )
    response = web.HTTPSeeOther(target)
    settings = app[SETTINGS]
    set_cookie(response, settings, language_cookie_name(settings), code)
    raise response


async def client_language_submit(request: web.Request) -> web.StreamResponse:
    """The therapist sets (or clears) a client's language on the client's page."""
    current = request[SIGNED_IN]
    client_id = path_id(request, "client_id")
    fields = await read_form(request)
    wanted = fields.get("language", "")
    code = offered(wanted)
    if wanted and code != wanted:
        raise InvalidInput("Choose one of the offered languages.")
    app = request.app
    await scheduling.set_client_language(
        app[DB], app[AUDIT], client_id, code, app[CLOCK](), therapist=current.account
    )
    raise web.HTTPSeeOther(f"/dashboard/clients/{client_id}?done=language")
