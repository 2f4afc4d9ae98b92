"""LLM backend for curation ops: validated JSON answers from any OpenAI-compatible server.

Ops (keyword extraction, caption rewriting, caption editing) send many small prompts and need one
validated answer per prompt, in order, at a known cost. So every answer is checked against a
pydantic schema and retried (bounded) when it is not valid; anything that still fails comes back as
a recorded failure instead of disappearing. Answers are cached on disk (append-only JSONL) by a hash
of everything that determines them, and submitted batches are recorded, so a rerun or a resumed
run pays for nothing twice. Two transports: concurrent chat
completions under a rate limit, or the Batch API (half price, hours of latency), whose missing or
failed lines are retried through chat.

The API key is read from the environment only and is scrubbed from every message this module
writes (logs, failure reasons, exceptions); cache files never contain it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import re
import secrets
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from benchmark.spec.numbers import Seed
from benchmark.store import write_atomic

if TYPE_CHECKING:  # the client loads when a backend is made: recipes validate without it
    from openai.types.chat import ChatCompletion

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# 408/409 are OpenAI's "try again" conflicts; 429 is rate limiting; 5xx are server faults.
RETRYABLE_STATUS = frozenset({408, 409, 429})


class Price(BaseModel):
    """USD per one million tokens."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    input: float = Field(ge=0)
    output: float = Field(ge=0)


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
}


class LLMConfig(BaseModel):
    """How a recipe step talks to an LLM. Recipes embed this, so unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: the client's default (api.openai.com or OPENAI_BASE_URL)
    api_key_env: str = "OPENAI_API_KEY"
    mode: Literal["chat", "batch"] = "chat"
    max_concurrency: int = Field(8, ge=1, le=1024)
    requests_per_minute: float | None = Field(None, gt=0)
    max_retries: int = Field(3, ge=0, le=100)  # backoff doubles per retry
    # Fraction of a step's prompts that may still fail after their retries; above it the step
    # fails (see ``check_failures``).
    max_failures: float = Field(0.05, ge=0, le=1)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    temperature: float = Field(0.0, ge=0, le=2)
    seed: Seed | None = 0
    cache_dir: Path | None = None
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    batch_discount: float = Field(0.5, ge=0, le=1)  # fraction taken off the price in batch mode
    retry_base_s: float = Field(1.0, ge=0, le=3600)
    retry_max_s: float = Field(60.0, ge=0, le=3600)
    batch_poll_s: float = Field(30.0, ge=0, le=3600)
    batch_max_requests: int = Field(50_000, ge=1)  # the Batch API's per-file limit

    @model_validator(mode="after")
    def _priced(self) -> LLMConfig:
        # A cost report with a silent zero is worse than an error: make the price explicit.
        if self.model not in self.prices:
            raise ValueError(
                f"no price for model {self.model!r}; add prices: {{{self.model}: "
                "{input: USD per 1M tokens, output: USD per 1M tokens}} (0 for a free local server)"
            )
        return self


@dataclass(frozen=True)
class LLMRequest:
    """One prompt. ``id`` names the answer; it must be unique within a call."""

    id: str
    messages: list[dict[str, str]]

    @classmethod
    def of(cls, id: str, user: str, system: str | None = None) -> LLMRequest:
        messages = [{"role": "system", "content": system}] if system is not None else []
        return cls(id, [*messages, {"role": "user", "content": user}])


@dataclass
class LLMResult:
    """The answer to one request: ``value`` when ok, ``reason`` when failed.

    Tokens and attempts are what *this* call spent on the request; a request answered from the
    cache (or by an identical request in the same call) has ``cached`` set and spent nothing.
    """

    id: str
    status: Literal["ok", "failed"]
    value: Any = None  # an instance of the schema model, or a dict when the schema was a dict
    reason: str | None = None
    attempts: int = 0
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Usage:
    """What a curation step spent on the LLM, for its cost report (``as_dict`` → JSON).

    ``requests`` counts completion requests sent (chat calls plus Batch API lines, retries
    included); ``retries`` the re-sent ones; ``cached`` the answers that needed no request;
    ``failures`` the results recorded as failed. Tokens are as the server reported them, for every
    answer received, valid or not, because the provider bills them all.
    """

    requests: int = 0
    batch_requests: int = 0
    cached: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


class LLMError(RuntimeError):
    """The backend cannot run at all (no key, batch submission refused); messages are redacted
    and the client's exception is not chained, because its text may quote the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Outcome:
    """Per unique prompt, what happened so far; becomes one or more LLMResults. ``final``
    marks failures that asking again cannot fix (a refusal, a 400)."""

    value: BaseModel | None = None
    reason: str | None = None
    final: bool = False
    attempts: int = 0
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Redactor:
    """Removes the API key from text. Keys shorter than 8 characters are placeholders for local
    servers (``"x"``), not secrets, and replacing them would garble every message."""

    def __init__(self, secret: str) -> None:
        self._secret = secret if len(secret) >= 8 else None

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


class _RateLimiter:
    """Spaces request starts evenly, so a burst from the thread pool never trips a per-minute
    limit; slots are handed out under a lock and slept on outside it."""

    def __init__(self, per_minute: float | None) -> None:
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        time.sleep(start - now)


class _Cache:
    """Validated answers as append-only JSONL: one file per backend, one line per answer.

    Each line goes out in a single ``write`` on an ``O_APPEND`` descriptor, so a killed process
    leaves at most a torn last line, which loading skips (that answer is simply asked again).
    A file per writer keeps concurrent processes (Ray workers) from interleaving lines, and a line
    per answer avoids millions of tiny files at pool scale. Answers are loaded once, on first use.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._answers: dict[str, str] | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, str]:
        if self._answers is None:
            answers, torn = {}, 0
            for path in sorted(self.root.glob("answers-*.jsonl")):
                for raw in path.read_bytes().splitlines():
                    try:
                        entry = json.loads(raw)
                        answers[entry["key"]] = entry["content"]
                    except (ValueError, KeyError, TypeError):
                        torn += 1
            if torn:
                log.warning("skipped %d torn line(s) in the LLM cache %s", torn, self.root)
            self._answers = answers
        return self._answers

    def get(self, key: str, schema: type[BaseModel]) -> BaseModel | None:
        content = self._loaded().get(key)
        if content is None:
            return None
        try:
            return schema.model_validate_json(content)
        except ValidationError:  # the schema's validators changed under the same JSON schema
            return None

    def put(self, key: str, content: str, model: str) -> None:
        line = json.dumps({"key": key, "model": model, "content": content}) + "\n"
        with self._lock:
            if self._fd is None:
                self.root.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%dT%H%M%S")
                name = f"answers-{stamp}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                self._fd = os.open(self.root / name, flags, 0o644)
                weakref.finalize(self, os.close, self._fd)
            os.write(self._fd, line.encode())
            self._loaded()[key] = content


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}


def schema_model(schema: dict[str, Any], name: str = "Answer") -> type[BaseModel]:
    """A pydantic model for a JSON schema, so recipes (which cannot hold Python) can still ask
    for validated answers. Supports objects, arrays, enums, scalar types and type lists."""
    if schema.get("type") != "object" or "properties" not in schema:
        raise ValueError(f"schema {name}: the top level must be an object with properties")
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, sub in schema["properties"].items():
        annotation = _json_type(sub, f"{name}_{prop}")
        info = Field(description=sub.get("description"))
        if prop not in required:
            annotation, info = annotation | None, Field(None, description=sub.get("description"))
        fields[prop] = (annotation, info)
    config = ConfigDict(strict=True, extra="forbid")
    return create_model(
        re.sub(r"[^A-Za-z0-9_]", "_", schema.get("title", name)), __config__=config, **fields
    )


def _json_type(schema: dict[str, Any], name: str) -> Any:
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        return reduce(operator.or_, (_json_type({**schema, "type": k}, name) for k in kind))
    if kind == "array":
        return list[_json_type(schema["items"], name)] if "items" in schema else list
    if kind == "object":
        return schema_model(schema, name)
    if kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    raise ValueError(f"schema {name}: unsupported JSON schema {json.dumps(schema)[:120]}")


def _response_format(schema: type[BaseModel]) -> dict[str, Any]:
    from openai.lib._pydantic import to_strict_json_schema  # the client's own strict rewrite

    name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64]
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": to_strict_json_schema(schema), "strict": True},
    }


class LLMBackend:
    """Sends prompts, validates answers, caches them and keeps the ``usage`` tally.

    One backend per curation step: ``usage`` accumulates over its calls and is what the step
    reports. Safe to call from one thread at a time; it parallelises internally.
    """

    def __init__(self, config: LLMConfig) -> None:
        from openai import OpenAI

        self.config = config
        self.usage = Usage()
        key = os.environ.get(config.api_key_env)
        if not key:
            raise LLMError(f"no API key: set the environment variable {config.api_key_env}")
        self._redact = _Redactor(key)
        # Retries are ours, not the client's, so that each one is counted and bounded once.
        self._client = OpenAI(
            api_key=key, base_url=config.base_url, timeout=config.timeout_s, max_retries=0
        )
        self._limiter = _RateLimiter(config.requests_per_minute)
        self._cache = _Cache(config.cache_dir) if config.cache_dir else None
        self._lock = threading.Lock()

    def complete_json(
        self, requests: list[LLMRequest], schema: type[BaseModel] | dict[str, Any]
    ) -> list[LLMResult]:
        """One result per request, in request order, each validated against ``schema``.

        Identical prompts are sent once and share the answer (a cached rerun would give them
        the same answer anyway, so sending both would only make runs disagree).
        """
        dups = [i for i, n in Counter(r.id for r in requests).items() if n > 1]
        if dups:
            raise ValueError(
                f"duplicate request id {dups[0]!r}: ids name the answers and must be unique"
            )
        model = schema if isinstance(schema, type) else schema_model(schema)
        fmt = _response_format(model)
        bodies = [self._body(r, fmt) for r in requests]
        keys = [_key(b) for b in bodies]
        outcomes: dict[str, _Outcome] = {}
        pending: dict[str, dict[str, Any]] = {}
        for key, body in zip(keys, bodies, strict=True):
            if key in outcomes or key in pending:
                continue
            hit = self._cache.get(key, model) if self._cache else None
            if hit is not None:
                outcomes[key] = _Outcome(value=hit, cached=True)
            else:
                pending[key] = body
        if self.config.mode == "batch" and pending:
            outcomes.update(self._run_batches(pending, model))
        else:
            outcomes.update(
                self._run_chats({k: (b, _Outcome()) for k, b in pending.items()}, model)
            )
        return self._results(requests, keys, outcomes, dict_value=not isinstance(schema, type))

    def _body(self, request: LLMRequest, fmt: dict[str, Any]) -> dict[str, Any]:
        body = {
            "model": self.config.model,
            "messages": request.messages,
            "response_format": fmt,
            "temperature": self.config.temperature,
        }
        if self.config.seed is not None:
            body["seed"] = self.config.seed
        return body

    def _results(
        self,
        requests: list[LLMRequest],
        keys: list[str],
        outcomes: dict[str, _Outcome],
        dict_value: bool,
    ) -> list[LLMResult]:
        results, seen = [], set()
        for request, key in zip(requests, keys, strict=True):
            o = outcomes[key]
            ok = o.value is not None
            value = (o.value.model_dump() if dict_value else o.value) if ok else None
            if key in seen or o.cached:
                result = LLMResult(
                    request.id, "ok" if ok else "failed", value, o.reason, cached=True
                )
            else:
                result = LLMResult(
                    request.id,
                    "ok" if ok else "failed",
                    value,
                    o.reason,
                    o.attempts,
                    False,
                    o.prompt_tokens,
                    o.completion_tokens,
                )
            seen.add(key)
            self.usage.cached += result.cached
            self.usage.failures += not ok
            results.append(result)
        return results

    # --- chat completions -------------------------------------------------------------------

    def _run_chats(
        self, work: dict[str, tuple[dict[str, Any], _Outcome]], schema: type[BaseModel]
    ) -> dict[str, _Outcome]:
        if not work:
            return {}
        with ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="llm") as pool:
            futures = {
                key: pool.submit(self._chat, key, body, outcome, schema)
                for key, (body, outcome) in work.items()
            }
            return {key: f.result() for key, f in futures.items()}

    def _chat(
        self, key: str, body: dict[str, Any], o: _Outcome, schema: type[BaseModel]
    ) -> _Outcome:
        """Send until valid or out of attempts; ``o`` may carry a failed batch attempt."""
        import openai

        while o.value is None and not o.final and o.attempts <= self.config.max_retries:
            if o.attempts:
                self._count(retries=1)
                time.sleep(self._backoff(o.attempts))
            o.attempts += 1
            self._limiter.wait()
            self._count(requests=1)
            try:
                response = self._client.chat.completions.create(**body)
            except openai.APIStatusError as e:
                o.reason = self._redact(f"HTTP {e.status_code}: {e.message}")
                o.final = not _retryable(e.status_code)
                continue
            except openai.APITimeoutError:
                o.reason = f"timed out after {self.config.timeout_s:g} s"
                continue
            except openai.APIConnectionError as e:
                o.reason = self._redact(f"connection error: {e}")
                continue
            self._accept(key, response, o, schema, batch=False)
        if o.value is None:
            log.warning("request failed after %d attempt(s): %s", o.attempts, o.reason)
        return o

    def _backoff(self, attempt: int) -> float:
        return min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempt - 1))

    def _accept(
        self, key: str, response: ChatCompletion, o: _Outcome, schema: type[BaseModel], batch: bool
    ) -> None:
        """Charge the tokens, then validate the answer and cache it, or say why not."""
        usage = response.usage
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        o.prompt_tokens += prompt
        o.completion_tokens += completion
        self._count(prompt_tokens=prompt, completion_tokens=completion, batch=batch)
        if not response.choices:
            o.reason = "answer has no choices"
            return
        choice = response.choices[0]
        if choice.message.refusal:
            o.reason, o.final = self._redact(f"refused: {choice.message.refusal}"[:300]), True
            return
        content = choice.message.content or ""
        try:
            o.value = schema.model_validate_json(content)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "answer"
            cut = " (cut off: finish_reason=length)" if choice.finish_reason == "length" else ""
            o.reason = self._redact(f"invalid answer{cut}: {where}: {err['msg']}"[:300])
            return
        o.reason = None
        if self._cache:
            self._cache.put(key, content, self.config.model)

    def _count(self, *, batch: bool = False, **amounts: int) -> None:
        price = self.config.prices[self.config.model]
        factor = 1.0 - self.config.batch_discount if batch else 1.0
        with self._lock:
            for name, amount in amounts.items():
                setattr(self.usage, name, getattr(self.usage, name) + amount)
            cost = amounts.get("prompt_tokens", 0) * price.input
            cost += amounts.get("completion_tokens", 0) * price.output
            self.usage.cost_usd += cost * factor / 1e6

    # --- Batch API --------------------------------------------------------------------------

    def _run_batches(
        self, pending: dict[str, dict[str, Any]], schema: type[BaseModel]
    ) -> dict[str, _Outcome]:
        """Submit every chunk first so they run side by side, then collect each; lines that
        come back missing or failed go through chat with the batch attempt already counted."""
        items = list(pending.items())
        size = self.config.batch_max_requests
        chunks = [dict(items[i : i + size]) for i in range(0, len(items), size)]
        submitted = [(chunk, *self._submit(chunk)) for chunk in chunks]
        outcomes: dict[str, _Outcome] = {}
        for chunk, batch_id, record in submitted:
            retry: dict[str, tuple[dict[str, Any], _Outcome]] = {}
            for key, o in self._collect(batch_id, chunk, schema).items():
                if o.value is None and not o.final:
                    retry[key] = (chunk[key], o)
                outcomes[key] = o
            outcomes.update(self._run_chats(retry, schema))
            if record:
                record.unlink(missing_ok=True)
        return outcomes

    def _submit(self, chunk: dict[str, dict[str, Any]]) -> tuple[str, Path | None]:
        """Upload and create a batch, or resume the one an interrupted run created for exactly
        these lines (recorded under the cache dir), so a restart never pays for a batch twice."""
        lines = [
            {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}
            for key, body in chunk.items()
        ]
        jsonl = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
        digest = hashlib.sha256(jsonl).hexdigest()
        record = self._cache.root / "batches" / f"{digest}.json" if self._cache else None
        if record and record.exists():
            batch_id = json.loads(record.read_text())["batch_id"]
            try:
                self._control(lambda: self._client.batches.retrieve(batch_id), "batch retrieve")
                log.info("resuming batch %s (%d requests)", batch_id, len(lines))
                return batch_id, record
            except LLMError as e:
                if e.status != 404:
                    raise
                log.warning("recorded batch %s is gone; submitting again", batch_id)
        upload = self._control(
            lambda: self._client.files.create(
                file=(f"smallcomp-{digest[:12]}.jsonl", jsonl, "application/jsonl"),
                purpose="batch",
            ),
            "batch file upload",
        )
        batch = self._control(
            lambda: self._client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            ),
            "batch create",
        )
        if record:  # written whole or not at all: a reader never sees half a batch record
            record.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(record, json.dumps({"batch_id": batch.id, "input_file_id": upload.id}))
        log.info("submitted batch %s (%d requests)", batch.id, len(lines))
        return batch.id, record

    def _collect(
        self, batch_id: str, chunk: dict[str, dict[str, Any]], schema: type[BaseModel]
    ) -> dict[str, _Outcome]:
        batch = self._control(lambda: self._client.batches.retrieve(batch_id), "batch retrieve")
        while batch.status not in BATCH_TERMINAL:
            time.sleep(self.config.batch_poll_s)
            batch = self._control(lambda: self._client.batches.retrieve(batch_id), "batch retrieve")
        log.info("batch %s %s", batch_id, batch.status)
        self._count(requests=len(chunk), batch_requests=len(chunk))
        outcomes = {key: _Outcome(attempts=1) for key in chunk}
        answered: set[str] = set()
        for line in self._lines(batch.output_file_id) + self._lines(batch.error_file_id):
            key = line.get("custom_id")
            if key not in outcomes or key in answered:  # foreign or repeated lines count once
                continue
            answered.add(key)
            self._batch_line(key, line, outcomes[key], schema)
        for key in outcomes.keys() - answered:
            outcomes[key].reason = f"no answer in batch {batch_id} (status {batch.status})"
        return outcomes

    def _batch_line(
        self, key: str, line: dict[str, Any], o: _Outcome, schema: type[BaseModel]
    ) -> None:
        from openai.types.chat import ChatCompletion

        response = line.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            try:
                completion = ChatCompletion.model_validate(response.get("body"))
            except ValidationError:
                o.reason = "batch line is not a chat completion"
                return
            self._accept(key, completion, o, schema, batch=True)
            return
        error = line.get("error") or (response.get("body") or {}).get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = f"HTTP {status}" if status else error.get("code", "error")
        o.reason = self._redact(f"batch line failed: {code}: {error.get('message', '')}"[:300])
        o.final = isinstance(status, int) and not _retryable(status)

    def _lines(self, file_id: str | None) -> list[dict[str, Any]]:
        """Parsed JSONL lines; a broken line is skipped, so its request counts as missing."""
        if not file_id:
            return []
        text = self._control(lambda: self._client.files.content(file_id).text, "file download")
        out = []
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                out.append(line)
        return out

    def _control(self, call: Callable[[], T], what: str) -> T:
        """A Batch/Files API call, retried on transient errors; anything else is fatal, since
        guessing could submit the same batch twice."""
        import openai

        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt))
            try:
                return call()
            except openai.APIStatusError as e:
                status, reason = e.status_code, f"HTTP {e.status_code}: {e.message}"
                if not _retryable(e.status_code):
                    break
            except openai.APIConnectionError as e:
                status, reason = None, f"connection error: {e}"
        raise LLMError(self._redact(f"{what} failed: {reason}"), status) from None


def check_failures(results: list[LLMResult], max_failures: float) -> None:
    """Raise LLMError when more than ``max_failures`` of ``results`` failed.

    A step that carried on would finish with nulls where the answers belong, and a finished
    step is what a rerun reuses, so an outage would be baked into the curated table. Failing
    leaves nothing finished; failed answers are never cached, so the rerun asks only for them.
    """
    failed = [r for r in results if r.status == "failed"]
    if len(failed) > max_failures * len(results):
        first = " ".join((failed[0].reason or "").split())  # the error stays one line
        raise LLMError(
            f"{len(failed)} of {len(results)} LLM requests failed after retries (more than "
            f"max_failures {max_failures:g}); first: {first}"
        )


def _retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def _key(body: dict[str, Any]) -> str:
    """Everything that determines the answer: model, messages, schema, sampling params."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
