"""Check-in instruments: FHIR R4 Questionnaire-shaped JSON parsed into frozen dataclasses.

An instrument file is a valid R4 ``Questionnaire`` with a few extensions of ours (under
``ATTUNE_SD``): the instrument kind, the intro and client-note lines, each item's score role,
slider anchors, a therapist-facing label and repair hint, and the alert rules. The alert rules
are a complex extension whose sub-extensions map a rule key to a ``valueInteger``; that is
the R4-valid way to carry a small JSON object, and the rule keys are checked per kind.

Loading the shipped and admin-supplied files is the only I/O here; it happens at start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, TypeGuard

from server.core.checkins.translations import (
    ATTUNE_SD as ATTUNE_SD,  # re-exported: the measures use the same prefix
)
from server.core.checkins.translations import (
    SOURCE_LANGUAGE,
    TranslationError,
    languages,
    localized,
    source_language,
)

EXT_KIND: Final = ATTUNE_SD + "instrument-kind"
EXT_INTRO: Final = ATTUNE_SD + "intro"
EXT_CLIENT_NOTE: Final = ATTUNE_SD + "client-note"
EXT_ALERT_RULES: Final = ATTUNE_SD + "alert-rules"
EXT_SCORE_ROLE: Final = ATTUNE_SD + "score-role"
EXT_ANCHOR_LOW: Final = ATTUNE_SD + "anchor-low"
EXT_ANCHOR_HIGH: Final = ATTUNE_SD + "anchor-high"
EXT_THERAPIST_LABEL: Final = ATTUNE_SD + "therapist-label"
EXT_REPAIR_HINT: Final = ATTUNE_SD + "repair-hint"
EXT_SKIPPED: Final = ATTUNE_SD + "skipped"
FHIR_MIN_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/minValue"
FHIR_MAX_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/maxValue"
FHIR_ITEM_CONTROL: Final = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"

_INSTRUMENT_EXTENSIONS: Final = frozenset({EXT_KIND, EXT_INTRO, EXT_CLIENT_NOTE, EXT_ALERT_RULES})
_ITEM_EXTENSIONS: Final = frozenset(
    {EXT_SCORE_ROLE, EXT_ANCHOR_LOW, EXT_ANCHOR_HIGH, EXT_THERAPIST_LABEL, EXT_REPAIR_HINT}
)

InstrumentKind: TypeAlias = Literal["before", "pulse", "after"]
ItemType: TypeAlias = Literal["integer", "choice", "text"]
ScoreRole: TypeAlias = Literal[
    "alliance",
    "technology",
    "wellbeing",
    "pulse",
    "rupture",
    "rupture-repair",
    "free-text",
    "unscored",
]
RuptureLevel: TypeAlias = Literal["no", "a-little", "quite-a-bit"]
RepairAnswer: TypeAlias = Literal["yes", "partly", "no"]
EnableOperator: TypeAlias = Literal["=", "!=", "exists"]
AnswerValue: TypeAlias = int | str | None

KINDS: Final[tuple[InstrumentKind, ...]] = ("before", "pulse", "after")
ITEM_TYPES: Final[tuple[ItemType, ...]] = ("integer", "choice", "text")
SCORE_ROLES: Final[tuple[ScoreRole, ...]] = (
    "alliance",
    "technology",
    "wellbeing",
    "pulse",
    "rupture",
    "rupture-repair",
    "free-text",
    "unscored",
)
RUPTURE_LEVELS: Final[tuple[RuptureLevel, ...]] = ("no", "a-little", "quite-a-bit")
REPAIR_ANSWERS: Final[tuple[RepairAnswer, ...]] = ("yes", "partly", "no")
ENABLE_OPERATORS: Final[tuple[EnableOperator, ...]] = ("=", "!=", "exists")
SLIDER_CONTROLS: Final = ("slider", "radio-button")

# The item type each score role needs; None means any supported type.
_ROLE_TYPE: Final[Mapping[ScoreRole, ItemType | None]] = {
    "alliance": "integer",
    "technology": "integer",
    "wellbeing": "integer",
    "pulse": "integer",
    "rupture": "choice",
    "rupture-repair": "choice",
    "free-text": "text",
    "unscored": None,
}
# Roles the scoring reads as a single value, so an instrument may carry at most one of each.
_SINGLE_ROLES: Final[tuple[ScoreRole, ...]] = ("technology", "pulse", "rupture", "rupture-repair")
# Choice roles whose answer codes the scoring and alert rules interpret.
_ROLE_CODES: Final[Mapping[ScoreRole, tuple[str, ...]]] = {
    "rupture": RUPTURE_LEVELS,
    "rupture-repair": REPAIR_ANSWERS,
}
_MAX_SCALE_SPAN: Final = 100
_MAX_TEXT_LENGTH: Final = 10_000
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class InstrumentError(ValueError):
    """An instrument file is malformed; the message names the file and the item."""

    def __init__(self, source: str, message: str, link_id: str | None = None) -> None:
        where = f"{source}: item {link_id!r}" if link_id is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.link_id = link_id


class AnswerError(ValueError):
    """A submitted answer does not fit its instrument; the message names the item."""

    def __init__(self, link_id: str, message: str) -> None:
        super().__init__(f"item {link_id!r}: {message}")
        self.link_id = link_id


@dataclass(frozen=True)
class AfterRules:
    """Alert thresholds of an after-session instrument (defaults are DESIGN §6's)."""

    alliance_total_below: int = 36
    alliance_item_at_or_below: int = 8
    drop_from_previous_at_least: int = 2
    technology_at_or_below: int = 6
    perfect_score_sessions_up_to: int = 3
    # Couples and family sessions: partners' alliance totals this far apart are a split alliance.
    split_alliance_at_least: int = 8


@dataclass(frozen=True)
class PulseRules:
    """Alert thresholds of a mid-session pulse instrument."""

    pulse_at_or_below: int = 2
    pulse_fall_at_least: int = 2


@dataclass(frozen=True)
class BeforeRules:
    """Informational threshold of a before-session instrument (not an alliance alert)."""

    wellbeing_total_below: int = 25


AlertRules: TypeAlias = AfterRules | PulseRules | BeforeRules
_RULES_FOR_KIND: Final[Mapping[InstrumentKind, type[AlertRules]]] = {
    "before": BeforeRules,
    "pulse": PulseRules,
    "after": AfterRules,
}


@dataclass(frozen=True)
class AnswerOption:
    """One choice of a choice item: the code is what clients submit and scoring reads."""

    code: str
    display: str
    system: str | None = None


@dataclass(frozen=True)
class EnableWhen:
    """One FHIR enableWhen condition on an earlier item."""

    question: str
    operator: EnableOperator
    answer: int | str | bool


@dataclass(frozen=True)
class Item:
    """One question of an instrument."""

    link_id: str
    text: str
    type: ItemType
    role: ScoreRole
    min_value: int | None = None
    max_value: int | None = None
    anchor_low: str | None = None
    anchor_high: str | None = None
    control: str | None = None
    options: tuple[AnswerOption, ...] = ()
    max_length: int | None = None
    enable_when: tuple[EnableWhen, ...] = ()
    enable_behavior: Literal["all", "any"] = "all"
    therapist_label: str | None = None
    repair_hint: str | None = None

    @property
    def label(self) -> str:
        """Short name of the item for the therapist's view."""
        return self.therapist_label or self.text

    @property
    def option_codes(self) -> tuple[str, ...]:
        """Codes a client may submit for a choice item."""
        return tuple(option.code for option in self.options)

    def option(self, code: str) -> AnswerOption:
        """The answer option with this code."""
        for option in self.options:
            if option.code == code:
                return option
        raise KeyError(code)


@dataclass(frozen=True)
class Instrument:
    """A parsed, validated check-in instrument."""

    id: str
    version: str
    url: str
    title: str
    kind: InstrumentKind
    intro: str
    client_note: str
    items: tuple[Item, ...]
    rules: AlertRules
    source: str = "<inline>"
    resource_json: str = field(default="{}", repr=False, compare=False)
    language: str = SOURCE_LANGUAGE
    """The language the file's own texts are written in (`Questionnaire.language`)."""
    languages: frozenset[str] = frozenset({SOURCE_LANGUAGE})
    """The languages every client-facing text is written or translated in (translations.py)."""

    @property
    def canonical(self) -> str:
        """FHIR canonical reference ``url|version``."""
        return f"{self.url}|{self.version}"

    def item(self, link_id: str) -> Item:
        """The item with this linkId."""
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)

    def items_with_role(self, role: ScoreRole) -> tuple[Item, ...]:
        """Items that play this role in scoring, in form order."""
        return tuple(item for item in self.items if item.role == role)

    def in_language(self, language: str) -> Instrument:
        """The instrument as a client reads it in `language` (texts, anchors and option
        displays translated; codes, rules and scoring the same); KeyError for a language it
        is not translated into."""
        if language not in self.languages:
            raise KeyError(language)
        resource = localized(json.loads(self.resource_json), language)
        return load_instrument(resource, source=self.source)


@dataclass(frozen=True)
class Answer:
    """One item's answer; a skip is recorded as a skip, never as a value."""

    link_id: str
    value: int | str | None
    skipped: bool

    def __post_init__(self) -> None:
        if self.skipped != (self.value is None):
            raise ValueError("an answer is either skipped (value None) or has a value")


@dataclass(frozen=True)
class Response:
    """A validated set of answers: one per item the client was shown, in form order."""

    instrument_id: str
    instrument_version: str
    answers: tuple[Answer, ...]

    def get(self, link_id: str) -> Answer | None:
        """The answer to this item, or None if the item was not shown."""
        for answer in self.answers:
            if answer.link_id == link_id:
                return answer
        return None

    def value(self, link_id: str) -> int | str | None:
        """The value given for this item, or None if skipped or not shown."""
        answer = self.get(link_id)
        return None if answer is None else answer.value

    @property
    def skipped(self) -> tuple[str, ...]:
        """LinkIds of items shown but skipped."""
        return tuple(answer.link_id for answer in self.answers if answer.skipped)

    def as_raw(self) -> dict[str, int | str | None]:
        """The answers as ``{linkId: value}``; ``validate_answers`` turns it back."""
        return {answer.link_id: answer.value for answer in self.answers}


# --- loading ---------------------------------------------------------------------------


def load_instrument(data: Mapping[str, Any], *, source: str = "<inline>") -> Instrument:
    """Parse and validate one instrument document; raises InstrumentError naming the problem."""
    return _Parser(source).instrument(data)


def load_builtin_instruments() -> dict[str, Instrument]:
    """The shipped instruments by id: "before", "pulse", "after"."""
    folder = resources.files(__name__.rpartition(".")[0]).joinpath("instruments")
    entries = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".json")),
        key=lambda entry: entry.name,
    )
    loaded: dict[str, Instrument] = {}
    for entry in entries:
        instrument = _load_text(entry.read_text(encoding="utf-8"), f"builtin:{entry.name}")
        _add_unique(loaded, instrument, {})
    return loaded


def load_instruments_dir(
    path: str | os.PathLike[str], *, reserved: Mapping[str, Instrument] | None = None
) -> dict[str, Instrument]:
    """Admin instruments from ``*.json`` files in a folder; ids and urls may not clash.

    ``reserved`` defaults to the built-in instruments; the result holds only the folder's.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InstrumentError(str(folder), "is not a folder")
    taken = load_builtin_instruments() if reserved is None else reserved
    loaded: dict[str, Instrument] = {}
    for file in sorted(folder.glob("*.json")):
        instrument = _load_text(file.read_text(encoding="utf-8"), str(file))
        _add_unique(loaded, instrument, taken)
    return loaded


def _load_text(text: str, source: str) -> Instrument:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InstrumentError(source, f"not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise InstrumentError(source, "the document must be a JSON object")
    return load_instrument(data, source=source)


def _add_unique(
    loaded: dict[str, Instrument], instrument: Instrument, reserved: Mapping[str, Instrument]
) -> None:
    for other in (*reserved.values(), *loaded.values()):
        if other.id == instrument.id:
            raise InstrumentError(
                instrument.source, f"id {instrument.id!r} is already used by {other.source}"
            )
        if other.url == instrument.url:
            raise InstrumentError(
                instrument.source, f"url {instrument.url!r} is already used by {other.source}"
            )
    loaded[instrument.id] = instrument


class _Parser:
    """Reads one Questionnaire document; every error names the source (and item)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, link_id: str | None = None) -> InstrumentError:
        return InstrumentError(self.source, message, link_id)

    def instrument(self, data: Mapping[str, Any]) -> Instrument:
        if data.get("resourceType") != "Questionnaire":
            raise self.fail('resourceType must be "Questionnaire"')
        instrument_id = self.string(data, "id")
        if not _FHIR_ID.fullmatch(instrument_id):
            raise self.fail(f"id {instrument_id!r} is not a valid FHIR id")
        if data.get("status") not in ("draft", "active", "retired", "unknown"):
            raise self.fail("status must be a FHIR publication status")
        extensions = self.extensions(data, _INSTRUMENT_EXTENSIONS, None)
        kind = self.choose(self.ext_value(extensions, EXT_KIND, "valueCode", None), KINDS, None)
        items = self.items(data.get("item"))
        self.check_roles(kind, items)
        try:
            spoken = languages(data)
        except TranslationError as error:
            raise self.fail(str(error)) from None
        return Instrument(
            id=instrument_id,
            version=self.string(data, "version"),
            url=self.string(data, "url"),
            title=self.string(data, "title"),
            kind=kind,
            intro=self.ext_value(extensions, EXT_INTRO, "valueString", None),
            client_note=self.ext_value(extensions, EXT_CLIENT_NOTE, "valueString", None),
            items=items,
            rules=self.rules(kind, extensions.get(EXT_ALERT_RULES)),
            source=self.source,
            resource_json=json.dumps(data, ensure_ascii=False),
            language=source_language(data),
            languages=spoken,
        )

    def string(self, data: Mapping[str, Any], key: str, link_id: str | None = None) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key!r} must be a non-empty string", link_id)
        return value

    def choose(self, value: object, allowed: Sequence[str], link_id: str | None) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(f"{value!r} is not one of {', '.join(allowed)}", link_id)
        return value

    def extensions(
        self, data: Mapping[str, Any], known: frozenset[str], link_id: str | None
    ) -> dict[str, Mapping[str, Any]]:
        """Extensions by url; ours must be known (typo guard), others are left to renderers."""
        raw = data.get("extension", [])
        if not isinstance(raw, list):
            raise self.fail("'extension' must be a list", link_id)
        found: dict[str, Mapping[str, Any]] = {}
        for extension in raw:
            if not isinstance(extension, dict) or not isinstance(extension.get("url"), str):
                raise self.fail("every extension needs a url", link_id)
            url = extension["url"]
            if url.startswith(ATTUNE_SD) and url not in known:
                raise self.fail(f"unknown extension {url!r}", link_id)
            if url in found:
                raise self.fail(f"extension {url!r} appears twice", link_id)
            found[url] = extension
        return found

    def ext_value(
        self,
        extensions: Mapping[str, Mapping[str, Any]],
        url: str,
        value_key: Literal["valueString", "valueCode"],
        link_id: str | None,
    ) -> str:
        extension = extensions.get(url)
        if extension is None:
            raise self.fail(f"missing extension {url!r}", link_id)
        return self.string(extension, value_key, link_id)

    def optional_ext_string(
        self, extensions: Mapping[str, Mapping[str, Any]], url: str, link_id: str
    ) -> str | None:
        if url not in extensions:
            return None
        return self.string(extensions[url], "valueString", link_id)

    def ext_integer(
        self, extensions: Mapping[str, Mapping[str, Any]], url: str, link_id: str
    ) -> int:
        extension = extensions.get(url)
        value = None if extension is None else extension.get("valueInteger")
        if not _is_int(value):
            raise self.fail(f"needs extension {url!r} with a valueInteger", link_id)
        return value

    def rules(self, kind: InstrumentKind, extension: Mapping[str, Any] | None) -> AlertRules:
        rules_type = _RULES_FOR_KIND[kind]
        known = [rule.name for rule in fields(rules_type)]
        entries = [] if extension is None else extension.get("extension")
        if not isinstance(entries, list):
            raise self.fail("the alert-rules extension needs a list of sub-extensions")
        values: dict[str, int] = {}
        for entry in entries:
            key = entry.get("url") if isinstance(entry, dict) else None
            if key not in known:
                raise self.fail(
                    f"unknown alert rule {key!r} for a {kind} instrument "
                    f"(known: {', '.join(known)})"
                )
            assert isinstance(entry, dict) and isinstance(key, str)
            value = entry.get("valueInteger")
            if not _is_int(value) or value < 0:
                raise self.fail(f"alert rule {key!r} needs a valueInteger of 0 or more")
            if key in values:
                raise self.fail(f"alert rule {key!r} appears twice")
            values[key] = value
        return rules_type(**values)

    def items(self, raw: object) -> tuple[Item, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("'item' must be a non-empty list")
        items: list[Item] = []
        for entry in raw:
            if not isinstance(entry, dict):
                raise self.fail("every item must be an object")
            items.append(self.item(entry, items))
        return tuple(items)

    def item(self, data: Mapping[str, Any], earlier: Sequence[Item]) -> Item:
        link_id = self.string(data, "linkId")
        if any(item.link_id == link_id for item in earlier):
            raise self.fail("linkId is not unique", link_id)
        item_type: ItemType = self.choose(data.get("type"), ITEM_TYPES, link_id)
        if data.get("required", False) is not False:
            raise self.fail("items must stay optional: a skip is always fine", link_id)
        if data.get("repeats", False) is not False or "item" in data:
            raise self.fail("repeating and nested items are not supported", link_id)
        extensions = self.extensions(data, _ITEM_EXTENSIONS, link_id)
        role: ScoreRole = self.choose(
            self.ext_value(extensions, EXT_SCORE_ROLE, "valueCode", link_id), SCORE_ROLES, link_id
        )
        needed_type = _ROLE_TYPE[role]
        if needed_type is not None and item_type != needed_type:
            raise self.fail(f"score role {role!r} needs type {needed_type!r}", link_id)
        enable_when, behavior = self.enable_when(data, link_id, earlier)
        common: dict[str, Any] = {
            "link_id": link_id,
            "text": self.string(data, "text", link_id),
            "type": item_type,
            "role": role,
            "enable_when": enable_when,
            "enable_behavior": behavior,
            "therapist_label": self.optional_ext_string(extensions, EXT_THERAPIST_LABEL, link_id),
            "repair_hint": self.optional_ext_string(extensions, EXT_REPAIR_HINT, link_id),
            "control": _item_control(extensions),
        }
        if item_type == "integer":
            return self.scale_item(common, extensions)
        if item_type == "choice":
            return self.choice_item(common, data)
        max_length = data.get("maxLength")
        if not _is_int(max_length) or not 1 <= max_length <= _MAX_TEXT_LENGTH:
            raise self.fail(f"text items need a maxLength from 1 to {_MAX_TEXT_LENGTH}", link_id)
        return Item(**common, max_length=max_length)

    def scale_item(
        self, common: dict[str, Any], extensions: Mapping[str, Mapping[str, Any]]
    ) -> Item:
        link_id = common["link_id"]
        low = self.ext_integer(extensions, FHIR_MIN_VALUE, link_id)
        high = self.ext_integer(extensions, FHIR_MAX_VALUE, link_id)
        if not low < high <= low + _MAX_SCALE_SPAN:
            raise self.fail(f"range {low}..{high} is not a usable scale", link_id)
        if common["control"] is None:
            common["control"] = "slider"
        elif common["control"] not in SLIDER_CONTROLS:
            raise self.fail(f"item control must be one of {', '.join(SLIDER_CONTROLS)}", link_id)
        return Item(
            **common,
            min_value=low,
            max_value=high,
            anchor_low=self.ext_value(extensions, EXT_ANCHOR_LOW, "valueString", link_id),
            anchor_high=self.ext_value(extensions, EXT_ANCHOR_HIGH, "valueString", link_id),
        )

    def choice_item(self, common: dict[str, Any], data: Mapping[str, Any]) -> Item:
        link_id = common["link_id"]
        raw = data.get("answerOption")
        if not isinstance(raw, list) or not raw:
            raise self.fail("choice items need a non-empty answerOption list", link_id)
        options: list[AnswerOption] = []
        for entry in raw:
            coding = entry.get("valueCoding") if isinstance(entry, dict) else None
            if not isinstance(coding, dict):
                raise self.fail("every answerOption needs a valueCoding", link_id)
            system = coding.get("system")
            options.append(
                AnswerOption(
                    code=self.string(coding, "code", link_id),
                    display=self.string(coding, "display", link_id),
                    system=system if isinstance(system, str) else None,
                )
            )
        codes = [option.code for option in options]
        if len(set(codes)) != len(codes):
            raise self.fail("answer option codes are not unique", link_id)
        expected = _ROLE_CODES.get(common["role"])
        if expected is not None and set(codes) != set(expected):
            raise self.fail(
                f"a {common['role']} item needs exactly the codes {', '.join(expected)}", link_id
            )
        return Item(**common, options=tuple(options))

    def enable_when(
        self, data: Mapping[str, Any], link_id: str, earlier: Sequence[Item]
    ) -> tuple[tuple[EnableWhen, ...], Literal["all", "any"]]:
        raw = data.get("enableWhen", [])
        if not isinstance(raw, list):
            raise self.fail("'enableWhen' must be a list", link_id)
        behavior = data.get("enableBehavior", "all")
        if len(raw) > 1 and "enableBehavior" not in data:
            raise self.fail("several enableWhen conditions need an enableBehavior", link_id)
        if behavior not in ("all", "any"):
            raise self.fail("enableBehavior must be 'all' or 'any'", link_id)
        by_id = {item.link_id: item for item in earlier}
        conditions: list[EnableWhen] = []
        for entry in raw:
            if not isinstance(entry, dict):
                raise self.fail("every enableWhen must be an object", link_id)
            question = entry.get("question")
            if question not in by_id:
                raise self.fail(f"enableWhen refers to {question!r}, not an earlier item", link_id)
            operator: EnableOperator = self.choose(entry.get("operator"), ENABLE_OPERATORS, link_id)
            answer = self.enable_answer(entry, operator, by_id[question], link_id)
            conditions.append(EnableWhen(question=question, operator=operator, answer=answer))
        return tuple(conditions), behavior

    def enable_answer(
        self, entry: Mapping[str, Any], operator: EnableOperator, target: Item, link_id: str
    ) -> int | str | bool:
        if operator == "exists":
            value = entry.get("answerBoolean")
            if not isinstance(value, bool):
                raise self.fail("an 'exists' condition needs answerBoolean", link_id)
            return value
        if target.type == "choice":
            coding = entry.get("answerCoding")
            code = coding.get("code") if isinstance(coding, dict) else None
            if code not in target.option_codes:
                raise self.fail(f"enableWhen needs an answerCoding of {target.link_id!r}", link_id)
            assert isinstance(code, str)
            return code
        if target.type == "integer":
            value = entry.get("answerInteger")
            if not _is_int(value):
                raise self.fail("enableWhen on an integer item needs answerInteger", link_id)
            return value
        value = entry.get("answerString")
        if not isinstance(value, str):
            raise self.fail("enableWhen on a text item needs answerString", link_id)
        return value

    def check_roles(self, kind: InstrumentKind, items: Sequence[Item]) -> None:
        roles = [item.role for item in items]
        for role in _SINGLE_ROLES:
            if roles.count(role) > 1:
                raise self.fail(f"at most one item may have score role {role!r}")
        if "rupture-repair" in roles and "rupture" not in roles:
            raise self.fail("a rupture-repair item needs a rupture item")
        needed: Mapping[InstrumentKind, ScoreRole] = {
            "before": "wellbeing",
            "pulse": "pulse",
            "after": "alliance",
        }
        if needed[kind] not in roles:
            raise self.fail(f"a {kind} instrument needs an item with score role {needed[kind]!r}")
        if kind == "pulse" and len(items) != 1:
            raise self.fail("a pulse instrument has exactly one item")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _item_control(extensions: Mapping[str, Mapping[str, Any]]) -> str | None:
    concept = extensions.get(FHIR_ITEM_CONTROL, {}).get("valueCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if isinstance(codings, list) and codings and isinstance(codings[0], dict):
        code = codings[0].get("code")
        return code if isinstance(code, str) else None
    return None


# --- answers ---------------------------------------------------------------------------


def is_enabled(item: Item, given: Mapping[str, int | str]) -> bool:
    """Whether the form shows this item, given the earlier non-skipped answers.

    "=" and "!=" are false while the question has no answer (skipped or not shown), so a
    follow-up never appears for a skipped question; "exists" tests for an answer.
    """
    if not item.enable_when:
        return True
    results = (_condition_holds(condition, given) for condition in item.enable_when)
    return any(results) if item.enable_behavior == "any" else all(results)


def _condition_holds(condition: EnableWhen, given: Mapping[str, int | str]) -> bool:
    answered = condition.question in given
    if condition.operator == "exists":
        return answered == condition.answer
    if not answered:
        return False
    equal = given[condition.question] == condition.answer
    return equal if condition.operator == "=" else not equal


def validate_answers(instrument: Instrument, raw: Mapping[str, object]) -> Response:
    """Check ``{linkId: value}`` against the instrument; missing or None means skipped.

    Items the form does not show (enableWhen false) are left out of the response, and an
    answer to one is an error. Blank free text counts as a skip.
    """
    known = {item.link_id for item in instrument.items}
    for link_id in raw:
        if link_id not in known:
            raise AnswerError(str(link_id), "no such item in this instrument")
    given: dict[str, int | str] = {}
    answers: list[Answer] = []
    for item in instrument.items:
        value = raw.get(item.link_id)
        if not is_enabled(item, given):
            if value is not None:
                raise AnswerError(item.link_id, "answered although the form does not show it")
            continue
        checked = _check_value(item, value)
        if checked is not None:
            given[item.link_id] = checked
        answers.append(Answer(item.link_id, checked, skipped=checked is None))
    return Response(instrument.id, instrument.version, tuple(answers))


def _check_value(item: Item, value: object) -> int | str | None:
    if value is None:
        return None
    if item.type == "integer":
        if not _is_int(value):
            raise AnswerError(item.link_id, f"expected a whole number, got {value!r}")
        assert isinstance(value, int) and item.min_value is not None
        assert item.max_value is not None
        if not item.min_value <= value <= item.max_value:
            raise AnswerError(
                item.link_id, f"{value} is outside {item.min_value}..{item.max_value}"
            )
        return value
    if not isinstance(value, str):
        raise AnswerError(item.link_id, f"expected text, got {value!r}")
    if item.type == "choice":
        if value not in item.option_codes:
            raise AnswerError(
                item.link_id, f"{value!r} is not one of {', '.join(item.option_codes)}"
            )
        return value
    assert item.max_length is not None
    if len(value) > item.max_length:
        raise AnswerError(item.link_id, f"text is longer than {item.max_length} characters")
    return value if value.strip() else None
