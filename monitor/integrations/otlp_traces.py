"""Decoding OTLP/HTTP trace exports (protobuf or JSON) into plain span records.

Pure functions, no I/O. A body that cannot be decoded at all raises :class:`BadExport`
(the route answers 400 with its reason); a span that decodes but is unusable (ids of the
wrong size, times that are not numbers) is counted as rejected with a reason, and the
other spans go on (OTLP's partial success). JSON follows the OTLP/JSON mapping: lower
camel case names, trace and span ids as hex, 64-bit integers as strings or numbers,
unknown fields ignored. Protobuf needs ``opentelemetry-proto`` (the ``otel`` extra),
imported only when a protobuf body arrives.
"""

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_ATTRIBUTE_DEPTH = 8


class BadExport(ValueError):
    """The whole body is not an ExportTraceServiceRequest: answer 400 with this reason."""


class ProtobufUnavailable(RuntimeError):
    """A protobuf body arrived and opentelemetry-proto is not installed."""


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span, flattened: the attributes GenAI mapping reads, and where it came from."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""  # the instrumentation scope (tracer) name


@dataclass(slots=True)
class Decoded:
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)


# JSON ---------------------------------------------------------------------------------
def _json_any(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue as plain Python (arrays and kvlists included)."""
    if not isinstance(value, dict) or depth > MAX_ATTRIBUTE_DEPTH:
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [_json_any(v, depth + 1) for v in items]
    if "kvlistValue" in value:
        return _json_attributes((value["kvlistValue"] or {}).get("values") or [], depth + 1)
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"]).hex()
    return None


def _json_attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(items, list):
        raise ValueError("attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in items:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_any(kv.get("value"), depth)
    return out


def _hex_id(value: Any, size: int, name: str) -> str:
    if not isinstance(value, str) or len(value) != 2 * size:
        raise ValueError(f"{name} must be {2 * size} hex digits")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} must be {2 * size} hex digits") from None
    if raw == bytes(size):
        raise ValueError(f"{name} must not be all zeros")
    return value.lower()


def _json_span(span: Any, resource: dict[str, Any], scope: str) -> SpanRecord:
    if not isinstance(span, dict):
        raise ValueError("a span must be an object")
    parent = span.get("parentSpanId") or None
    return SpanRecord(
        trace_id=_hex_id(span.get("traceId"), 16, "traceId"),
        span_id=_hex_id(span.get("spanId"), 8, "spanId"),
        parent_span_id=_hex_id(parent, 8, "parentSpanId") if parent else None,
        name=str(span.get("name") or ""),
        start_ns=int(span.get("startTimeUnixNano") or 0),
        end_ns=int(span.get("endTimeUnixNano") or 0),
        attributes=_json_attributes(span.get("attributes") or []),
        resource=resource,
        scope=scope,
    )


def _objects(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadExport(f"{name} must be a list")
    return value


def decode_json(raw: bytes) -> Decoded:
    """An OTLP/JSON ExportTraceServiceRequest; :class:`BadExport` if it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadExport("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadExport("the body must be a JSON object with resourceSpans")
    out = Decoded()
    for rs in _objects(body.get("resourceSpans"), "resourceSpans"):
        if not isinstance(rs, dict):
            raise BadExport("resourceSpans items must be objects")
        try:
            resource = _json_attributes((rs.get("resource") or {}).get("attributes") or [])
        except (ValueError, TypeError, AttributeError):
            resource = {}
        for ss in _objects(rs.get("scopeSpans"), "scopeSpans"):
            if not isinstance(ss, dict):
                raise BadExport("scopeSpans items must be objects")
            scope = ss.get("scope")
            name = str(scope.get("name") or "") if isinstance(scope, dict) else ""
            for span in _objects(ss.get("spans"), "spans"):
                try:
                    out.spans.append(_json_span(span, resource, name))
                except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
                    out.reject(str(exc) if isinstance(exc, ValueError) else "malformed span")
    return out


# protobuf -----------------------------------------------------------------------------
def _pb_any(value: Any, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None or depth > MAX_ATTRIBUTE_DEPTH:
        return None
    if kind == "array_value":
        return [_pb_any(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values, depth + 1)
    if kind == "bytes_value":
        return bytes(value.bytes_value).hex()
    return getattr(value, kind)


def _pb_attributes(items: Iterable[Any], depth: int = 0) -> dict[str, Any]:
    return {kv.key: _pb_any(kv.value, depth) for kv in items}


def _pb_id(raw: bytes, size: int, name: str) -> str:
    if len(raw) != size or raw == bytes(size):
        raise ValueError(f"{name} must be {size} bytes, not all zeros")
    return raw.hex()


def _pb_spans(request: Any) -> Iterator[tuple[Any, dict[str, Any], str]]:
    for rs in request.resource_spans:
        resource = _pb_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield span, resource, ss.scope.name


def decode_protobuf(raw: bytes) -> Decoded:
    """A protobuf ExportTraceServiceRequest; :class:`BadExport` if it is not one."""
    try:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise ProtobufUnavailable(
            "protobuf OTLP needs the otel extra (pip install 'runaway-monitor[otel]'); "
            "or export with OTEL_EXPORTER_OTLP_PROTOCOL=http/json"
        ) from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError):
        raise BadExport("the body is not a protobuf ExportTraceServiceRequest") from None
    out = Decoded()
    for span, resource, scope in _pb_spans(request):
        try:
            parent = bytes(span.parent_span_id)
            out.spans.append(
                SpanRecord(
                    trace_id=_pb_id(bytes(span.trace_id), 16, "trace_id"),
                    span_id=_pb_id(bytes(span.span_id), 8, "span_id"),
                    parent_span_id=_pb_id(parent, 8, "parent_span_id") if parent else None,
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=_pb_attributes(span.attributes),
                    resource=resource,
                    scope=scope,
                )
            )
        except ValueError as exc:
            out.reject(str(exc))
    return out


# responses ----------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_string(field_no: int, text: str) -> bytes:
    data = text.encode()
    return bytes([field_no << 3 | 2]) + _varint(len(data)) + data


def export_response(rejected: int, message: str, *, protobuf: bool) -> bytes:
    """ExportTraceServiceResponse: empty when all were accepted, else a partial success.

    Encoded by hand (two fields) so that a JSON-only install answers protobuf clients too.
    """
    if protobuf:
        if not rejected and not message:
            return b""
        inner = b"\x08" + _varint(rejected) + (_pb_string(2, message) if message else b"")
        return b"\x0a" + _varint(len(inner)) + inner
    if not rejected and not message:
        return b"{}"
    return orjson.dumps({"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}})


def status_body(code: int, message: str, *, protobuf: bool) -> bytes:
    """A google.rpc.Status (code, message): the body OTLP/HTTP gives with an error."""
    if protobuf:
        return b"\x08" + _varint(code) + _pb_string(2, message)
    return orjson.dumps({"code": code, "message": message})
