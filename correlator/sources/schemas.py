"""Pydantic models that describe the generic alert format for people and tools: its JSON Schema
(`GET /schemas/alert.json`, deploy/schemas/alert.json) and the ingest's OpenAPI document.

The generic adapter itself (`correlator.sources.generic`) checks objects by hand, for speed; these models only
describe what it accepts, and tests/test_openapi.py holds the two together: the fields are the adapter's known
fields, and every body the adapter accepts in the tests validates against the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from correlator.eventtime import MAX_EPOCH
from correlator.sources.alertmanager import PostableAlert

__all__ = ["ALERT_SCHEMA_ID", "GenericAlert", "alert_body_schema"]

ALERT_SCHEMA_ID: Final = "https://aiops-correlator.example/schemas/alert.json"

Epoch = Annotated[float, Field(ge=0, lt=MAX_EPOCH, description="epoch seconds (milliseconds are refused)")]
TimeValue = Annotated[
    str | Epoch,
    Field(description="ISO 8601 (a time without offset is UTC), or epoch seconds as a number or numeric string"),
]
Text = Annotated[str | None, Field(default=None)]
LabelMap = Annotated[
    dict[str, Any] | None,
    Field(default=None, description="values become strings: numbers and booleans as text, nested values as JSON, "
                                    "null dropped"),
]


class GenericAlert(BaseModel):
    """One alert of the generic format (DESIGN.md, "Generic alert JSON"); unknown fields are kept in `extra`."""

    model_config = ConfigDict(extra="allow", title="GenericAlert")

    starts_at: TimeValue
    fingerprint: Text = Field(default=None, description="identity of the alert series; else derived from labels")
    status: Literal["firing", "resolved"] | None = Field(default="firing", description="null is firing")
    ends_at: TimeValue | None = Field(default=None, description="when it resolved")
    service: Text = Field(default=None, description="else from labels: service, job, app, host, ...")
    symptom: Text = Field(default=None, description="else from the alertname label, normalized")
    severity: Text = Field(default=None, description="critical, warning, info or sev1..sev3; common synonyms "
                                                     "mapped, anything else is warning with the raw text kept")
    source: Text = Field(default=None, description='default "generic"')
    labels: LabelMap
    annotations: LabelMap
    summary: Text = Field(default=None, description="else the summary or description annotation")


_ONE = GenericAlert | PostableAlert
_BODY: TypeAdapter[Any] = TypeAdapter(_ONE | list[_ONE])


def alert_body_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema (2020-12) of a body of `POST /ingest/alerts`: one alert object, generic or Alertmanager
    API v2 style, or an array of them (NDJSON, one object a line, is accepted too and not expressible here)."""
    schema = _BODY.json_schema(ref_template=ref_template, by_alias=True)
    schema["title"] = "Generic alert body"
    schema["description"] = alert_body_schema.__doc__.split("\n\n")[0] if alert_body_schema.__doc__ else ""
    return schema
