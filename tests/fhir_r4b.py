"""FHIR R4B validation with `fhir.resources`, which lacks one part of the JSON format.

FHIR lets an extension's primitive value carry extensions of its own (`"_valueString"`, the
way our intro, client-note and slider-anchor extensions carry their `translation`s), but
`fhir.resources`' `Extension` model has no field for it and refuses the key. `r4b_valid`
therefore validates each such `_valueString` on its own, as the R4B `Element` it is, and the
resource without them with the given model; nothing else is left out.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from fhir.resources.R4B.element import Element
from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


def _lift_value_extras(node: Any, lifted: list[Any]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("url"), str) and "_valueString" in node:
            lifted.append(node.pop("_valueString"))
        for value in node.values():
            _lift_value_extras(value, lifted)
    elif isinstance(node, list):
        for value in node:
            _lift_value_extras(value, lifted)


def r4b_valid(model: type[Model], resource: dict[str, Any]) -> Model:
    """The resource parsed as `model`, each extension's `_valueString` checked as an Element."""
    stripped = copy.deepcopy(resource)
    lifted: list[Any] = []
    _lift_value_extras(stripped, lifted)
    for extras in lifted:
        Element.model_validate(extras)
    return model.model_validate(stripped)
