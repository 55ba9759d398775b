"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the pydantic models.

Schemas come from the same models that validate requests, so the document cannot drift
from what the service accepts.
"""

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from monitor.api.models import FinishRequest, RegisterRequest, StepRequest, StepVerdict
from monitor.api.views import RESPONSE_MODELS, openapi_paths
from monitor.integrations.litellm_guardrail import GuardrailRequest, GuardrailResponse

REF = "#/components/schemas/{model}"


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


_EPISODE_ID = {"name": "episode_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURED = [{"bearer": []}]
# what the browser-safety and connection checks answer (monitor/api/browser.py, guard.py)
_GUARDED = {
    "403": _error("wrong token, or a foreign Origin"),
    "408": _error("the body did not arrive in time"),
    "415": _error("a body that is not Content-Type: application/json"),
    "421": _error("a Host name that is not loopback, without a token"),
}


@cache
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in (RegisterRequest, StepRequest, FinishRequest, GuardrailRequest)]
        + [(m, "serialization") for m in (StepVerdict, GuardrailResponse, *RESPONSE_MODELS)],
        ref_template=REF,
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "the field at fault"},
        },
    }
    step_params = [
        _EPISODE_ID,
        {
            "name": "wait",
            "in": "query",
            "schema": {"type": "boolean", "default": True},
            "description": "false: answer 202 at once; the verdict comes on /v1/events",
        },
    ]
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "runaway-monitor sidecar",
            "version": "1",
            "description": "Report each agent step (numbers, tool calls, text, state), get "
            "the verdict the episode's policy gives its flags: 'continue', 'remind', 'reset' "
            "(to savepoint_step), 'block' (reject the pending tool call) or 'stop', with "
            "'cause', 'policy' and 'reason'. "
            "When the detectors do not answer within the step timeout the fail mode answers "
            "(closed: reset to the last savepoint; open: continue), marked in 'fail_mode'.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/episodes": {
                "post": {
                    "summary": "Register an episode (built-in environment or objectives)",
                    "security": _SECURED,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="RegisterRequest")}
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "registered; body has episode_id"},
                        "200": {"description": "the same spec was already registered"},
                        "401": _error("no bearer token"),
                        "403": _error("wrong token"),
                        "409": _error("the id exists with another spec"),
                        "422": _error("invalid field"),
                        "429": _error("RUNAWAY_MAX_ACTIVE_EPISODES episodes are active"),
                        "503": _error("Redis unavailable"),
                        **_GUARDED,
                    },
                }
            },
            "/v1/episodes/{episode_id}": {
                "get": {
                    "summary": "State, RI history, flips and recoveries of one episode",
                    "parameters": [_EPISODE_ID],
                    "responses": {
                        "200": {"description": "the episode"},
                        "404": _error("unknown episode"),
                    },
                },
            },
            "/v1/episodes/{episode_id}/steps": {
                "post": {
                    "summary": "Report one step and get its verdict",
                    "security": _SECURED,
                    "parameters": step_params,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="StepRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("StepVerdict", "the verdict"),
                        "202": {"description": "accepted (wait=false)"},
                        "401": _error("no bearer token"),
                        "403": _error("wrong token"),
                        "404": _error("unknown episode"),
                        "409": _error("duplicate step, a gap, or a finished episode"),
                        "413": _error("body too large"),
                        "422": _error("invalid field"),
                        "503": _error("Redis unavailable"),
                        **_GUARDED,
                    },
                },
            },
            "/v1/episodes/{episode_id}/finish": {
                "post": {
                    "summary": "End an episode (the detectors drop its state)",
                    "security": _SECURED,
                    "parameters": [_EPISODE_ID],
                    "responses": {
                        "200": {"description": "finished"},
                        "404": _error("unknown episode"),
                    },
                },
            },
            "/v1/events": {
                "get": {
                    "summary": "Server-Sent Events: steps, verdicts, flips, recoveries",
                    "parameters": [
                        {"name": "episode_id", "in": "query", "schema": {"type": "string"}},
                        {"name": "kinds", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "text/event-stream"},
                        "429": _error("too many streams from this client"),
                        "503": _error("too many streams in all"),
                    },
                },
            },
            "/v1/traces": {
                "post": {
                    "summary": "OTLP/HTTP trace export: GenAI spans become steps (zero code)",
                    "description": "An OpenTelemetry exporter's endpoint. Each span's "
                    "episode comes from its gen_ai.conversation.id (else its trace id); "
                    "model and tool spans are its steps, published once per span id.",
                    "security": _SECURED,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-protobuf": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                            "application/json": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "ExportTraceServiceResponse (partialSuccess "
                            "counts the rejected spans and says why)"
                        },
                        "400": {"description": "a body that cannot be decoded (a Status)"},
                        "401": _error("no bearer token"),
                        "403": _error("wrong token"),
                        "413": {"description": "export too large"},
                        "415": {
                            "description": "another content type, or protobuf "
                            "without the otel extra"
                        },
                        "503": {"description": "Redis unavailable (retryable)"},
                    },
                }
            },
            "/beta/litellm_basic_guardrail_api": {
                "post": {
                    "summary": "LiteLLM generic guardrail: the conversation's new turns "
                    "become steps; the newest one's verdict is the answer",
                    "security": _SECURED,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="GuardrailRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("GuardrailResponse", "NONE, BLOCKED or GUARDRAIL_INTERVENED"),
                        "400": _error("invalid JSON"),
                        "401": _error("no bearer token"),
                        "403": _error("wrong token"),
                        "413": _error("body too large"),
                        "422": _error("invalid field"),
                        "503": _error("Redis unavailable (the proxy's fallback decides)"),
                        **_GUARDED,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text format"}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Process alive, in-process detector kept running",
                    "responses": {"200": {"description": "ok"}, "503": {"description": "failing"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Redis, detector group, lag and heartbeat",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/": {
                "get": {"summary": "Live page", "responses": {"200": {"description": "text/html"}}}
            },
        },
    }
    for path, operations in openapi_paths(REF).items():
        document["paths"].setdefault(path, {}).update(operations)
    return document
