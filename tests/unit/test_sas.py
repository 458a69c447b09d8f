"""Safety code: commit-reveal exchange and code derivation, in Python and in the browser twin.

`sas_vectors.json` pins inputs and outputs; both `server/core/sas.py` and
`client_web/static/js/sas.js` (run with node) must reproduce them. After a deliberate change
of the derivation, refresh the expected values with `python -m tests.unit.test_sas`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.sas import (
    CommitRevealInitiator,
    CommitRevealResponder,
    SasProtocolError,
    SasState,
    canonical_fingerprint,
    commitment,
    encode_b64url,
    group_pairs,
    normalize_fingerprint,
    sas_bytes,
    sas_code,
)

HERE = Path(__file__).parent
VECTORS_PATH = HERE / "sas_vectors.json"
CHECK_SCRIPT = HERE / "sas_vectors_check.mjs"
SPEC: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
NODE = shutil.which("node")


def fingerprint_of(certificate: bytes) -> str:
    """A fingerprint as RTCCertificateStats reports it: "AB:CD:…"."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(certificate).digest())


FP_THERAPIST = fingerprint_of(b"therapist's DTLS certificate")
FP_CLIENT = fingerprint_of(b"client's DTLS certificate")
N_T = bytes(range(32))
N_C = bytes(range(32, 64))


def expected_for_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """Everything a vector pins, computed by the Python implementation."""
    n_t, n_c = bytes.fromhex(vector["n_t"]), bytes.fromhex(vector["n_c"])
    therapist, client = CommitRevealInitiator(n_t), CommitRevealResponder(n_c)
    commit = therapist.start()
    nonce = client.receive(commit)
    assert nonce is not None
    reveal = therapist.receive(nonce)
    last = client.receive(reveal)
    fp_t, fp_c = vector["fp_therapist"], vector["fp_client"]
    return {
        "commitment": commitment(n_t).hex(),
        "fp_therapist": canonical_fingerprint(fp_t),
        "fp_client": canonical_fingerprint(fp_c),
        "sas_bytes": sas_bytes(fp_t, fp_c, n_t, n_c).hex(),
        "sas_code": sas_code(fp_t, fp_c, n_t, n_c),
        "messages": [commit, nonce, reveal, last],
        "therapist_code": therapist.sas_code(fp_t, fp_c),
        "client_code": client.sas_code(fp_t, fp_c),
    }


def expected_for_group(group: dict[str, Any]) -> dict[str, Any]:
    """Each pair of a group call: who commits, and the code both of its pages show."""
    people = {person["peer_id"]: person for person in group["people"]}
    pairs = []
    for committer_id, responder_id in group_pairs(
        {peer_id: person["order"] for peer_id, person in people.items()}
    ):
        committer, responder = people[committer_id], people[responder_id]
        initiator = CommitRevealInitiator(bytes.fromhex(committer["nonce"]))
        answerer = CommitRevealResponder(bytes.fromhex(responder["nonce"]))
        run_exchange(initiator, answerer)
        fp_committer, fp_responder = committer["fp"], responder["fp"]
        pairs.append(
            {
                "committer": committer_id,
                "responder": responder_id,
                "committer_code": initiator.sas_code(fp_committer, fp_responder),
                "responder_code": answerer.sas_code(fp_committer, fp_responder),
            }
        )
    return {"pairs": pairs}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Play a scripted sequence of calls against one side; record each outcome."""
    nonce = bytes.fromhex(case["nonce"])
    machine: CommitRevealInitiator | CommitRevealResponder
    machine = (
        CommitRevealInitiator(nonce)
        if case["role"] == "initiator"
        else CommitRevealResponder(nonce)
    )
    outcomes: list[dict[str, Any]] = []
    for step in case["steps"]:
        try:
            if step["call"] == "start" and isinstance(machine, CommitRevealInitiator):
                outcomes.append({"out": machine.start()})
            else:
                outcomes.append({"out": machine.receive(step["message"])})
        except SasProtocolError:
            outcomes.append({"error": True})
    return {"outcomes": outcomes, "final_state": str(machine.state)}


def canonical_or_none(fingerprint: str) -> str | None:
    try:
        return canonical_fingerprint(fingerprint)
    except ValueError:
        return None


def by_id(items: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(index, item, id=item["id"]) for index, item in enumerate(items)]


# --- the fixed vectors, in Python -------------------------------------------------------------


@pytest.mark.parametrize(("index", "vector"), by_id(SPEC["vectors"]))
def test_python_reproduces_the_vectors(index: int, vector: dict[str, Any]) -> None:
    assert expected_for_vector(vector) == vector["expected"]


def test_the_code_hashes_exactly_the_documented_bytes() -> None:
    fp_t = "sha-256 " + FP_THERAPIST
    fp_c = "sha-256 " + FP_CLIENT
    digest = hashlib.sha256(b"attune-sas-v1" + fp_t.encode() + fp_c.encode() + N_T + N_C).digest()
    assert sas_bytes(FP_THERAPIST.lower(), "sha-256 " + FP_CLIENT, N_T, N_C) == digest
    digits = int.from_bytes(digest[:3], "big")
    assert sas_code(FP_THERAPIST, FP_CLIENT, N_T, N_C) == (
        f"{digits >> 12:04o} {digits & 0o7777:04o}"
    )
    assert commitment(N_T) == hashlib.sha256(b"attune-commit-v1" + N_T).digest()


@pytest.mark.parametrize(
    "written",
    [
        pytest.param("sha-256 " + FP_THERAPIST, id="SDP form"),
        pytest.param(FP_THERAPIST, id="getStats form"),
        pytest.param(FP_THERAPIST.lower(), id="lowercase hex"),
        pytest.param("SHA-256 " + FP_THERAPIST.lower(), id="uppercase algorithm"),
        pytest.param("sha-256\t  " + FP_THERAPIST, id="tab and spaces after the algorithm"),
        pytest.param("\r\n sha-256 " + FP_THERAPIST + " \n", id="blanks around"),
    ],
)
def test_every_way_of_writing_a_fingerprint_gives_the_same_bytes(written: str) -> None:
    assert normalize_fingerprint(written) == ("sha-256 " + FP_THERAPIST).encode("ascii")
    assert len(normalize_fingerprint(written)) == 103


@pytest.mark.parametrize("fingerprint", SPEC["invalid_fingerprints"])
def test_python_rejects_what_is_not_a_sha256_fingerprint(fingerprint: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 certificate fingerprint"):
        normalize_fingerprint(fingerprint)


@pytest.mark.parametrize(("index", "group"), by_id(SPEC["group_vectors"]))
def test_python_reproduces_the_group_vectors(index: int, group: dict[str, Any]) -> None:
    assert expected_for_group(group) == group["expected"]


def test_in_a_group_every_pair_is_checked_once_and_the_earlier_admitted_commits() -> None:
    orders = {"guest": 2, "therapist": 0, "client-b": 3, "client-a": 1}
    assert group_pairs(orders) == [
        ("therapist", "client-a"),
        ("therapist", "guest"),
        ("therapist", "client-b"),
        ("client-a", "guest"),
        ("client-a", "client-b"),
        ("guest", "client-b"),
    ]
    assert group_pairs({"therapist": 0, "client": 1}) == [("therapist", "client")]


def test_a_group_where_two_people_share_an_order_is_refused() -> None:
    with pytest.raises(ValueError, match="never share an order"):
        group_pairs({"therapist": 0, "client-a": 1, "client-b": 1})


def test_a_middleman_on_one_pair_of_a_group_shows_on_that_pair_only() -> None:
    fps = {name: fingerprint_of(name.encode()) for name in ("therapist", "client-a", "guest")}
    codes = {}
    for committer, responder in group_pairs({"therapist": 0, "client-a": 1, "guest": 2}):
        initiator, answerer = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
        run_exchange(initiator, answerer)
        # Mallory sits between client-a and the guest: each sees her certificate, not the other's
        attacked = {committer, responder} == {"client-a", "guest"}
        seen_by_responder = fingerprint_of(b"Mallory") if attacked else fps[committer]
        seen_by_committer = fingerprint_of(b"Mallory 2") if attacked else fps[responder]
        codes[(committer, responder)] = (
            initiator.sas_code(fps[committer], seen_by_committer),
            answerer.sas_code(seen_by_responder, fps[responder]),
        )
    assert {pair for pair, (a, b) in codes.items() if a != b} == {("client-a", "guest")}


@pytest.mark.parametrize(("index", "case"), by_id(SPEC["protocol_cases"]))
def test_python_follows_the_scripted_exchanges(index: int, case: dict[str, Any]) -> None:
    assert run_case(case) == case["expected"]


# --- the same vectors, in JavaScript ----------------------------------------------------------


@pytest.fixture(scope="module")
def javascript_results() -> dict[str, Any]:
    if NODE is None:
        pytest.skip("node is not installed: the JavaScript twin cannot be checked here")
    finished = subprocess.run(
        [NODE, str(CHECK_SCRIPT), str(VECTORS_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    results: dict[str, Any] = json.loads(finished.stdout)
    return results


@pytest.mark.parametrize(("index", "vector"), by_id(SPEC["vectors"]))
def test_javascript_reproduces_the_vectors(
    javascript_results: dict[str, Any], index: int, vector: dict[str, Any]
) -> None:
    assert javascript_results["vectors"][index] == vector["expected"]


@pytest.mark.parametrize(("index", "group"), by_id(SPEC["group_vectors"]))
def test_javascript_reproduces_the_group_vectors(
    javascript_results: dict[str, Any], index: int, group: dict[str, Any]
) -> None:
    assert javascript_results["group_vectors"][index] == group["expected"]


def test_javascript_rejects_the_same_fingerprints(javascript_results: dict[str, Any]) -> None:
    assert javascript_results["invalid_fingerprints"] == [None] * len(SPEC["invalid_fingerprints"])


@pytest.mark.parametrize(("index", "case"), by_id(SPEC["protocol_cases"]))
def test_javascript_follows_the_scripted_exchanges(
    javascript_results: dict[str, Any], index: int, case: dict[str, Any]
) -> None:
    assert javascript_results["protocol_cases"][index] == case["expected"]


def test_javascript_aborts_when_a_second_reveal_arrives_while_it_checks_the_first(
    javascript_results: dict[str, Any],
) -> None:
    # WebCrypto hashes asynchronously; a message overlapping that await is out of order
    assert javascript_results["overlapping_reveals"] == {
        "outcomes": [{"error": True}, {"error": True}],
        "final_state": "aborted",
    }


# --- what the exchange protects against -------------------------------------------------------


def run_exchange(
    therapist: CommitRevealInitiator, client: CommitRevealResponder
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    commit = therapist.start()
    nonce = client.receive(commit)
    assert nonce is not None
    reveal = therapist.receive(nonce)
    assert client.receive(reveal) is None
    return commit, nonce, reveal


def test_both_sides_of_a_direct_call_show_the_same_code() -> None:
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    run_exchange(therapist, client)
    # each side names the certificate it uses and the one it sees for the other side
    assert therapist.sas_code(FP_THERAPIST, FP_CLIENT) == client.sas_code(FP_THERAPIST, FP_CLIENT)
    assert therapist.state is client.state is SasState.COMPLETE


def test_a_relay_that_swaps_certificates_yields_different_codes() -> None:
    # Mallory terminates DTLS towards each side with her own certificates and forwards the
    # data-channel messages unchanged.
    fp_mallory_to_therapist = fingerprint_of(b"Mallory's certificate towards the therapist")
    fp_mallory_to_client = fingerprint_of(b"Mallory's certificate towards the client")
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    run_exchange(therapist, client)
    therapist_sees = therapist.sas_code(FP_THERAPIST, fp_mallory_to_therapist)
    client_sees = client.sas_code(fp_mallory_to_client, FP_CLIENT)
    assert therapist_sees != client_sees


def test_a_relay_that_runs_its_own_exchanges_on_each_leg_yields_different_codes() -> None:
    fp_mallory_to_therapist = fingerprint_of(b"Mallory towards the therapist")
    fp_mallory_to_client = fingerprint_of(b"Mallory towards the client")
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    mallory_as_client = CommitRevealResponder(bytes(32))
    mallory_as_therapist = CommitRevealInitiator(bytes([255]) * 32)
    run_exchange(therapist, mallory_as_client)
    run_exchange(mallory_as_therapist, client)
    assert therapist.sas_code(FP_THERAPIST, fp_mallory_to_therapist) != client.sas_code(
        fp_mallory_to_client, FP_CLIENT
    )


def test_a_reveal_before_the_commit_aborts_the_client_for_good() -> None:
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    commit = therapist.start()
    early_reveal = {"t": "sas-reveal", "n": encode_b64url(N_T)}
    with pytest.raises(SasProtocolError, match="out of order"):
        client.receive(early_reveal)
    assert client.state is SasState.ABORTED
    with pytest.raises(SasProtocolError, match="aborted"):
        client.receive(commit)


def test_a_reveal_that_does_not_match_the_commitment_aborts() -> None:
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    client.receive(therapist.start())
    # a middleman who committed to one nonce and, having seen nC, reveals another
    with pytest.raises(SasProtocolError, match="does not match the commitment"):
        client.receive({"t": "sas-reveal", "n": encode_b64url(bytes(32))})
    assert client.state is SasState.ABORTED
    with pytest.raises(SasProtocolError, match="not complete"):
        client.sas_code(FP_THERAPIST, FP_CLIENT)


def test_a_nonce_before_the_commit_aborts_the_therapist() -> None:
    therapist = CommitRevealInitiator(N_T)
    with pytest.raises(SasProtocolError, match="out of order"):
        therapist.receive({"t": "sas-nonce", "n": encode_b64url(N_C)})
    assert therapist.state is SasState.ABORTED


def test_no_code_before_the_exchange_is_complete() -> None:
    therapist, client = CommitRevealInitiator(N_T), CommitRevealResponder(N_C)
    client.receive(therapist.start())
    for side in (therapist, client):
        with pytest.raises(SasProtocolError, match="not complete"):
            side.sas_code(FP_THERAPIST, FP_CLIENT)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: commitment(b"short"), id="commitment"),
        pytest.param(lambda: sas_bytes(FP_THERAPIST, FP_CLIENT, N_T, N_C + b"!"), id="sas_bytes"),
        pytest.param(lambda: CommitRevealInitiator(bytes(16)), id="initiator"),
        pytest.param(lambda: CommitRevealResponder(bytes(33)), id="responder"),
    ],
)
def test_nonces_must_be_32_bytes(call: Any) -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        call()


@given(
    n_t=st.binary(min_size=32, max_size=32),
    n_c=st.binary(min_size=32, max_size=32),
    cert_t=st.binary(max_size=8),
    cert_c=st.binary(max_size=8),
)
@settings(max_examples=50, deadline=None)
def test_the_code_is_the_first_24_bits_as_eight_octal_digits_and_both_sides_agree(
    n_t: bytes, n_c: bytes, cert_t: bytes, cert_c: bytes
) -> None:
    fp_t, fp_c = fingerprint_of(b"t" + cert_t), fingerprint_of(b"c" + cert_c)
    therapist, client = CommitRevealInitiator(n_t), CommitRevealResponder(n_c)
    run_exchange(therapist, client)
    code = therapist.sas_code(fp_t, fp_c)
    assert code == client.sas_code(fp_t, fp_c)
    assert len(code) == 9 and code[4] == " " and set(code.replace(" ", "")) <= set("01234567")
    assert int(code.replace(" ", ""), 8) == int.from_bytes(
        sas_bytes(fp_t, fp_c, n_t, n_c)[:3], "big"
    )


def regenerate_expected_values() -> None:
    """Recompute every "expected" field of sas_vectors.json from its inputs (Python is truth)."""
    for vector in SPEC["vectors"]:
        vector["expected"] = expected_for_vector(vector)
    for case in SPEC["protocol_cases"]:
        case["expected"] = run_case(case)
    for group in SPEC["group_vectors"]:
        group["expected"] = expected_for_group(group)
    VECTORS_PATH.write_text(json.dumps(SPEC, indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    regenerate_expected_values()
    sys.exit(0)
