"""The therapist's room names whom the session is with: its client, or in a group everyone."""

from server.web.pages import host_heading


def test_a_two_person_session_names_its_client() -> None:
    assert host_heading("J.M.", ["J.M."]) == "Session with J.M."
    assert host_heading("J.M.", []) == "Session with J.M."


def test_a_group_names_everyone_invited_in_order() -> None:
    assert host_heading("J.M.", ["J.M.", "K.L.", "Interpreter"]) == (
        "Group session: J.M., K.L., Interpreter"
    )
