"""The SMTP edge: hands one message to the configured server and says plainly how it went.

Reasons are written for the therapist's dashboard: they never contain the address, the
server's full reply or anything from the message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from server.settings import Settings


@dataclass(frozen=True)
class DeliveryError(Exception):
    """A message was not accepted; `permanent` means trying again will not help."""

    reason: str
    permanent: bool


class Transport(Protocol):
    """Something that delivers a finished message."""

    async def send(self, message: bytes, *, sender: str, recipient: str) -> None:
        """Deliver, or raise DeliveryError."""


REFUSED_ADDRESS = "The recipient's mail server refused the address."
REFUSED_MESSAGE = "The mail server refused the message."
UNREACHABLE = "Could not reach the mail server; trying again later."
SIGN_IN_FAILED = "The mail server refused Attune's sign-in (check the SMTP settings)."
TEMPORARY = "The mail server asked to try again later."
NO_STARTTLS = "The mail server does not offer STARTTLS, so nothing was sent (check smtp_security)."
NO_SIGN_IN = "The mail server does not offer a sign-in (check smtp_username and smtp_security)."
UNTRUSTED = "The mail server's certificate is not trusted (check the SMTP settings)."


def _code_reason(code: int, permanent_reason: str) -> DeliveryError:
    if 400 <= code < 500:
        return DeliveryError(TEMPORARY, permanent=False)
    return DeliveryError(permanent_reason, permanent=True)


class SmtpTransport:
    """aiosmtplib with the settings' host, port, TLS mode and credentials."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, message: bytes, *, sender: str, recipient: str) -> None:
        """One SMTP conversation for one message and one recipient. With `starttls` the
        conversation goes on only inside TLS (no sign-in or message ever in clear)."""
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_security == "tls",
            start_tls=False,  # upgraded below, where a server without it can be named
            timeout=s.smtp_timeout_seconds,
        )
        try:
            async with client:
                if s.smtp_security == "starttls":
                    await client.ehlo()
                    if not client.supports_extension("starttls"):
                        raise DeliveryError(NO_STARTTLS, permanent=False)
                    await client.starttls()
                if s.smtp_username:
                    if client.is_ehlo_or_helo_needed:
                        await client.ehlo()
                    if not client.supports_extension("auth"):
                        raise DeliveryError(NO_SIGN_IN, permanent=False)
                    await client.login(s.smtp_username, s.smtp_secret())
                await client.sendmail(sender, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            raise _code_reason(min(codes) if codes else 550, REFUSED_ADDRESS) from None
        except aiosmtplib.SMTPAuthenticationError:
            raise DeliveryError(SIGN_IN_FAILED, permanent=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _code_reason(exc.code, REFUSED_MESSAGE) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if _untrusted(exc):
                raise DeliveryError(UNTRUSTED, permanent=False) from None
            raise DeliveryError(UNREACHABLE, permanent=False) from None


def _untrusted(exc: BaseException) -> bool:
    """Whether a failure was the server's certificate failing verification."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
