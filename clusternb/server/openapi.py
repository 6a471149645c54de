"""The OpenAPI 3.1 description of the REST API, generated from the column tables in :mod:`clusternb.frames`
and the parameter declarations in :mod:`clusternb.params`.

Generating it from the same tables that type the DataFrames keeps the REST schema, the pandas schema and the
README from drifting apart: a new column appears in all three at once. Likewise a parameter declared for a
query appears here, in the server's parsing and in the Python check at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from clusternb import columns, frames
from clusternb.frames import Column
from clusternb.params import Kind, Param
from clusternb.server.service import params_of

_NULLABLE = ("Int64", "float64", "string")


def column_schema(column: Column) -> dict[str, Any]:
    """JSON Schema of one column's values as the API sends them (times as ISO strings, NaN as null)."""
    dtype = column.dtype
    out: dict[str, Any]
    if isinstance(dtype, pd.DatetimeTZDtype):
        out = {"type": ["string", "null"], "format": "date-time"}
    elif isinstance(dtype, pd.CategoricalDtype):
        out = {"type": ["string", "null"], "enum": [*map(str, dtype.categories), None]}
    elif dtype in ("Int64", "int64"):
        out = {"type": ["integer", "null"] if dtype == "Int64" else "integer"}
    elif dtype == "float64":
        out = {"type": ["number", "null"]}
    elif dtype == "bool":
        out = {"type": "boolean"}
    else:
        out = {"type": ["string", "null"]}
    out["description"] = column.doc
    return out


def frame_schema(columns: Sequence[Column], index: tuple[str, str] | None = None) -> dict[str, Any]:
    """The body schema of an endpoint returning one frame (see :mod:`clusternb.server.payload`)."""
    props = {c.name: column_schema(c) for c in columns}
    if index is not None:
        props = {index[0]: {"type": "string", "description": index[1]}, **props}
    return {
        "type": "object",
        "required": ["query", "as_of", "content_hash", "data_hash", "columns", "data"],
        "properties": {
            "query": {"type": "string"},
            "as_of": {"type": "string", "format": "date-time", "description": "when the result was computed"},
            "content_hash": {"type": "string", "description": "hash of the result; also the ETag"},
            "data_hash": {"type": "string", "description": "hash without age columns; changes on real change"},
            "index": {"type": ["string", "null"], "description": "name of the index column, if any"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "object", "properties": props}},
        },
    }


def parameter(param: Param) -> dict[str, Any]:
    """The OpenAPI parameter object of one declared query parameter, by its kind (see ``service.make_topic``)."""
    doc = param.doc
    schema: dict[str, Any] = {"type": "string"}
    array = param.kind is Kind.NAMES and not param.single
    if param.kind is Kind.TIME:
        doc += "; " + _SINCE
    elif param.kind is Kind.BOOLEAN:
        schema = {"type": "boolean"}
    elif param.kind is Kind.CHOICE:
        schema["enum"] = list(param.choices)
    elif param.kind is Kind.SIZE:
        schema = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}
        doc += "; bytes, or a size such as '300MB' or '1.5GiB'"
    elif array:
        schema = {"type": "array", "items": {"type": "string"}}
        if param.choices:
            schema["items"]["enum"] = list(param.choices)
        doc += "; repeat or comma-separate for several"
    if param.default is not None:
        schema["default"] = param.default
    out: dict[str, Any] = {"name": param.name, "in": "query", "required": False, "description": doc}
    out["schema"] = schema
    if array:
        out.update(style="form", explode=True)
    return out


_ERRORS = {
    "304": {"description": "Not modified (If-None-Match matched the ETag)"},
    "400": {"description": "Invalid parameter; body {'message': ...} names it"},
    "403": {"description": "Not authenticated"},
    "429": {"description": "Rate limit exceeded; see Retry-After"},
}
_SINCE = "duration before now ('15m', '2h', seconds) or ISO-8601 time"


#: The one path that is not a query (``handlers.AcknowledgeHandler``): the Lab sidebar's and notifications' button.
ACKNOWLEDGE_PATH = "/alerts/{alert_id}/acknowledge"


def _acknowledge() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Acknowledge an active alert (recorded with the user's name until it resolves)",
            "parameters": [
                {
                    "name": "alert_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "the alert's id, 'rule:node', as alerts() lists it",
                },
            ],
            "responses": {
                "200": {
                    "description": "acknowledged",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"alert_id": {"type": "string"}, "acknowledged": {"type": "boolean"}},
                            }
                        }
                    },
                },
                "400": {"description": "Malformed alert id; body {'message': ...}"},
                "403": {"description": "Not authenticated, or no XSRF token with a cookie"},
                "404": {"description": "No such active alert"},
                "429": {"description": "Rate limit exceeded; see Retry-After"},
            },
        }
    }


def openapi(base_url: str, version: str) -> dict[str, Any]:
    """The whole document; paths are relative to ``{base_url}clusternb/api``."""
    metric_cols = (Column("time", frames.TIME_DTYPE, "sample time (UTC)"), Column("node", "string", "node name"))
    #: path -> (topic, summary, body schema); the topic's declared parameters are the path's parameters.
    endpoints: dict[str, tuple[str, str, dict[str, Any]]] = {
        "/cluster/status": ("status", "One-row cluster summary", frame_schema(frames.STATUS_COLUMNS)),
        "/workers": ("workers", "One row per node", frame_schema(frames.WORKER_COLUMNS, ("node", "node name"))),
        "/metrics/system": (
            "metrics",
            "Time series, one row per node per sample, oldest first",
            frame_schema(metric_cols + frames.METRIC_COLUMNS),
        ),
        "/alerts": ("alerts", "Alerts, newest first", frame_schema(frames.ALERT_COLUMNS)),
        "/kernels": (
            "kernels",
            "Jupyter kernels of every server with the extension, largest memory first (others' paths hidden)",
            frame_schema(columns.KERNEL_COLUMNS, ("kernel_id", "kernel id")),
        ),
        "/cache/status": (
            "cache",
            "Query cache health and statistics per namespace",
            frame_schema(frames.CACHE_COLUMNS, ("namespace", "cache namespace, or (all)")),
        ),
    }
    paths: dict[str, Any] = {}
    for path, (topic, summary, schema) in endpoints.items():
        paths[path] = {
            "get": {
                "summary": summary,
                "parameters": [parameter(p) for p in params_of(topic)],
                "responses": {
                    "200": {
                        "description": summary,
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": schema}},
                    },
                    **_ERRORS,
                },
            }
        }
    paths[ACKNOWLEDGE_PATH] = _acknowledge()
    return {
        "openapi": "3.1.0",
        "info": {"title": "clusternb", "version": version},
        "servers": [{"url": base_url.rstrip("/") + "/clusternb/api"}],
        "paths": paths,
        "components": {"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
        "security": [{"token": []}],
    }
