"""Cues with several people: every client's own rules, the couples prompt, talk-over between
clients, guests never inputs, and a state that travels to another process."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable

import pytest

from server.core.cues import Category, CueConfig, CueEngine, FeatureFrame, Prompt
from server.core.cues.group import GroupCueEngine, UnknownPeerError
from server.core.cues.group_synthetic import (
    GROUP_SCENARIOS,
    GUEST,
    PARTNER_A,
    PARTNER_B,
    PeerFrame,
    frames_from_group_speech,
    group_scenario,
)
from server.core.cues.synthetic import SCENARIOS, scenario_frames
from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.core.protocol import SessionRole

MINUTE = 60_000
PARTNER_C = "partner-c"

# scenario -> {(category, the peers it names)}
EXPECTED: dict[str, set[tuple[Category, tuple[str, ...]]]] = {
    "couple_balanced": set(),
    "couple_dominant": {
        (Category.COUPLE_BALANCE, (PARTNER_A,)),  # A holds most of the partners' speech
        (Category.TALK_IMBALANCE, (PARTNER_B,)),  # and B has little room beside the therapist
    },
    "couple_talk_over": {(Category.CLIENT_TALK_OVER, (PARTNER_A, PARTNER_B))},
}


def feed(engine: GroupCueEngine, frames: Iterable[PeerFrame]) -> list[Prompt]:
    """What the live edge does: a guest's frames are dropped before the engine."""
    return [
        prompt
        for peer, kind, frame in frames
        if kind is not PersonKind.GUEST
        for prompt in engine.feed(peer, frame)
    ]


def test_every_group_scenario_has_an_expectation() -> None:
    assert set(EXPECTED) == set(GROUP_SCENARIOS)


@pytest.mark.parametrize(("scenario", "expected"), EXPECTED.items(), ids=list(EXPECTED))
@pytest.mark.parametrize("seed", [0, 1])
def test_a_couple_scenario_raises_exactly_its_prompts_naming_the_right_clients(
    scenario: str, expected: set[tuple[Category, tuple[str, ...]]], seed: int
) -> None:
    prompts = feed(GroupCueEngine(), group_scenario(scenario, seed=seed))
    assert {(p.category, p.peers) for p in prompts} == expected
    for prompt in prompts:
        assert "Consider" in prompt.text and prompt.reasons
        assert PARTNER_A not in prompt.text and PARTNER_B not in prompt.text  # ids stay data
    assert len({p.id for p in prompts}) == len(prompts)


def test_the_scenarios_have_a_guest_who_speaks_and_whose_frames_are_never_fed() -> None:
    frames = group_scenario("couple_balanced", minutes=3)
    guest = [frame for peer, kind, frame in frames if kind is PersonKind.GUEST]
    assert guest and all(peer == GUEST for peer, kind, _ in frames if kind is PersonKind.GUEST)
    assert any(frame.voiced for frame in guest)
    engine = GroupCueEngine()
    feed(engine, frames)
    assert engine.clients == (PARTNER_A, PARTNER_B)
    assert set(engine.talk_shares()) == {THERAPIST_PEER_ID, PARTNER_A, PARTNER_B}


def test_talk_share_per_person_adds_up_to_one_and_follows_who_spoke() -> None:
    engine = GroupCueEngine()
    feed(engine, group_scenario("couple_dominant", minutes=12))
    shares = engine.talk_shares()
    assert sum(share or 0 for share in shares.values()) == pytest.approx(1.0)
    a, b = shares[PARTNER_A], shares[PARTNER_B]
    assert a is not None and b is not None and a > 5 * b


def test_talk_share_says_nothing_about_too_little_speech() -> None:
    engine = GroupCueEngine()
    feed(engine, frames_from_group_speech({THERAPIST_PEER_ID: [(1000, 5000)]}, 20_000))
    assert engine.talk_shares() == {THERAPIST_PEER_ID: None}


# -- every existing rule, per client --------------------------------------------------------


def _from_first_client_frame(scenario: str) -> list[FeatureFrame]:
    """A client's analysis starts with their first frame: the therapist's before it are moot."""
    frames = list(scenario_frames(scenario))
    first = next(n for n, f in enumerate(frames) if f.role is SessionRole.CLIENT)
    return frames[first:]


def _as_group(frames: Iterable[FeatureFrame], client: str = PARTNER_A) -> list[PeerFrame]:
    return [
        (THERAPIST_PEER_ID if f.role is SessionRole.THERAPIST else client, PersonKind.CLIENT, f)
        for f in frames
    ]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_with_one_client_the_group_engine_raises_what_the_pair_engine_raises(scenario: str) -> None:
    frames = _from_first_client_frame(scenario)
    single = CueEngine()
    alone = [p for frame in frames for p in single.feed(frame)]
    assert feed(GroupCueEngine(), _as_group(frames)) == alone


def _with_silent_partner(scenario: str) -> list[PeerFrame]:
    """The scenario's client is partner A; partner B is present, still and silent."""
    frames = _as_group(_from_first_client_frame(scenario))
    quiet = [
        (PARTNER_B, PersonKind.CLIENT, dataclasses.replace(f, t_ms=f.t_ms + 50, voiced=()))
        for peer, _, f in frames
        if peer == PARTNER_A
    ]
    return sorted(frames + quiet, key=lambda item: item[2].t_ms)


@pytest.mark.parametrize(
    "scenario", ["withdrawal", "monologue", "slow_responses", "high_lag", "out_of_frame"]
)
def test_each_clients_own_rules_run_with_a_partner_in_the_room(scenario: str) -> None:
    single = CueEngine()
    frames = _from_first_client_frame(scenario)
    alone = [(p.category, p.t_ms) for f in frames for p in single.feed(f)]
    prompts = feed(GroupCueEngine(), _with_silent_partner(scenario))
    own = [(p.category, p.t_ms) for p in prompts if p.peers == (PARTNER_A,) and p.id[1] != "g"]
    assert own == alone
    # and the partners together: A does all of the partners' talking
    assert {p.category for p in prompts if p.id.startswith("pg")} <= {Category.COUPLE_BALANCE}


# -- a partner's speech is no client's silence ----------------------------------------------


def _with_other_speech_in_every_gap(scenario: str, engine: CueEngine) -> list[Prompt]:
    """Feed a two-party scenario while someone else speaks whenever both of them are silent."""
    frames = list(scenario_frames(scenario))
    prompts = []
    for frame in frames:
        if frame.role is SessionRole.THERAPIST:
            engine.note_other_speech(((frame.t_ms - frame.window_ms, frame.t_ms),))
        prompts.extend(engine.feed(frame))
    return prompts


def test_response_gaps_another_client_filled_are_not_the_clients_latency() -> None:
    plain = CueEngine()
    assert Category.RESPONSE_LATENCY in {
        p.category for f in scenario_frames("slow_responses") for p in plain.feed(f)
    }
    filled = _with_other_speech_in_every_gap("slow_responses", CueEngine())
    assert Category.RESPONSE_LATENCY not in {p.category for p in filled}


def test_silences_another_client_filled_are_not_unanswered_openings() -> None:
    plain = CueEngine()
    reasons = [
        r.signal for f in scenario_frames("withdrawal") for p in plain.feed(f) for r in p.reasons
    ]
    assert "therapist_reentries_after_silence" in reasons
    filled = _with_other_speech_in_every_gap("withdrawal", CueEngine())
    assert "therapist_reentries_after_silence" not in [r.signal for p in filled for r in p.reasons]


# -- the couples prompt ---------------------------------------------------------------------


def _alternating(
    share_a: float, minutes: float, *, clients: tuple[str, ...] = (PARTNER_A, PARTNER_B)
) -> list[PeerFrame]:
    """The partners take turns of 10 s in all: A speaks `share_a` of each, the others split
    the rest; the therapist listens."""
    speech: dict[str, list[tuple[int, int]]] = {THERAPIST_PEER_ID: [], **{c: [] for c in clients}}
    t = 1_000
    while t < minutes * MINUTE - 12_000:
        a_ms = int(10_000 * share_a)
        speech[PARTNER_A].append((t, t + a_ms))
        t += a_ms + 200
        rest = (10_000 - a_ms) // (len(clients) - 1)
        for other in clients[1:]:
            speech[other].append((t, t + rest))
            t += rest + 200
    return frames_from_group_speech(speech, int(minutes * MINUTE))


@pytest.mark.parametrize(
    ("share_a", "config", "fires"),
    [
        (0.68, CueConfig(), False),  # below 70 %
        (0.72, CueConfig(), True),  # at or above 70 %
        (0.90, CueConfig(), True),
        (0.50, CueConfig(), False),  # even
        (0.62, CueConfig(couple_share_max=0.6), True),  # the threshold is configurable
        (0.62, CueConfig(couple_share_max=0.65), False),
    ],
)
def test_couple_balance_needs_one_client_at_or_above_the_share(
    share_a: float, config: CueConfig, fires: bool
) -> None:
    prompts = feed(GroupCueEngine(config), _alternating(share_a, 12))
    balance = [p for p in prompts if p.category is Category.COUPLE_BALANCE]
    assert bool(balance) is fires
    if fires:
        assert balance[0].peers == (PARTNER_A,)
        shown = int(re.search(r"(\d+) %", balance[0].text).group(1))  # type: ignore[union-attr]
        assert abs(shown - share_a * 100) <= 2


def test_couple_balance_waits_for_a_whole_window_with_both_clients_present() -> None:
    prompts = feed(GroupCueEngine(), _alternating(0.9, 12))
    first = next(p for p in prompts if p.category is Category.COUPLE_BALANCE)
    assert 10 * MINUTE <= first.t_ms <= 10 * MINUTE + 5_000
    shorter = CueConfig(couple_window_ms=5 * MINUTE)  # the window is configurable
    early = feed(GroupCueEngine(shorter), _alternating(0.9, 12))
    assert next(p for p in early if p.category is Category.COUPLE_BALANCE).t_ms < 6 * MINUTE


def test_couple_balance_makes_no_claim_about_a_client_who_left() -> None:
    frames = [item for item in _alternating(0.9, 12) if item[0] != PARTNER_B]
    prompts = feed(GroupCueEngine(), frames)
    assert Category.COUPLE_BALANCE not in {p.category for p in prompts}


def test_couple_balance_makes_no_claim_on_little_speech() -> None:
    config = CueConfig(couple_min_speech_ms=595_000)  # more than 10 minutes of turns hold
    prompts = feed(GroupCueEngine(config), _alternating(0.9, 12))
    assert Category.COUPLE_BALANCE not in {p.category for p in prompts}


def test_with_three_clients_the_prompt_asks_room_for_the_others() -> None:
    frames = _alternating(0.8, 12, clients=(PARTNER_A, PARTNER_B, PARTNER_C))
    prompts = feed(GroupCueEngine(), frames)
    balance = next(p for p in prompts if p.category is Category.COUPLE_BALANCE)
    assert balance.peers == (PARTNER_A,) and "the others" in balance.text


# -- talk-over between clients --------------------------------------------------------------


def _collisions(count: int, overlap_ms: int, *, rtt_ms: float = 80.0) -> list[PeerFrame]:
    """Partners who cut in on each other `count` times, once every 30 s, from minute 1."""
    speech: dict[str, list[tuple[int, int]]] = {THERAPIST_PEER_ID: [], PARTNER_A: [], PARTNER_B: []}
    for n in range(count):
        t = MINUTE + n * 30_000
        speech[PARTNER_A].append((t, t + 5_000))
        speech[PARTNER_B].append((t + 5_000 - overlap_ms, t + 9_000))
    frames = frames_from_group_speech(speech, 4 * MINUTE)
    return [
        (peer, kind, dataclasses.replace(f, net=dataclasses.replace(f.net, rtt_ms=rtt_ms)))
        if f.net
        else (peer, kind, f)
        for peer, kind, f in frames
    ]


@pytest.mark.parametrize(
    ("count", "overlap_ms", "rtt_ms", "fires"),
    [
        (3, 1_500, 80.0, True),  # three long overlaps within 2 min
        (2, 1_500, 80.0, False),  # two are not enough
        (3, 400, 80.0, False),  # short overlaps are back-channels
        (3, 1_500, 1_200.0, False),  # severe lag: the overlaps measure the network
    ],
)
def test_talk_over_between_clients(count: int, overlap_ms: int, rtt_ms: float, fires: bool) -> None:
    prompts = feed(GroupCueEngine(), _collisions(count, overlap_ms, rtt_ms=rtt_ms))
    over = [p for p in prompts if p.category is Category.CLIENT_TALK_OVER]
    assert bool(over) is fires
    if fires:
        assert over[0].peers == (PARTNER_A, PARTNER_B)
        assert "slowing the exchange" in over[0].text


def test_talk_over_between_clients_on_a_slow_link_names_the_delay() -> None:
    prompts = feed(GroupCueEngine(), _collisions(3, 1_500, rtt_ms=500.0))
    over = next(p for p in prompts if p.category is Category.CLIENT_TALK_OVER)
    assert "delay" in over.text


# -- controls, limits and takeover ----------------------------------------------------------


def test_a_fourth_client_or_a_mismatched_role_is_refused() -> None:
    engine = GroupCueEngine()
    frame = scenario_frames("balanced", minutes=1).__next__()
    client = dataclasses.replace(frame, role=SessionRole.CLIENT)
    for peer in ("a", "b", "c"):
        engine.feed(peer, client)
    with pytest.raises(UnknownPeerError):
        engine.feed("d", client)
    with pytest.raises(UnknownPeerError):
        engine.feed("a", dataclasses.replace(frame, role=SessionRole.THERAPIST, t_ms=9_000))
    with pytest.raises(UnknownPeerError):
        engine.feed(THERAPIST_PEER_ID, dataclasses.replace(client, t_ms=9_000))


def test_mute_feedback_and_ids_reach_the_right_engine() -> None:
    engine = GroupCueEngine()
    prompts = feed(engine, group_scenario("couple_dominant"))
    group_prompt = next(p for p in prompts if p.category is Category.COUPLE_BALANCE)
    pair_prompt = next(p for p in prompts if p.category is Category.TALK_IMBALANCE)
    assert group_prompt.id.startswith("pg") and pair_prompt.id.startswith("p2.")
    assert engine.category_of(pair_prompt.id) is Category.TALK_IMBALANCE
    assert engine.feedback(group_prompt.id, "helpful", 1).category is Category.COUPLE_BALANCE
    assert engine.feedback(pair_prompt.id, "not-now", 1).category is Category.TALK_IMBALANCE
    muted = GroupCueEngine()
    muted.mute(Category.COUPLE_BALANCE)
    muted.mute(Category.TALK_IMBALANCE)
    feed(muted, group_scenario("couple_dominant", minutes=1))  # the pairs exist now
    muted.mute(Category.TALK_IMBALANCE)
    assert feed(muted, group_scenario("couple_dominant")[1:]) == []


@pytest.mark.parametrize("scenario", list(GROUP_SCENARIOS))
def test_a_group_engine_taken_over_mid_session_raises_the_same_prompts(scenario: str) -> None:
    frames = group_scenario(scenario)
    whole = feed(GroupCueEngine(), frames)
    half = len(frames) // 2
    first = GroupCueEngine()
    before = feed(first, frames[:half])
    carried = json.loads(json.dumps(first.carried_state()))
    assert len(json.dumps(carried)) < 16_000
    after = feed(GroupCueEngine.from_carried(carried), frames[half:])
    assert before + after == whole


@pytest.mark.parametrize(
    "broken",
    [{}, {"seq": 1, "policy": {}, "clients": "x"}, {"seq": 1, "policy": {}, "clients": [[1, {}]]}],
)
def test_a_group_state_that_does_not_fit_is_refused(broken: dict) -> None:
    with pytest.raises(ValueError):
        GroupCueEngine.from_carried(broken)


def test_group_state_stays_flat_over_a_long_session() -> None:
    engine = GroupCueEngine()
    sizes = {}
    for peer, kind, frame in group_scenario("couple_balanced", minutes=90):
        if kind is not PersonKind.GUEST:
            engine.feed(peer, frame)
            if frame.t_ms // 1000 % 600 == 0:
                sizes[frame.t_ms // MINUTE] = engine.state_size()
    assert max(sizes.values()) - sizes[30] <= 12


def test_forgetting_a_client_keeps_the_others_analysis_and_their_prompt_ids() -> None:
    frames = group_scenario("couple_dominant")
    engine = GroupCueEngine()
    feed(engine, frames[: len(frames) // 2])
    engine.forget(PARTNER_B)
    assert engine.clients == (PARTNER_A,)
    later = feed(engine, [f for f in frames[len(frames) // 2 :] if f[0] != PARTNER_B])
    assert all(p.peers in ((), (PARTNER_A,)) for p in later)
    engine.feed(PARTNER_C, dataclasses.replace(frames[-1][2], role=SessionRole.CLIENT))
    assert engine.pair(PARTNER_C).prompt_id_prefix == "p3."  # never a forgotten one's again
    carried = json.loads(json.dumps(engine.carried_state()))
    assert GroupCueEngine.from_carried(carried).pair(PARTNER_C).prompt_id_prefix == "p3."
