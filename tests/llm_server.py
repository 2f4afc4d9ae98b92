"""A real OpenAI-compatible HTTP server for tests and benchmarks: chat completions, files, batches.

The backend is tested through the official client over real sockets, so what is tested is what
runs against a provider. Answers are computed from the prompt by a pluggable responder; faults are
scripted per prompt (keyed by the last user message) and consumed one per completion attempt, so
the number of requests each prompt needs is exact whatever the thread interleaving; ``fail_all``
applies one fault to every attempt no script covers (an outage). Everything the server receives
and every token it reports is counted for the tests to assert on.

Fault kinds, per completion attempt (chat call or Batch API line):
  rate_limit    429 (batch: an error-file line with status 429)
  server_error  500 (batch: an error-file line with status 500)
  timeout       chat: sleeps ``timeout_sleep_s`` then drops the connection; batch: line left out
  missing       chat: drops the connection at once; batch: line left out
  truncated     the answer cut in half, finish_reason "length"
  malformed     the answer is not JSON
  wrong_fields  valid JSON with fields the schema does not have
  unauthorized  401 whose message quotes the Authorization header (as a careless proxy might)
  refusal       a refusal message instead of content
  duplicate     chat: no effect; batch: the output line appears twice
Control faults (``control_faults``, keyed by "files.create", "batches.create", "batches.retrieve",
"files.content") take rate_limit, server_error or unauthorized.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

Responder = Callable[[list[dict[str, Any]]], str]


class Keywords(BaseModel):
    """The answer schema of the ready-made task shared by the tests and the benchmark."""

    keywords: list[str]


def keywords_responder(messages: list[dict[str, Any]]) -> str:
    """The "model" for ``Keywords``: the three longest words of the last user message."""
    words = sorted(set(_last_user(messages).lower().split()), key=lambda w: (-len(w), w))
    return Keywords(keywords=words[:3]).model_dump_json()


def expected_keywords(caption: str) -> list[str]:
    return Keywords.model_validate_json(
        keywords_responder([{"role": "user", "content": caption}])
    ).keywords


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for a tokenizer: words plus one per message."""
    return sum(len(str(m.get("content", "")).split()) + 1 for m in messages)


def completion_tokens(content: str) -> int:
    return max(1, len(content) // 4)


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


class _Done(Exception):
    """Raised inside a handler to drop the connection without an answer."""


class LLMServer:
    """Start with ``with LLMServer(responder) as server:``; pass ``server.base_url`` to the client.

    Tests may set ``faults``, ``fail_all``, ``control_faults``, ``hold_batches``,
    ``polls_to_complete``, ``latency_s`` and ``timeout_sleep_s`` at any time; counters are read
    after the client returns.
    """

    def __init__(self, responder: Responder = keywords_responder) -> None:
        self.responder = responder
        self.faults: dict[str, list[str]] = {}
        self.fail_all: str | None = None
        self.control_faults: dict[str, list[str]] = {}
        self.hold_batches = False
        self.polls_to_complete = 2
        self.latency_s = 0.0
        self.timeout_sleep_s = 1.0
        self.counts: Counter[str] = Counter()  # endpoint → requests received
        self.calls: Counter[str] = Counter()  # prompt → completion attempts (chat + batch lines)
        # Tokens in delivered answers: "prompt"/"completion", and by source ("batch.prompt", …).
        self.tokens: Counter[str] = Counter()
        self.authorization: set[str] = set()
        self.max_inflight = 0
        self._inflight = 0
        self._queues: dict[str, deque[str]] = defaultdict(deque)
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> LLMServer:
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a handler sleeping out a timeout must not block exit
        kwargs = {"poll_interval": 0.02}  # a quick shutdown keeps the tests fast
        threading.Thread(target=self._httpd.serve_forever, kwargs=kwargs, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Forget faults and counters, as if freshly started (files and batches stay)."""
        with self._lock:
            self.faults, self.control_faults, self.fail_all = {}, {}, None
            self._queues.clear()
            for counter in (self.counts, self.calls, self.tokens):
                counter.clear()

    # --- fault scripting ----------------------------------------------------------------------

    def _fault(self, prompt: str) -> str | None:
        """The next scripted fault for this prompt; the script is copied into a queue on first
        use so a test can set ``faults`` once and read it back unchanged."""
        with self._lock:
            self.calls[prompt] += 1
            if prompt in self.faults and prompt not in self._queues:
                self._queues[prompt] = deque(self.faults[prompt])
            queue = self._queues.get(prompt)
            return queue.popleft() if queue else self.fail_all

    def _control_fault(self, endpoint: str) -> str | None:
        with self._lock:
            script = self.control_faults.get(endpoint)
            return script.pop(0) if script else None

    # --- completions --------------------------------------------------------------------------

    def complete(
        self, body: dict[str, Any], auth: str, source: str
    ) -> tuple[int, dict[str, Any], str | None]:
        """One completion attempt: HTTP status, JSON body and the fault applied (raises _Done to
        drop it)."""
        messages = body.get("messages", [])
        fault = self._fault(_last_user(messages))
        if fault in ("rate_limit", "server_error", "unauthorized"):
            return (*_error_for(fault, auth), fault)
        if fault in ("timeout", "missing"):
            raise _Done(fault)
        content: str | None = self.responder(messages)
        finish, refusal = "stop", None
        if fault == "refusal":
            content, refusal = None, "I can't help with that."
        elif fault == "truncated":
            content, finish = content[: len(content) // 2], "length"
        elif fault == "malformed":
            content = "{" + content.replace('"', "'")
        elif fault == "wrong_fields":
            content = json.dumps({"unexpected": 1})
        usage = {"prompt_tokens": prompt_tokens(messages)}
        usage["completion_tokens"] = completion_tokens(content or refusal or "")
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self._lock:
            for prefix in ("", f"{source}."):
                self.tokens[f"{prefix}prompt"] += usage["prompt_tokens"]
                self.tokens[f"{prefix}completion"] += usage["completion_tokens"]
        answer = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        return 200, answer, fault

    # --- files and batches --------------------------------------------------------------------

    def add_file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        with self._lock:
            file_id = f"file-{len(self._files) + 1}"
            self._files[file_id] = data
        return _file_object(file_id, name, len(data), purpose)

    def file(self, file_id: str) -> bytes | None:
        return self._files.get(file_id)

    def create_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("input_file_id") not in self._files:
            return 400, {"error": {"message": "unknown input_file_id", "type": "invalid_request"}}
        with self._lock:
            batch_id = f"batch_{len(self._batches) + 1}"
            self._batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "created_at": int(time.time()),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "polls": 0,
            }
            return 200, self._public(batch_id)

    def poll_batch(self, batch_id: str, auth: str) -> tuple[int, dict[str, Any]]:
        """Each poll moves the batch on: validating → in_progress → … → completed."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return 404, {"error": {"message": f"no batch {batch_id}", "type": "not_found"}}
            batch["polls"] += 1
            if batch["status"] == "validating":
                batch["status"] = "in_progress"
            run = batch["status"] == "in_progress" and not self.hold_batches
            run = run and batch["polls"] >= self.polls_to_complete
        if run:
            self._run_batch(batch, auth)
        with self._lock:
            return 200, self._public(batch_id)

    def _run_batch(self, batch: dict[str, Any], auth: str) -> None:
        outputs, errors = [], []
        for raw in self._files[batch["input_file_id"]].decode().splitlines():
            line = json.loads(raw)
            try:
                status, body, fault = self.complete(line["body"], auth, "batch")
            except _Done:
                continue
            out = {
                "id": f"batch_req_{line['custom_id'][:8]}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": "req", "body": body},
                "error": None,
            }
            repeats = 2 if fault == "duplicate" else 1
            (outputs if status == 200 else errors).extend([json.dumps(out)] * repeats)
        with self._lock:
            for name, lines in (("output_file_id", outputs), ("error_file_id", errors)):
                if lines:
                    file_id = f"file-{len(self._files) + 1}"
                    self._files[file_id] = ("\n".join(lines) + "\n").encode()
                    batch[name] = file_id
            batch["status"] = "completed"

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self._batches[batch_id].items() if k != "polls"}


def _error_for(fault: str, auth: str) -> tuple[int, dict[str, Any]]:
    status, message = {
        "rate_limit": (429, "Rate limit reached"),
        "server_error": (500, "The server had an error"),
        "unauthorized": (401, f"Incorrect API key provided: {auth}"),
    }[fault]
    return status, {"error": {"message": message, "type": fault, "code": fault}}


def _file_object(file_id: str, name: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": name,
        "purpose": purpose,
        "status": "processed",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out separately; don't wait on ACKs
    app: LLMServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: test output stays readable."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._route("POST", body)

    def do_GET(self) -> None:
        self._route("GET", b"")

    def _route(self, method: str, body: bytes) -> None:
        app, path = self.app, self.path.split("?")[0]
        auth = self.headers.get("Authorization", "")
        with app._lock:
            app.authorization.add(auth)
        try:
            if method == "POST" and path == "/v1/chat/completions":
                self._count("chat")
                self._chat(json.loads(body), auth)
            elif method == "POST" and path == "/v1/files":
                self._count("files.create")
                self._respond(*self._control("files.create", auth) or self._upload(body))
            elif method == "GET" and (m := re.fullmatch(r"/v1/files/([^/]+)/content", path)):
                self._count("files.content")
                data = app.file(m.group(1))
                if fault := self._control("files.content", auth):
                    self._respond(*fault)
                elif data is None:
                    self._respond(404, {"error": {"message": "no such file"}})
                else:
                    self._send(200, data, "application/octet-stream")
            elif method == "POST" and path == "/v1/batches":
                self._count("batches.create")
                self._respond(
                    *self._control("batches.create", auth) or app.create_batch(json.loads(body))
                )
            elif method == "GET" and (m := re.fullmatch(r"/v1/batches/([^/]+)", path)):
                self._count("batches.retrieve")
                self._respond(
                    *self._control("batches.retrieve", auth) or app.poll_batch(m.group(1), auth)
                )
            else:
                self._respond(404, {"error": {"message": f"no route {method} {path}"}})
        except _Done:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _count(self, endpoint: str) -> None:
        with self.app._lock:
            self.app.counts[endpoint] += 1

    def _control(self, endpoint: str, auth: str) -> tuple[int, dict[str, Any]] | None:
        fault = self.app._control_fault(endpoint)
        return _error_for(fault, auth) if fault else None

    def _chat(self, body: dict[str, Any], auth: str) -> None:
        app = self.app
        with app._lock:
            app._inflight += 1
            app.max_inflight = max(app.max_inflight, app._inflight)
        try:
            time.sleep(app.latency_s)
            try:
                status, payload, _ = app.complete(body, auth, "chat")
            except _Done as done:
                if str(done) == "timeout":
                    time.sleep(app.timeout_sleep_s)
                raise
            self._respond(status, payload)
        finally:
            with app._lock:
                app._inflight -= 1

    def _upload(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Multipart form (file + purpose), parsed with the stdlib email parser."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields = {
            part.get_param("name", header="content-disposition"): part for part in form.iter_parts()
        }
        if "file" not in fields or "purpose" not in fields:
            return 400, {"error": {"message": "need file and purpose"}}
        upload = fields["file"]
        purpose = fields["purpose"].get_payload(decode=True).decode()
        data = upload.get_payload(decode=True)
        return 200, self.app.add_file(upload.get_filename() or "upload", data, purpose)

    def _respond(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
