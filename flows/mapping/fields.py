"""Payload fields: where each value of a payload comes from (a column, a constant, a template, a
local date and time, a value the run supplies) and the named transforms applied to it."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from .base import Strict
from .datetimes import format_problem, is_iana_zone
from .registry import REGISTRY
from .transforms import build_transform

__all__ = ["PLACEHOLDER", "DateTimeSource", "FieldSpec", "RunValue", "TransformRef"]


# --- transforms as a schema type ---------------------------------------------------------------


def _check_transform(value: Any) -> Any:
    build_transform(value)  # raises ValueError with a readable message
    return value


def _transform_schema() -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    bare = [name for name, doc in REGISTRY.items() if not doc.param or doc.param.startswith("optional")]
    options.append({"type": "string", "enum": sorted(bare), "description": "a transform without a parameter"})
    for name, doc in sorted(REGISTRY.items()):
        if doc.param:
            options.append({
                "type": "object",
                "properties": {name: {"description": f"{doc.summary} Parameter: {doc.param}."}},
                "required": [name],
                "additionalProperties": False,
            })
    return {"anyOf": options, "description": "a named transform (see README, 'Transforms')"}


TransformRef = Annotated[Any, BeforeValidator(_check_transform), WithJsonSchema(_transform_schema())]


# --- field sources ------------------------------------------------------------------------------


#: which kind of format each DateTimeSource field holds, for format_problem
_FORMAT_KINDS = {"format": "date", "time_format": "time", "output": "output"}


class DateTimeSource(Strict):
    """A local date (and time) from one or two columns, converted to UTC."""

    date: str = Field(description="Column holding the date (or the date and time together).")
    time: str | None = Field(None, description="Column holding the time, when it is separate from the date.")
    format: str = Field(description="strftime format of the date column, e.g. '%d/%m/%Y' (day first) or, without a "
                                    "time column, '%d/%m/%Y %H:%M'. Checked when the mapping loads.")
    time_format: str = Field("%H:%M", description="strftime format of the time column: '%H:%M' (24-hour; also accepts "
                                                  "17:45:30, 17.45 and 5:45 PM) or '%I:%M %p' (12-hour: AM/PM required "
                                                  "up to 12:59). See README, 'Dates and times'.")
    timezone: str | None = Field(None, description="Fixed IANA zone of the sheet's times, or the default when "
                                                   "timezone_column is empty.")
    timezone_column: str | None = Field(None, description="Column holding each row's IANA zone.")
    output: str = Field("%Y-%m-%dT%H:%M:%S.000Z",
                        description="strftime format of the UTC result (ISO 8601 with Z by default).")
    ambiguous: Literal["refuse", "earlier", "later"] = Field("refuse",
                                                             description="A local time that happens twice (the hour "
                                                                         "the clocks go back): refuse the row, naming "
                                                                         "both UTC instants (default), or take the "
                                                                         "earlier or the later one.")

    @field_validator("format", "time_format", "output")
    @classmethod
    def _checked_format(cls, v: str, info: ValidationInfo) -> str:
        """Each format is checked for the kind of value it reads or writes (flows/mapping/transforms.format_problem)."""
        problem = format_problem(v, _FORMAT_KINDS[str(info.field_name)])
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _zone_given(self) -> DateTimeSource:
        if not self.timezone and not self.timezone_column:
            raise ValueError("give `timezone` (an IANA zone such as Europe/London) or `timezone_column`, or both")
        if self.timezone and not is_iana_zone(self.timezone):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone such as Europe/London")
        if self.time is None:  # one column holds the date and the time: the format must read both
            problem = format_problem(self.format, "datetime")
            if problem:
                raise ValueError(problem)
        return self


class RunValue(str):
    """Stands in a payload for a ``run_value`` until the run fills it in (render shows ``{callback_url}``).

    The payload hash covers the placeholder, not the per-run value, so a rerun sees the same payload.
    """

    def __new__(cls, name: str) -> RunValue:
        return super().__new__(cls, "{" + name + "}")

    @property
    def name(self) -> str:
        return self[1:-1]

    def __getnewargs__(self) -> tuple[str]:
        return (self.name,)


class FieldSpec(Strict):
    """One payload field. Exactly one of column / const / template / datetime / run_value."""

    column: str | None = Field(None, description="Sheet column the value comes from (header text).")
    const: Any = Field(None, description="A fixed value for every row.")
    template: str | None = Field(None, description="Text with {Column Name} placeholders, e.g. '{First name} {Last "
                                                   "name}'.")
    datetime: DateTimeSource | None = Field(None, description="A date and time in local time, converted to UTC.")
    run_value: Literal["callback_url"] | None = Field(None, description="A value the run supplies when it starts, the "
                                                                        "same for every row: callback_url (this run's "
                                                                        "return address with an unguessable token, "
                                                                        "served by `booking-import callbacks`; set "
                                                                        "<PROVIDER>_CALLBACK_URL or run with "
                                                                        "--wait-callbacks). No transforms.")
    transforms: list[TransformRef] = Field(default_factory=list, description="Named transforms applied in order.")
    required: bool = Field(False, description="An empty value makes the row invalid.")
    when_empty: Literal["omit", "null"] = Field("omit", description="What to send when the value is empty: leave the "
                                                                    "field out, or send null (e.g. to clear it).")
    sensitive: bool = Field(False, description="Mask the value wherever a payload is shown (render, results, logs).")
    description: str | None = Field(None, description="Free text for people reading the mapping.")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [k for k in ("column", "const", "template", "datetime", "run_value") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of column, const, template, datetime or run_value"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.template is not None and not PLACEHOLDER.search(self.template):
            raise ValueError("a template needs at least one {Column Name} placeholder; use const for fixed text")
        if self.run_value is not None and self.transforms:
            raise ValueError("a run_value is used as the run supplies it: remove its transforms")
        return self

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return PLACEHOLDER.findall(self.template)
        if self.datetime is not None:
            d = self.datetime
            return [c for c in (d.date, d.time, d.timezone_column) if c]
        return []


PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
