"""A small OpenAI-compatible HTTP server for fault tests (stdlib only, in a thread).

It answers ``/v1/chat/completions`` in TOOLS and JSON_SCHEMA style with a valid coding
built from the request's own JSON schema (first allowed code, a quote taken from the
response text), and it can be told to misbehave: a queue of faults is consumed one per
chat request. It also implements the minimal ``/v1/files`` and ``/v1/batches``
endpoints the Batch API path needs. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESPONSE_TAG = re.compile(r'<response id="([^"]+)">\n(.*?)\n</response>', re.DOTALL)

FAULTS = {
    "429",  # rate limited, with Retry-After
    "500",
    "502",
    "503",
    "reset",  # connection reset without a response
    "timeout",  # no answer until after the client's read timeout
    "truncated",  # Content-Length longer than the body
    "nonjson",  # 200 with an HTML body
    "bad_code",  # a code outside the codebook
    "bad_quote",  # evidence that is not in the text
    "drop_id",  # a batch answer missing its last item
    "echo_auth",  # 401 whose message quotes the Authorization header, as careless proxies do
    "drip",  # a valid answer sent one byte at a time, drip_interval apart
    "gzip_bomb",  # 200, gzip-encoded: bomb_bytes of JSON whitespace from a small body
    "deep_json",  # 200 application/json: deep_bytes of '[' (nesting no parser survives)
    "html200",  # 200 text/html: a proxy's or captive portal's page
}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return _resolve(root.get("$defs", {})[name], root)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            if option.get("type") != "null":
                return _resolve(option, root)
    return schema


def _allowed(schema: dict[str, Any], root: dict[str, Any]) -> list[Any]:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return []


class FakeOpenAI:
    """The server and its script. Use as a context manager; ``base_url`` ends in /v1."""

    def __init__(
        self, *, latency: float = 0.0, timeout_sleep: float = 2.0, host: str = "127.0.0.1"
    ) -> None:
        # host='127.0.0.2' is still this machine, but not a host the backend treats as
        # local: it lets a test exercise the redaction path for remote endpoints.
        self.host = host
        self.latency = latency
        self.timeout_sleep = timeout_sleep
        self.drip_interval = 0.05
        self.bomb_bytes = 20 * 2**20
        self.deep_bytes = 200_000
        self.faults: deque[str] = deque()
        self.chat_requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_polls_until_done = 1
        self.lock = threading.Lock()
        self.counter = 0
        self.injection_obeyed = False
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            owner = fake

        # A listen backlog of socketserver's default 5 drops SYNs when many clients connect
        # at once, and each dropped one costs the client a second.
        server_class = type(
            "FakeServer",
            (ThreadingHTTPServer,),
            {"request_queue_size": 256, "handle_error": _quiet_disconnects},
        )
        self.server = server_class((self.host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}/v1"

    def add_faults(self, *faults: str) -> None:
        for fault in faults:
            assert fault in FAULTS, fault
        with self.lock:
            self.faults.extend(faults)

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}-{self.counter}"

    # --- answers -------------------------------------------------------------------------
    def completion(self, body: dict[str, Any], fault: str | None = None) -> dict[str, Any]:
        """A chat completion answering ``body`` (TOOLS or JSON_SCHEMA), maybe faulty."""
        schema, tool_name = self._schema(body)
        responses = self._responses(body)
        answer = self._answer(schema, responses, fault)
        arguments = json.dumps(answer)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if tool_name is not None:
            message["tool_calls"] = [
                {
                    "id": self.next_id("call"),
                    "type": "function",
                    "function": {"name": tool_name, "arguments": arguments},
                }
            ]
        else:
            message["content"] = arguments
        prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
        return {
            "id": self.next_id("chatcmpl-fake"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4 + 50,
                "completion_tokens": len(arguments) // 4,
                "total_tokens": prompt_chars // 4 + 50 + len(arguments) // 4,
            },
        }

    def _schema(self, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if body.get("tools"):
            function = body["tools"][0]["function"]
            return function["parameters"], function["name"]
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            return response_format["json_schema"]["schema"], None
        raise ValueError("the fake server supports TOOLS and JSON_SCHEMA modes only")

    def _responses(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        for message in body.get("messages", []):
            if message.get("role") == "user":
                found = RESPONSE_TAG.findall(str(message.get("content") or ""))
                if found:
                    return found
        return []

    def _answer(
        self, schema: dict[str, Any], responses: list[tuple[str, str]], fault: str | None
    ) -> dict[str, Any]:
        properties = schema.get("properties", {})
        if "items" in properties and "relevant" not in properties:
            item_schema = _resolve(properties["items"]["items"], schema)
            items = [self._item(item_schema, schema, rid, text, fault) for rid, text in responses]
            if fault == "drop_id" and len(items) > 1:
                items = items[:-1]
            return {"items": items}
        rid, text = responses[0] if responses else ("?", "")
        return self._item(schema, schema, rid, text, fault)

    def _item(
        self,
        schema: dict[str, Any],
        root: dict[str, Any],
        response_id: str,
        text: str,
        fault: str | None,
    ) -> dict[str, Any]:
        properties = schema.get("properties", {})
        item: dict[str, Any] = {}
        if "response_id" in properties:
            item["response_id"] = response_id
        if "question" in properties:
            question = _resolve(properties["question"], root)
            default = properties["question"].get("default")
            item["question"] = (
                default if default is not None else (_allowed(question, root) or [None])[0]
            )
        item["relevant"] = True
        if "stance" in properties:
            item["stance"] = (_allowed(properties["stance"], root) or [None])[0]
        if "themes" in properties:
            theme_schema = _resolve(properties["themes"]["items"], root)
            codes = _allowed(theme_schema["properties"]["code"], root)
            words = text.split()
            quote = " ".join(words[:5]) if words else text
            code = codes[0]
            # A model that obeys "label everything X" returns X, whatever the codebook says.
            match = re.search(r"label everything (?:as|with) (\w+)", text, re.IGNORECASE)
            if match:
                code = match.group(1)
                self.injection_obeyed = True
            if fault == "bad_code":
                code = "not_a_code_in_the_codebook"
            if fault == "bad_quote":
                quote = "words that the respondent never wrote"
            item["themes"] = [{"code": code, "evidence": quote, "confidence": 0.9}]
        item["rationale"] = "fake server coding"
        item["confidence"] = 0.8
        return item


def _quiet_disconnects(server: ThreadingHTTPServer, request: Any, client_address: Any) -> None:
    # A client killed mid-request (the kill -9 tests: a reset, or a body cut short) is
    # expected; anything else is printed.
    import sys

    if not isinstance(sys.exc_info()[1], ConnectionError | json.JSONDecodeError):
        ThreadingHTTPServer.handle_error(server, request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def setup(self) -> None:
        super().setup()
        # As real servers do: without TCP_NODELAY the headers and the body leave in two
        # segments and Nagle + delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- helpers ---------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, as a crashing proxy would.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # --- routes ----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        owner = self.owner
        owner.headers_seen.append(dict(self.headers))
        if self.path.endswith("/chat/completions"):
            return self._chat(json.loads(self._body()))
        if self.path.endswith("/files"):
            return self._upload()
        if self.path.endswith("/batches"):
            return self._create_batch(json.loads(self._body()))
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        owner = self.owner
        match = re.search(r"/files/([^/]+)/content$", self.path)
        if match and match.group(1) in owner.files:
            data = owner.files[match.group(1)]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        match = re.search(r"/batches/([^/]+)$", self.path)
        if match and match.group(1) in owner.batches:
            batch = owner.batches[match.group(1)]
            batch["_polls"] += 1
            if batch["_polls"] >= owner.batch_polls_until_done and batch["status"] != "completed":
                self._complete_batch(batch)
            self._send(200, {k: v for k, v in batch.items() if not k.startswith("_")})
            return
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _chat(self, body: dict[str, Any]) -> None:
        owner = self.owner
        owner.chat_requests.append(body)
        if owner.latency:
            time.sleep(owner.latency)
        fault = owner.next_fault()
        if fault == "429":
            return self._send(
                429,
                {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                {"Retry-After": "0.05"},
            )
        if fault in ("500", "502", "503"):
            return self._send(int(fault), {"error": {"message": "server error"}})
        if fault == "reset":
            return self._reset()
        if fault == "echo_auth":
            header = self.headers.get("Authorization", "")
            return self._send(
                401, {"error": {"message": f"invalid credentials: {header}", "type": "auth"}}
            )
        if fault == "timeout":
            time.sleep(owner.timeout_sleep)
            return self._reset()
        if fault == "nonjson":
            data = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if fault in ("gzip_bomb", "deep_json", "html200"):
            return self._hostile_body(fault)
        completion = owner.completion(body, fault)
        if fault == "drip":
            data = json.dumps(completion).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            for index in range(len(data)):
                # The client's per-read timeout never trips: a byte comes well within it.
                time.sleep(owner.drip_interval)
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
            return None
        if fault == "truncated":
            data = json.dumps(completion).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self._reset()
        return self._send(200, completion)

    def _hostile_body(self, fault: str) -> None:
        owner = self.owner
        content_type = "application/json"
        headers: dict[str, str] = {}
        if fault == "gzip_bomb":
            # Valid JSON once inflated: megabytes of whitespace, then an object.
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = b" " * 2**20
            parts = [compressor.compress(block) for _ in range(owner.bomb_bytes // len(block))]
            data = b"".join(parts) + compressor.compress(b"{}") + compressor.flush()
            headers["Content-Encoding"] = "gzip"
        elif fault == "deep_json":
            data = b"[" * owner.deep_bytes
        else:
            data = b"<html><head><title>Sign in</title></head><body>Wi-Fi login</body></html>"
            content_type = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except ConnectionError:  # the client stopped reading at its cap
            pass

    def _upload(self) -> None:
        owner = self.owner
        raw = self._body()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
        )
        content = b""
        filename = "upload.jsonl"
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                payload = part.get_payload(decode=True)
                content = payload if isinstance(payload, bytes) else b""
                filename = part.get_filename() or filename
        file_id = owner.next_id("file")
        owner.files[file_id] = content
        self._send(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": "batch",
                "status": "processed",
            },
        )

    def _create_batch(self, body: dict[str, Any]) -> None:
        owner = self.owner
        batch_id = owner.next_id("batch")
        lines = owner.files[body["input_file_id"]].decode().splitlines()
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_polls": 0,
        }
        owner.batches[batch_id] = batch
        self._send(200, {k: v for k, v in batch.items() if not k.startswith("_")})

    def _complete_batch(self, batch: dict[str, Any]) -> None:
        owner = self.owner
        out = []
        for line in owner.files[batch["input_file_id"]].decode().splitlines():
            request = json.loads(line)
            fault = owner.next_fault()
            completion = owner.completion(request["body"], fault)
            out.append(
                json.dumps(
                    {
                        "id": owner.next_id("batch_req"),
                        "custom_id": request["custom_id"],
                        "response": {
                            "status_code": 200,
                            "request_id": owner.next_id("req"),
                            "body": completion,
                        },
                        "error": None,
                    }
                )
            )
        file_id = owner.next_id("file")
        owner.files[file_id] = ("\n".join(out) + "\n").encode()
        batch["status"] = "completed"
        batch["output_file_id"] = file_id
        batch["request_counts"] = {"total": len(out), "completed": len(out), "failed": 0}


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/llm_fake_server.py
    with FakeOpenAI() as fake:
        print(fake.base_url, flush=True)
        threading.Event().wait()


# --- test helpers: a small real project ---------------------------------------------------
SAMPLE_TEXTS = [
    "The pathway approach helped us plan the whole service, not just one product.",
    "Clinical leadership made the difference: a consultant championed it on the ward.",
    "We never had the data to show uptake, so the business case stalled.",
    "Funding was short term and the pilot ended before we could evaluate it.",
    "Staff did not have time to learn another system on top of the day job.",
    "n/a",
    "Commissioners wanted evidence of return on investment before paying.",
    "Patients liked it but the IT team could not integrate it with the record.",
    "Informal networks of nurses spread the idea faster than any policy.",
    "It resonates: without a clear national policy lever nothing moved.",
    "Partly. Leadership matters, but so does protected time for staff.",
    "We had good data but nobody used it to make decisions.",
]


def make_project(db_path: Any, n: int = 8, texts: list[str] | None = None) -> Any:
    """A project file with the built-in codebook and ``n`` responses across questions."""
    from coder.codebook import builtin_codebook_path, load_codebook
    from coder.store import Store
    from schemas import Response

    store = Store(db_path)
    codebook = load_codebook(builtin_codebook_path())
    store.save_codebook(codebook, source="builtin")
    texts = texts or SAMPLE_TEXTS
    questions = codebook.question_ids
    store.add_responses(
        Response(
            id=f"r{i:03d}",
            text=texts[i % len(texts)] + ("" if i < len(texts) else f" ({i})"),
            question=questions[i % min(3, len(questions))],
        )
        for i in range(n)
    )
    return store


def coder_executable() -> str:
    """The ``coder`` console script of the running interpreter's environment."""
    return str(Path(sys.executable).parent / "coder")


def precode_args(db: Path, fake: FakeOpenAI, *extra: str) -> list[str]:
    """``coder precode`` arguments for the openai backend against ``fake`` (fast retries)."""
    return [
        "precode", "--db", str(db), "--backend", "openai", "--model", "gpt-4o-mini",
        "--base-url", fake.base_url, "--mode", "tools", "--initial-wait", "0.001", *extra,
    ]
