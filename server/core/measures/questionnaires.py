"""Standard outcome measures (PHQ-9, GAD-7) as FHIR R4 Questionnaires, parsed and validated.

A measure file is a valid R4 ``Questionnaire`` with the published wording and LOINC codes: a
``display`` item with the stem, one ``choice`` item per question whose answer options are
LOINC answer codes carrying an ``ordinalValue`` (the item score), and a read-only ``integer``
item for the total that Attune computes. Our extensions (under ``ATTUNE_SD``) carry the
severity bands, the caseness cut-off, the reliable-change threshold and which item, if any,
is the safety item. Loading the shipped files is the only I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, TypeGuard

from server.core.checkins.instruments import ATTUNE_SD

LOINC: Final = "http://loinc.org"
EXT_MEASURE_RULES: Final = ATTUNE_SD + "measure-rules"
EXT_SEVERITY_BAND: Final = ATTUNE_SD + "severity-band"
EXT_SAFETY_ITEM: Final = ATTUNE_SD + "safety-item"
FHIR_ORDINAL_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
TOTAL_LINK_ID: Final = "total"
_RULE_KEYS: Final = ("caseness_at_least", "reliable_change_at_least")


class MeasureError(ValueError):
    """A measure file is malformed; the message names the file and the item."""

    def __init__(self, source: str, message: str, link_id: str | None = None) -> None:
        where = f"{source}: item {link_id!r}" if link_id is not None else source
        super().__init__(f"{where}: {message}")


class MeasureAnswerError(ValueError):
    """A submitted answer does not fit its measure; the message names the item."""

    def __init__(self, link_id: str, message: str) -> None:
        super().__init__(f"item {link_id!r}: {message}")
        self.link_id = link_id


@dataclass(frozen=True)
class Option:
    """One answer option: the LOINC answer code a client submits, and its score."""

    code: str
    display: str
    score: int


@dataclass(frozen=True)
class MeasureItem:
    """One scored question, with its LOINC item code."""

    link_id: str
    loinc: str
    text: str
    options: tuple[Option, ...]
    safety: bool = False

    @property
    def max_score(self) -> int:
        """The highest score an answer to this item gives."""
        return max(option.score for option in self.options)

    def option(self, code: str) -> Option:
        """The answer option with this code."""
        for option in self.options:
            if option.code == code:
                return option
        raise KeyError(code)


@dataclass(frozen=True)
class SeverityBand:
    """A named score range ``lower..upper`` (both inclusive)."""

    lower: int
    upper: int
    label: str


@dataclass(frozen=True)
class Measure:
    """A parsed, validated outcome measure."""

    id: str
    version: str
    url: str
    title: str
    loinc: str
    total_loinc: str
    stem: str
    items: tuple[MeasureItem, ...]
    bands: tuple[SeverityBand, ...]
    caseness_at_least: int
    reliable_change_at_least: int
    source: str = "<inline>"
    resource_json: str = field(default="{}", repr=False, compare=False)

    @property
    def canonical(self) -> str:
        """FHIR canonical reference ``url|version``."""
        return f"{self.url}|{self.version}"

    @property
    def max_total(self) -> int:
        """The highest possible total."""
        return sum(item.max_score for item in self.items)

    @property
    def safety_item(self) -> MeasureItem | None:
        """The item whose answer above its lowest option is a safety alert, if any."""
        return next((item for item in self.items if item.safety), None)

    def item(self, link_id: str) -> MeasureItem:
        """The item with this linkId."""
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)


@dataclass(frozen=True)
class MeasureAnswer:
    """One item's answer: an option code, or None for a skip."""

    link_id: str
    code: str | None


@dataclass(frozen=True)
class MeasureResponse:
    """A validated set of answers, one per item in form order."""

    measure_id: str
    measure_version: str
    answers: tuple[MeasureAnswer, ...]

    def code(self, link_id: str) -> str | None:
        """The option code given for this item, or None if skipped."""
        for answer in self.answers:
            if answer.link_id == link_id:
                return answer.code
        raise KeyError(link_id)

    def as_raw(self) -> dict[str, str | None]:
        """The answers as ``{linkId: code}``; ``validate_measure_answers`` turns it back."""
        return {answer.link_id: answer.code for answer in self.answers}


def load_measure(data: Mapping[str, Any], *, source: str = "<inline>") -> Measure:
    """Parse and validate one measure document; raises MeasureError naming the problem."""
    return _Parser(source).measure(data)


def load_builtin_measures() -> dict[str, Measure]:
    """The shipped measures by id: "phq9", "gad7"."""
    folder = resources.files(__name__.rpartition(".")[0]).joinpath("questionnaires")
    loaded: dict[str, Measure] = {}
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not entry.name.endswith(".json"):
            continue
        source = f"builtin:{entry.name}"
        measure = load_measure(json.loads(entry.read_text(encoding="utf-8")), source=source)
        if measure.id in loaded:
            raise MeasureError(source, f"id {measure.id!r} is used twice")
        loaded[measure.id] = measure
    return loaded


def validate_measure_answers(measure: Measure, raw: Mapping[str, object]) -> MeasureResponse:
    """Check ``{linkId: option code}``; a missing item or None is a skip."""
    known = {item.link_id for item in measure.items}
    for link_id in raw:
        if link_id not in known:
            raise MeasureAnswerError(str(link_id), "no such item in this measure")
    answers: list[MeasureAnswer] = []
    for item in measure.items:
        value = raw.get(item.link_id)
        if value is not None and (
            not isinstance(value, str) or value not in {o.code for o in item.options}
        ):
            codes = ", ".join(option.code for option in item.options)
            raise MeasureAnswerError(item.link_id, f"{value!r} is not one of {codes}")
        answers.append(MeasureAnswer(item.link_id, value))
    return MeasureResponse(measure.id, measure.version, tuple(answers))


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, link_id: str | None = None) -> MeasureError:
        return MeasureError(self.source, message, link_id)

    def string(self, data: Mapping[str, Any], key: str, link_id: str | None = None) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key!r} must be a non-empty string", link_id)
        return value

    def loinc(self, data: Mapping[str, Any], link_id: str | None = None) -> str:
        codes = data.get("code")
        first = codes[0] if isinstance(codes, list) and codes else None
        if not isinstance(first, dict) or first.get("system") != LOINC:
            raise self.fail("needs a LOINC code", link_id)
        return self.string(first, "code", link_id)

    def measure(self, data: Mapping[str, Any]) -> Measure:
        if data.get("resourceType") != "Questionnaire":
            raise self.fail("resourceType must be 'Questionnaire'")
        raw_items = data.get("item")
        if not isinstance(raw_items, list) or len(raw_items) < 3:
            raise self.fail("needs a stem, questions and a total item")
        if not all(isinstance(entry, dict) for entry in raw_items):
            raise self.fail("every item must be an object")
        stem, *questions, total = raw_items
        if stem.get("type") != "display":
            raise self.fail("the first item must be the display stem")
        if total.get("linkId") != TOTAL_LINK_ID or total.get("type") != "integer":
            raise self.fail(f"the last item must be the integer {TOTAL_LINK_ID!r} item")
        if total.get("readOnly") is not True:
            raise self.fail("the total is computed, so its item must be readOnly", TOTAL_LINK_ID)
        items = tuple(self.item(entry) for entry in questions)
        link_ids = [item.link_id for item in items]
        if len(set(link_ids)) != len(link_ids) or TOTAL_LINK_ID in link_ids:
            raise self.fail("linkIds are not unique")
        if sum(item.safety for item in items) > 1:
            raise self.fail("at most one item may be the safety item")
        extensions = _extensions(data)
        rules = self.rules(extensions.get(EXT_MEASURE_RULES, []))
        max_total = sum(item.max_score for item in items)
        bands = self.bands(extensions.get(EXT_SEVERITY_BAND, []), max_total)
        if not 0 < rules["caseness_at_least"] <= max_total:
            raise self.fail("caseness_at_least must lie within the score range")
        if not 0 < rules["reliable_change_at_least"] <= max_total:
            raise self.fail("reliable_change_at_least must lie within the score range")
        return Measure(
            id=self.string(data, "id"),
            version=self.string(data, "version"),
            url=self.string(data, "url"),
            title=self.string(data, "title"),
            loinc=self.loinc(data),
            total_loinc=self.loinc(total, TOTAL_LINK_ID),
            stem=self.string(stem, "text", "stem"),
            items=items,
            bands=bands,
            caseness_at_least=rules["caseness_at_least"],
            reliable_change_at_least=rules["reliable_change_at_least"],
            source=self.source,
            resource_json=json.dumps(data, sort_keys=True),
        )

    def item(self, data: Mapping[str, Any]) -> MeasureItem:
        link_id = self.string(data, "linkId")
        if data.get("type") != "choice":
            raise self.fail("questions must be choice items", link_id)
        if data.get("required", False) is not False:
            raise self.fail("items must stay optional: a skip is always fine", link_id)
        raw = data.get("answerOption")
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail("needs at least two answer options", link_id)
        options = tuple(self.option(entry, link_id) for entry in raw)
        scores = [option.score for option in options]
        if scores != list(range(len(options))):
            raise self.fail("option scores must run 0, 1, 2, … in order", link_id)
        if len({option.code for option in options}) != len(options):
            raise self.fail("answer option codes are not unique", link_id)
        safety = _extensions(data).get(EXT_SAFETY_ITEM, [{}])[0].get("valueBoolean", False)
        if not isinstance(safety, bool):
            raise self.fail("the safety-item extension needs a valueBoolean", link_id)
        return MeasureItem(
            link_id=link_id,
            loinc=self.loinc(data, link_id),
            text=self.string(data, "text", link_id),
            options=options,
            safety=safety,
        )

    def option(self, entry: object, link_id: str) -> Option:
        coding = entry.get("valueCoding") if isinstance(entry, dict) else None
        if not isinstance(coding, dict):
            raise self.fail("every answerOption needs a valueCoding", link_id)
        assert isinstance(entry, dict)
        ordinal = _extensions(entry).get(FHIR_ORDINAL_VALUE, [{}])[0].get("valueDecimal")
        if not _is_number(ordinal) or int(ordinal) != ordinal:
            raise self.fail("every answerOption needs a whole-number ordinalValue", link_id)
        return Option(
            code=self.string(coding, "code", link_id),
            display=self.string(coding, "display", link_id),
            score=int(ordinal),
        )

    def rules(self, found: list[Mapping[str, Any]]) -> dict[str, int]:
        if len(found) != 1:
            raise self.fail("needs exactly one measure-rules extension")
        values: dict[str, int] = {}
        for entry in found[0].get("extension", []):
            key, value = entry.get("url"), entry.get("valueInteger")
            if key not in _RULE_KEYS or key in values or not _is_int(value):
                raise self.fail(f"measure rule {key!r} is unknown, repeated or not an integer")
            values[key] = value
        missing = set(_RULE_KEYS) - set(values)
        if missing:
            raise self.fail(f"measure rules miss {', '.join(sorted(missing))}")
        return values

    def bands(self, found: list[Mapping[str, Any]], max_total: int) -> tuple[SeverityBand, ...]:
        starts: list[tuple[int, str]] = []
        for entry in found:
            parts = {part.get("url"): part for part in entry.get("extension", [])}
            lower = parts.get("from", {}).get("valueInteger")
            label = parts.get("label", {}).get("valueString")
            if not _is_int(lower) or not isinstance(label, str) or not label:
                raise self.fail("a severity band needs 'from' (integer) and 'label' (string)")
            starts.append((lower, label))
        lowers = [lower for lower, _ in starts]
        if not starts or lowers[0] != 0 or lowers != sorted(set(lowers)) or lowers[-1] > max_total:
            raise self.fail(f"severity bands must start at 0 and rise within 0..{max_total}")
        uppers = [*(lower - 1 for lower in lowers[1:]), max_total]
        return tuple(
            SeverityBand(lower, upper, label)
            for (lower, label), upper in zip(starts, uppers, strict=True)
        )


def _extensions(data: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for entry in data.get("extension", []):
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            grouped.setdefault(entry["url"], []).append(entry)
    return grouped


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
