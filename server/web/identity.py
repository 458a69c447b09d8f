"""Who is asking: the therapist/admin sign-in cookie or a client's session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from server.core.languages import N_
from server.core.models import Role
from server.errors import Forbidden, NotFound, Unauthenticated
from server.keys import AUDIT, CLOCK, DB, SETTINGS, VAULT
from server.security import forwarded
from server.security.forwarded import parse_trusted_proxies
from server.services.accounts import SignedIn, Stage, resolve_sign_in
from server.services.measure_links import LinkState, LinkVisit, resolve_link
from server.services.scheduling import ClientVisit, resolve_client
from server.settings import Settings

ACCOUNT_KEY: web.RequestKey[SignedIn | None] = web.RequestKey("account")
# A sign-in past its password but not yet its second factor (or enrolment): it is NOT signed
# in anywhere; only the second-step and enrolment routes read it.
PENDING_KEY: web.RequestKey[SignedIn | None] = web.RequestKey("pending_sign_in")
CLIENT_KEY: web.RequestKey[ClientVisit | None] = web.RequestKey("client")
MEASURE_LINK_KEY: web.RequestKey[LinkVisit | None] = web.RequestKey("measure_link")
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class CookieNames:
    """Cookie names: the __Host- prefix only works (and only matters) over TLS."""

    account: str
    client: str
    device: str
    new_link: str  # a just-issued invite link, kept a few minutes for post/redirect/get
    measures: str = "attune-measures"  # an emailed measures link's page (between sessions)


def cookie_names(settings: Settings) -> CookieNames:
    """The cookie names for this deployment."""
    if settings.uses_tls:
        return CookieNames(
            account="__Host-attune",
            client="__Host-attune-client",
            device="__Host-attune-device",
            new_link="__Host-attune-new-link",
            measures="__Host-attune-measures",
        )
    return CookieNames(
        account="attune", client="attune-client", device="attune-device", new_link="attune-new-link"
    )


def set_cookie(
    response: web.StreamResponse,
    settings: Settings,
    name: str,
    value: str,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """HttpOnly, SameSite=Strict, Path=/, Secure under TLS; a session cookie unless expiring."""
    max_age = None
    if expires_at is not None and now is not None:
        max_age = max(0, int((expires_at - now).total_seconds()))
    response.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.uses_tls,
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, settings: Settings, name: str) -> None:
    """Remove a cookie with the attributes it was set with: a browser ignores the deletion of
    a `__Host-` cookie without Secure and Path=/, and the cookie would live on."""
    response.del_cookie(name, path="/", secure=settings.uses_tls, httponly=True, samesite="Strict")


def client_address(request: web.Request) -> str:
    """The address of whoever is asking, for the whole app: the direct peer, or behind a
    `trusted_proxies` proxy the address it vouches for. Never store or log it raw."""
    address = forwarded.client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", ()),
        parse_trusted_proxies(request.app[SETTINGS].trusted_proxies),
    )
    return address or "unknown"


async def resolve_identity(request: web.Request) -> None:
    """Look up the request's cookies once and remember who is asking."""
    settings, db, now = request.app[SETTINGS], request.app[DB], request.app[CLOCK]()
    names = cookie_names(settings)
    request[ACCOUNT_KEY] = None
    request[PENDING_KEY] = None
    request[CLIENT_KEY] = None
    token = request.cookies.get(names.account)
    if token:
        found = await resolve_sign_in(
            db,
            request.app[AUDIT],
            token,
            now=now,
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
        )
        if found is not None and found.stage is Stage.FULL:
            request[ACCOUNT_KEY] = found
        else:
            request[PENDING_KEY] = found
    client_token = request.cookies.get(names.client)
    if client_token:
        request[CLIENT_KEY] = await resolve_client(db, client_token, now, request.app[VAULT])
    request[MEASURE_LINK_KEY] = None
    link_token = request.cookies.get(names.measures)
    if link_token:
        request[MEASURE_LINK_KEY] = await resolve_link(db, link_token, now)


def measure_link(request: web.Request) -> LinkVisit | None:
    """The emailed measures link this browser opened (in any state), if any."""
    return request.get(MEASURE_LINK_KEY)


def require_measure_link(request: web.Request) -> LinkVisit:
    """The emailed measures link's page cookie, or Unauthenticated; Forbidden once it closed
    (a finished link still takes the retry of an answer it stored)."""
    current = measure_link(request)
    if current is None:
        raise Unauthenticated("Open the link from your email again.")
    if current.state is LinkState.CLOSED:
        raise Forbidden("This link no longer works.", code="link-closed")
    return current


def signed_in(request: web.Request) -> SignedIn | None:
    """The signed-in account, if any."""
    return request.get(ACCOUNT_KEY)


def pending_sign_in(request: web.Request) -> SignedIn | None:
    """The pending sign-in (password done, second factor or enrolment due), if any."""
    return request.get(PENDING_KEY)


def client_visit(request: web.Request) -> ClientVisit | None:
    """The client session granted by the client cookie while the session is open, if any.
    After the end a cookie is good for the after-session check-in only (`after_session_visit`)."""
    visit = request.get(CLIENT_KEY)
    return None if visit is None or visit.after_session else visit


def after_session_visit(request: web.Request) -> ClientVisit | None:
    """The client cookie's visit, also once the session has ended (within its grace period):
    only the after-session check-in may use this."""
    return request.get(CLIENT_KEY)


def require_account(request: web.Request, role: Role | None = None) -> SignedIn:
    """The signed-in account, or Unauthenticated; Forbidden when the role does not match."""
    current = signed_in(request)
    if current is None:
        raise Unauthenticated("Sign in first.")
    if role is not None and current.account.role is not role:
        raise Forbidden("Your account cannot do this.")
    return current


def expected_csrf_tokens(request: web.Request) -> list[str]:
    """The CSRF tokens that the request's cookies bind it to."""
    tokens = []
    account, client = signed_in(request) or pending_sign_in(request), after_session_visit(request)
    if account is not None:
        tokens.append(account.csrf_token)
    if client is not None:
        tokens.append(client.csrf_token)
    link = measure_link(request)
    if link is not None:
        tokens.append(link.csrf_token)
    return tokens


def require_client(request: web.Request) -> ClientVisit:
    """The client session from the link's cookie while the session is open: Unauthenticated
    without one, Forbidden once the session has ended."""
    current = after_session_visit(request)
    if current is None:
        raise Unauthenticated(N_("Open your session link again."))
    if current.after_session:
        raise Forbidden(N_("This session has ended."), code="session-ended")
    return current


def require_client_device(request: web.Request) -> ClientVisit:
    """Like require_client, and the cookie must be the link's admitted device: a second device
    waits as "another device" and may not act for the client until the therapist admits it."""
    current = require_client(request)
    if current.another_device:
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")
    return current


ANOTHER_DEVICE_MESSAGE = N_(
    "This link is open on another device. Join the waiting room: when your therapist lets "
    "this device in, it takes over from the other one."
)


def page_account(request: web.Request, role: Role | None = None) -> SignedIn:
    """Like require_account, but a signed-out visitor of a page is sent to sign in."""
    try:
        return require_account(request, role)
    except Unauthenticated:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path, safe='/')}") from None


def page_visit(request: web.Request) -> ClientVisit:
    """The client's visit for a client page; without a live link cookie, back to `/visit`
    (which says what is wrong with the link)."""
    current = client_visit(request)
    if current is None:
        raise web.HTTPSeeOther("/visit")
    return current


def path_id(request: web.Request, name: str) -> str:
    """A row id from the URL; anything not shaped like one is simply not found."""
    value = request.match_info[name]
    if len(value) != 32 or any(ch not in "0123456789abcdef" for ch in value):
        raise NotFound(N_("Not found."))
    return value
