"""The names of the declared job kinds, as the contract knows them.

Each kind is declared once, in ``tasks/`` (``tasks.kinds.declare_kind``), and the declaration
registers its name here. Schemas may not import ``tasks/`` (they are the contract, not the
work), so this registry is the one thing they share: ``JobKind`` validates against it and
renders, whenever a spec is generated, as a real ``JobKind`` enum listing every kind declared
so far, so generated SDKs still get an enum.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_names: list[str] = []


def register_kind_name(name: str) -> None:
    """Called by the kind's declaration, which has checked that the name is new."""
    if name in _names:
        raise ValueError(f"job kind {name!r} is already declared")
    _names.append(name)


def kind_names() -> tuple[str, ...]:
    """Every declared kind, in the order declared."""
    return tuple(_names)


def _declared(value: str) -> str:
    if value not in _names:
        allowed = ", ".join(repr(name) for name in _names)
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": allowed})
    return value


class _KindName:
    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # The ref makes it one named component (JobKind) wherever it is used.
        return core_schema.no_info_after_validator_function(
            _declared, core_schema.str_schema(), ref="schemas.kinds.JobKind"
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        reference = handler(schema)
        definition = handler.resolve_ref_schema(reference)
        definition.update(
            title="JobKind",
            description="What the job does; each kind has its own submit operation.",
            enum=list(_names),
        )
        return reference


JobKind = Annotated[str, _KindName]
"""A declared kind's name: a string that the spec states as the enum of every kind."""
