"""OTLP/JSON trace exports built by hand (hex ids, string 64-bit integers, camel case)."""

import orjson

TRACE = "5b8efff798038103d269b633813fc60c"


def attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def span(span_id: str, start: int, attrs: dict, trace: str = TRACE, **kw: object) -> dict:
    return {
        "traceId": trace,
        "spanId": span_id,
        "name": kw.get("name", "s"),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 10),
        "attributes": [attr(k, v) for k, v in attrs.items()],
        **kw.get("extra", {}),
    }


def export(*spans: dict) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [attr("service.name", "agent")]},
                    "scopeSpans": [{"spans": list(spans)}],
                }
            ]
        }
    )


# the attributes of a GenAI ``execute_tool`` span in conversation conv-1
TOOL = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "search",
    "gen_ai.tool.call.arguments": '{"q": "x"}',
    "gen_ai.tool.call.result": "found",
    "gen_ai.tool.call.id": "c1",
    "gen_ai.conversation.id": "conv-1",
}
