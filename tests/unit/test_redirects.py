"""Only same-site paths survive as the page to open after signing in."""

from __future__ import annotations

import pytest

from server.security.redirects import is_same_site_path, safe_next


@pytest.mark.parametrize(
    "attack",
    [
        "//evil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/%0a/evil.example",
        "/%0D/evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "/%2F/evil.example",
        "/%252F/evil.example",
        "/%25252F%25252Fevil.example",
        "/ /evil.example",
        "/%20/evil.example",
        "/%C2%A0/evil.example",
        "/\x00/evil.example",
        "/%7F/evil.example",
        "https://evil.example",
        "evil.example",
        "javascript:alert(1)",
        "",
        "/" + "a" * 600,
    ],
)
def test_a_next_parameter_that_could_leave_the_site_is_replaced_by_the_default_page(
    attack: str,
) -> None:
    assert not is_same_site_path(attack)
    assert safe_next(attack) == "/"


@pytest.mark.parametrize(
    "path", ["/", "/dashboard", "/host/0123456789abcdef0123456789abcdef", "/admin/audit?x=1"]
)
def test_a_plain_path_on_this_site_is_kept(path: str) -> None:
    assert safe_next(path) == path


def test_a_missing_next_parameter_goes_to_the_default_page() -> None:
    assert safe_next(None) == "/"
