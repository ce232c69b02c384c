"""instructor's ``create`` posts the chat request itself (coder.llm.direct_chat).

The direct path must be indistinguishable from the openai client for everything coder
relies on: the request sent (body and auth header), the exceptions raised for each HTTP
status and transport failure (class, message, body, the answer's headers for
Retry-After), and, end to end against the fault-injecting server, the same proposals,
failed rows and audit rows. ``CODER_LLM_CLIENT=openai`` keeps the openai client.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import instructor
import openai
import pytest

from coder.llm import direct_chat
from coder.llm.classifier import LLMClassifier
from coder.llm.client import instructor_client
from coder.llm.retry import (
    AnswerDeadline,
    describe_error,
    is_transient,
    retry_after_seconds,
)
from coder.precode import precode
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project

KEY = "sk-direct-chat-test-0123456789"
BASE_URL = "http://127.0.0.1:9/v1"
PARAMS: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hi — « é »\n"}],
    "temperature": 0.0,
}


def _answer(status: int, content: bytes, headers: dict[str, str] | None = None) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content, headers=headers or {})

    return handler


def _openai_client(transport: httpx2.AsyncBaseTransport) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=KEY,
        base_url=BASE_URL,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )


async def _both(transport: httpx2.AsyncBaseTransport) -> tuple[Any, Any]:
    """What the openai client and the direct client return or raise for one call."""
    outcomes: list[Any] = []
    direct = direct_chat.DirectChat(transport, BASE_URL, KEY, request_timeout=5.0)
    for create in (_openai_client(transport).chat.completions.create, direct.create):
        try:
            outcomes.append(await create(**PARAMS))
        except Exception as error:  # noqa: BLE001 - the error is the outcome compared
            outcomes.append(error)
    return outcomes[0], outcomes[1]


def test_the_client_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = LLMClassifier(model="m", base_url=BASE_URL)
    monkeypatch.delenv(direct_chat.ENV_VAR, raising=False)
    client = instructor_client(classifier, KEY)
    assert isinstance(client, instructor.AsyncInstructor)
    assert isinstance(client.client, direct_chat.DirectChat)
    monkeypatch.setenv(direct_chat.ENV_VAR, "openai")
    assert isinstance(instructor_client(classifier, KEY).client, openai.AsyncOpenAI)


@pytest.mark.parametrize(
    ("status", "content", "error_class"),
    [
        (400, b'{"error": {"message": "bad request", "type": "invalid"}}', "BadRequestError"),
        (401, b'{"error": {"message": "no key"}}', "AuthenticationError"),
        (403, b'{"error": "forbidden"}', "PermissionDeniedError"),
        (404, b"Not Found", "NotFoundError"),
        (409, b"{}", "ConflictError"),
        (422, b"[1, 2]", "UnprocessableEntityError"),
        (429, b'{"error": {"message": "Rate limit reached"}}', "RateLimitError"),
        (500, b"", "InternalServerError"),
        (502, b"<html>Bad Gateway</html>", "InternalServerError"),
        (418, b"teapot", "APIStatusError"),
        (302, b"", "APIStatusError"),
    ],
)
def test_each_status_raises_what_the_openai_client_raises(
    status: int, content: bytes, error_class: str
) -> None:
    headers = {"content-type": "application/json", "retry-after": "3"}
    expected, got = asyncio.run(_both(httpx2.MockTransport(_answer(status, content, headers))))
    assert type(expected).__name__ == type(got).__name__ == error_class
    assert str(got) == str(expected)
    assert got.status_code == expected.status_code == status
    assert got.body == expected.body
    # Retry-After is read from the error's response, as coder.llm.retry does.
    assert retry_after_seconds(got) == retry_after_seconds(expected) == 3.0
    assert is_transient(got) == is_transient(expected)


@pytest.mark.parametrize(
    "raised",
    [
        httpx2.ConnectError("connection refused"),
        httpx2.ReadTimeout("timed out"),
        AnswerDeadline("no complete answer within 1 s"),
        httpx2.ProxyError("cannot reach the proxy"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_transport_failures_raise_what_the_openai_client_raises(raised: Exception) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise raised

    expected, got = asyncio.run(_both(httpx2.MockTransport(handler)))
    assert type(got) is type(expected)
    assert isinstance(got, openai.APIConnectionError | openai.APITimeoutError)
    assert str(got) == str(expected)
    # The transport's own reason stays in the chain: it is what the user is shown.
    assert got.__cause__ is raised
    assert describe_error(got) == describe_error(expected)
    assert is_transient(got) and is_transient(expected)


def test_a_good_answer_is_the_same_completion() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764460000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        },
    }
    content = json.dumps(completion).encode()
    expected, got = asyncio.run(_both(httpx2.MockTransport(_answer(200, content))))
    assert type(got) is type(expected) is openai.types.chat.ChatCompletion
    assert got.model_dump() == expected.model_dump()


def test_an_answer_that_bends_the_schema_is_read_leniently_like_the_openai_client() -> None:
    # No "created" or "object", a tool call without "type", an extra field: a server's
    # OpenAI shim, which the openai client reads without validating.
    content = json.dumps(
        {
            "id": "x",
            "model": "shim",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    "finish_reason": "stop",
                    "extra": 1,
                }
            ],
        }
    ).encode()
    expected, got = asyncio.run(_both(httpx2.MockTransport(_answer(200, content))))
    assert got.model == expected.model == "shim"
    [call] = got.choices[0].message.tool_calls
    assert call.function.arguments == expected.choices[0].message.tool_calls[0].function.arguments


def test_arguments_only_the_openai_client_understands_are_refused() -> None:
    chat = direct_chat.DirectChat(
        httpx2.MockTransport(_answer(200, b"{}")), BASE_URL, KEY, request_timeout=1.0
    )
    with pytest.raises(TypeError, match=direct_chat.ENV_VAR):
        asyncio.run(chat.create(**PARAMS, extra_body={"x": 1}))
    with pytest.raises(TypeError, match="cannot be sent as JSON"):
        chat.request({**PARAMS, "temperature": object()})


def test_the_url_keeps_the_base_path_and_query() -> None:
    chat = direct_chat.DirectChat(
        httpx2.MockTransport(_answer(200, b"{}")),
        "https://example.org/openai/deployments/x/?api-version=1",
        KEY,
        request_timeout=1.0,
    )
    request = chat.request(PARAMS)
    assert str(request.url) == (
        "https://example.org/openai/deployments/x/chat/completions?api-version=1"
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == PARAMS


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _run(tmp_path: Path, client: str, mode: str, faults: list[str], name: str) -> dict[str, Any]:
    """Pre-code 3 answers through ``client`` with ``faults`` queued; what was sent and stored."""
    db = tmp_path / f"{name}.db"
    make_project(db, n=3).close()
    with FakeOpenAI(timeout_sleep=1.5) as fake, Store(db) as store:
        fake.add_faults(*faults)
        classifier = LLMClassifier(
            model="gpt-4o-mini",
            base_url=fake.base_url,
            mode=mode,
            shortlist=False,
            concurrency=1,
            initial_wait=0.001,
            max_wait=0.01,
            max_attempts=3,
            request_timeout=0.8,
        )
        precode(store, classifier)
        proposals = [
            (row["response_id"], row["status"], row["error"], row["output"])
            for row in store.db.query(
                "select response_id, status, error, output from proposals order by id"
            )
        ]
        calls = [
            (json.loads(row["response"] or "null") or {}).get("status")
            for row in store.db.query("select response from llm_calls order by id")
        ]
        errors = [row["error"] for row in store.db.query("select error from llm_calls order by id")]
        return {
            "bodies": fake.chat_requests,
            "auth": [_header(headers, "authorization") for headers in fake.headers_seen],
            "content_type": {_header(headers, "content-type") for headers in fake.headers_seen},
            "proposals": proposals,
            "call_statuses": calls,
            "call_errors": errors,
        }


@pytest.mark.parametrize(
    ("mode", "faults"),
    [
        ("tools", []),
        ("json_schema", []),
        ("tools", ["429", "500", "reset", "truncated", "nonjson", "bad_quote"]),
        ("tools", ["429", "429", "429"]),
        ("tools", ["timeout", "timeout", "timeout"]),
    ],
    ids=["tools", "json_schema", "faults", "429-exhausted", "timeouts"],
)
def test_either_client_sends_the_same_and_stores_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, faults: list[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(direct_chat.ENV_VAR, "openai")
    expected = _run(tmp_path, "openai", mode, faults, "openai")
    monkeypatch.delenv(direct_chat.ENV_VAR)
    got = _run(tmp_path, "direct", mode, faults, "direct")
    assert got["bodies"] == expected["bodies"]
    assert got["auth"] == expected["auth"] and set(got["auth"]) == {f"Bearer {KEY}"}
    assert got["content_type"] == expected["content_type"] == {"application/json"}
    # Same proposals, failed rows and error texts (response ids are the same project's).
    assert got["proposals"] == expected["proposals"]
    assert got["call_statuses"] == expected["call_statuses"]
    assert got["call_errors"] == expected["call_errors"]
    assert KEY not in json.dumps([got["proposals"], got["call_errors"]])


@pytest.mark.parametrize("mode", ["tools", "json", "json_schema", "md_json"])
def test_every_mode_sends_the_same_body_and_parses_the_same(mode: str) -> None:
    # The fault server answers TOOLS and JSON_SCHEMA only: here an HTTP-level fake that
    # answers whatever the mode asked for.
    from pydantic import BaseModel

    from coder.llm.client import MODES

    class Answer(BaseModel):
        answer: str

    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        message: dict[str, Any] = {"role": "assistant", "content": '{"answer": "é"}'}
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            call = {"name": name, "arguments": '{"answer": "é"}'}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": call}],
            }
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [choice],
            },
        )

    transport = httpx2.MockTransport(handler)
    direct = direct_chat.DirectChat(transport, BASE_URL, KEY, request_timeout=5.0)
    clients = [
        instructor.from_openai(_openai_client(transport), mode=MODES[mode]),
        instructor.AsyncInstructor(
            client=direct,
            create=instructor.patch(create=direct.create, mode=MODES[mode]),
            mode=MODES[mode],
            provider=instructor.Provider.OPENAI,
        ),
    ]

    async def ask(client: Any) -> Any:
        return await client.create_with_completion(
            messages=[{"role": "user", "content": "Say « é »"}],
            response_model=Answer,
            model="m",
            max_retries=0,
        )

    (expected, _), (got, completion) = (asyncio.run(ask(client)) for client in clients)
    assert got.model_dump() == expected.model_dump() == {"answer": "é"}
    assert completion.model == "m"
    assert bodies[0] == bodies[1]
