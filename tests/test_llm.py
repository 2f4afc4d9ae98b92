"""The LLM backend against a real local OpenAI-compatible server, through the official client.

Every fault test asserts the exact number of requests the server received per prompt, so that
"retries are bounded" and "nothing lost, nothing duplicated" are checked, not assumed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import Keywords, LLMServer, expected_keywords  # tests/ is on sys.path

from benchmark.models.llm import LLMBackend, LLMConfig, LLMError, LLMRequest, Usage, check_failures

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-5f3c9e1a7b2d4c6e8f0a1b2c3d4e5f60"
PRICE = {"input": 0.15, "output": 0.60}
MAX_RETRIES = 2


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer() as s:
        yield s


def config(server: LLMServer, **overrides: Any) -> LLMConfig:
    settings: dict[str, Any] = {
        "model": "test-model",
        "base_url": server.base_url,
        "prices": {"test-model": PRICE},
        "max_concurrency": 4,
        "max_retries": MAX_RETRIES,
        "timeout_s": 10.0,  # generous: a loaded machine must not turn into spurious retries
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
        "batch_poll_s": 0.001,
    }
    return LLMConfig(**settings | overrides)


def captions(n: int) -> list[str]:
    colours, things = ["red", "green", "blue", "yellow"], ["square", "circle", "triangle"]
    return [f"a {colours[i % 4]} {things[i % 3]} number{i} above grass" for i in range(n)]


def requests_for(texts: list[str]) -> list[LLMRequest]:
    return [LLMRequest.of(f"id{i}", t, system="Extract keywords.") for i, t in enumerate(texts)]


def assert_accounting(backend: LLMBackend, server: LLMServer) -> None:
    """Tokens are exactly what the server reported; the cost prices them from the table, at half
    price for those answered through the Batch API."""
    usage, tokens = backend.usage, server.tokens
    assert usage.prompt_tokens == tokens["prompt"]
    assert usage.completion_tokens == tokens["completion"]
    chat = tokens["chat.prompt"] * PRICE["input"] + tokens["chat.completion"] * PRICE["output"]
    batch = tokens["batch.prompt"] * PRICE["input"] + tokens["batch.completion"] * PRICE["output"]
    assert usage.cost_usd == pytest.approx((chat + 0.5 * batch) / 1e6)


def test_chat_answers_in_order_within_limits(server: LLMServer) -> None:
    texts = captions(40)
    server.latency_s = 0.01
    backend = LLMBackend(config(server, max_concurrency=3))
    results = backend.complete_json(requests_for(texts), Keywords)
    assert [r.id for r in results] == [f"id{i}" for i in range(40)]
    assert [r.value.keywords for r in results] == [expected_keywords(t) for t in texts]
    assert all(r.status == "ok" and r.attempts == 1 for r in results)
    assert server.counts == {"chat": 40}
    assert 1 < server.max_inflight <= 3
    assert backend.usage.requests == 40 and backend.usage.retries == 0
    assert sum(r.prompt_tokens for r in results) == backend.usage.prompt_tokens
    assert_accounting(backend, server)
    assert f"Bearer {KEY}" in server.authorization
    assert backend.complete_json([], Keywords) == []


def test_requests_per_minute_spaces_requests(server: LLMServer) -> None:
    backend = LLMBackend(config(server, max_concurrency=8, requests_per_minute=1200))
    start = time.monotonic()
    backend.complete_json(requests_for(captions(8)), Keywords)
    assert time.monotonic() - start >= 7 * 60 / 1200 * 0.95


RETRIED_FAULTS = {
    "rate_limit": "HTTP 429",
    "server_error": "HTTP 500",
    "timeout": "timed out",
    "missing": "connection error",
    "truncated": "cut off",
    "malformed": "invalid answer",
    "wrong_fields": "invalid answer",
}


@pytest.mark.parametrize("mode", ["chat", "batch"])
@pytest.mark.parametrize("fault", list(RETRIED_FAULTS))
def test_fault_is_retried_then_recorded(server: LLMServer, fault: str, mode: str) -> None:
    """A prompt that fails twice succeeds on its last attempt; one that always fails is recorded
    as failed after exactly 1 + max_retries attempts; the others are untouched."""
    texts = captions(6)
    recovers, fails = texts[1], texts[4]
    server.faults = {recovers: [fault] * MAX_RETRIES, fails: [fault] * 10}
    timeout = {"timeout_s": 0.5} if fault == "timeout" else {}
    server.timeout_sleep_s = 2.0
    backend = LLMBackend(config(server, mode=mode, **timeout))
    results = backend.complete_json(requests_for(texts), Keywords)

    assert [r.id for r in results] == [f"id{i}" for i in range(6)]
    attempts = 1 + MAX_RETRIES
    assert [r.attempts for r in results] == [1, attempts, 1, 1, attempts, 1]
    assert [r.status for r in results] == ["ok"] * 4 + ["failed", "ok"]
    ok = [r for r in results if r.status == "ok"]
    assert [r.value.keywords for r in ok] == [expected_keywords(t) for t in texts if t != fails]
    failed = results[4]
    assert failed.value is None and RETRIED_FAULTS[fault] in failed.reason

    assert server.calls == {t: attempts if t in (recovers, fails) else 1 for t in texts}
    usage = backend.usage
    assert usage.requests == 6 + 2 * MAX_RETRIES
    assert usage.retries == 2 * MAX_RETRIES and usage.failures == 1
    chat_calls = 6 + 2 * MAX_RETRIES if mode == "chat" else 2 * MAX_RETRIES
    assert server.counts["chat"] == chat_calls
    if mode == "batch":
        assert usage.batch_requests == 6
        assert server.counts["batches.create"] == 1
    assert_accounting(backend, server)


@pytest.mark.parametrize("mode", ["chat", "batch"])
@pytest.mark.parametrize("fault", ["unauthorized", "refusal"])
def test_final_failures_are_not_retried(server: LLMServer, fault: str, mode: str) -> None:
    texts = captions(3)
    server.faults = {texts[0]: [fault] * 10}
    backend = LLMBackend(config(server, mode=mode))
    results = backend.complete_json(requests_for(texts), Keywords)
    assert [r.status for r in results] == ["failed", "ok", "ok"]
    assert results[0].attempts == 1 and server.calls[texts[0]] == 1
    assert ("HTTP 401" if fault == "unauthorized" else "refused") in results[0].reason
    assert backend.usage.retries == 0 and backend.usage.failures == 1


def test_dict_schema_is_validated_strictly(server: LLMServer) -> None:
    """Recipes give schemas as JSON schema; answers come back as plain dicts."""
    schema = {
        "title": "Keywords",
        "type": "object",
        "properties": {
            "keywords": {"type": "array", "items": {"type": "string"}},
            "mood": {"enum": ["calm", "busy"]},
        },
        "required": ["keywords"],
    }
    texts = captions(3)
    server.faults = {texts[2]: ["wrong_fields"]}
    backend = LLMBackend(config(server))
    results = backend.complete_json(requests_for(texts), schema)
    assert [r.value for r in results] == [
        {"keywords": expected_keywords(t), "mood": None} for t in texts
    ]
    assert results[2].attempts == 2


def test_identical_prompts_are_sent_once(server: LLMServer) -> None:
    text = captions(1)[0]
    requests = [LLMRequest.of("a", text), LLMRequest.of("b", text)]
    backend = LLMBackend(config(server))
    a, b = backend.complete_json(requests, Keywords)
    assert a.value == b.value and (a.cached, b.cached) == (False, True)
    assert server.counts["chat"] == 1 and backend.usage.cached == 1
    with pytest.raises(ValueError, match="duplicate request id 'a'"):
        backend.complete_json([LLMRequest.of("a", "x"), LLMRequest.of("a", "y")], Keywords)


@pytest.mark.parametrize("mode", ["chat", "batch"])
def test_rerun_from_cache_sends_nothing(server: LLMServer, tmp_path: Path, mode: str) -> None:
    texts = captions(10)
    server.faults = {texts[3]: ["server_error"] * 10}
    cfg = config(server, mode=mode, cache_dir=tmp_path)
    first = LLMBackend(cfg).complete_json(requests_for(texts), Keywords)
    assert first[3].status == "failed"
    server.reset()

    again = LLMBackend(cfg)
    second = again.complete_json(requests_for(texts), Keywords)
    assert [r.value for r in second] == [r.value for r in first[:3]] + [second[3].value] + [
        r.value for r in first[4:]
    ]
    # Only the failed answer was not cached, so only it is asked for again.
    assert sum(server.counts.values()) == (1 if mode == "chat" else 5)
    assert again.usage.requests == 1 and again.usage.cached == 9

    third = LLMBackend(cfg)
    server.reset()
    assert [r.value for r in third.complete_json(requests_for(texts), Keywords)] == [
        r.value for r in second
    ]
    assert sum(server.counts.values()) == 0
    assert third.usage.as_dict() == Usage(cached=10).as_dict()
    assert not list(tmp_path.rglob("*.tmp"))


def test_failures_beyond_max_failures_raise_and_are_never_cached(
    server: LLMServer, tmp_path: Path
) -> None:
    texts = captions(20)
    server.faults = {texts[0]: ["server_error"] * 10}
    results = LLMBackend(config(server)).complete_json(requests_for(texts), Keywords)
    check_failures(results, 0.05)  # 1 of 20 is 5%: allowed
    with pytest.raises(LLMError, match=r"^1 of 20 LLM requests failed .*; first: HTTP 500"):
        check_failures(results, 0.04)

    server.fail_all = "server_error"  # an outage
    cfg = config(server, cache_dir=tmp_path)
    results = LLMBackend(cfg).complete_json(requests_for(texts), Keywords)
    with pytest.raises(LLMError, match="^20 of 20 LLM requests failed"):
        check_failures(results, 0.05)
    assert not any(p.read_text() for p in tmp_path.glob("answers-*.jsonl"))
    server.reset()
    again = LLMBackend(cfg)
    assert all(r.status == "ok" for r in again.complete_json(requests_for(texts), Keywords))
    assert again.usage.requests == 20 and again.usage.cached == 0


def test_torn_cache_line_is_asked_again(server: LLMServer, tmp_path: Path) -> None:
    """A process killed mid-write leaves a torn last line: that answer is a miss, not an error."""
    texts = captions(3)
    cfg = config(server, cache_dir=tmp_path, max_concurrency=1)
    LLMBackend(cfg).complete_json(requests_for(texts), Keywords)
    (cache_file,) = tmp_path.glob("answers-*.jsonl")
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[: len(data) - 30])
    backend = LLMBackend(cfg)
    results = backend.complete_json(requests_for(texts), Keywords)
    assert all(r.status == "ok" for r in results)
    assert [r.cached for r in results] == [True, True, False]
    assert backend.usage.requests == 1 and backend.usage.cached == 2


def test_batch_end_to_end(server: LLMServer) -> None:
    texts = captions(30)
    server.polls_to_complete = 3
    server.faults = {texts[7]: ["missing"], texts[9]: ["server_error"]}
    backend = LLMBackend(config(server, mode="batch", batch_max_requests=12))
    results = backend.complete_json(requests_for(texts), Keywords)
    assert [r.value.keywords for r in results] == [expected_keywords(t) for t in texts]
    assert server.counts["files.create"] == server.counts["batches.create"] == 3
    assert server.counts["batches.retrieve"] == 3 * 3
    # Three outputs plus the error file of the batch holding texts[9].
    assert server.counts["files.content"] == 4
    assert server.counts["chat"] == 2
    usage = backend.usage
    assert (usage.requests, usage.batch_requests, usage.retries) == (32, 30, 2)
    assert server.tokens["chat.prompt"] > 0 and server.tokens["batch.prompt"] > 0
    assert_accounting(backend, server)


def test_batch_output_lines_count_once(server: LLMServer) -> None:
    """A repeated or foreign line in the output file neither duplicates nor double-charges."""
    texts = captions(4)
    server.faults = {texts[1]: ["duplicate"]}
    backend = LLMBackend(config(server, mode="batch"))
    results = backend.complete_json(requests_for(texts), Keywords)
    assert [r.value.keywords for r in results] == [expected_keywords(t) for t in texts]
    assert backend.usage.requests == 4 and server.counts["chat"] == 0
    assert_accounting(backend, server)


def test_batch_control_calls_retry_transient_errors(server: LLMServer) -> None:
    server.control_faults = {
        "files.create": ["server_error"],
        "batches.create": ["rate_limit"],
        "batches.retrieve": ["server_error", "server_error"],
        "files.content": ["rate_limit"],
    }
    backend = LLMBackend(config(server, mode="batch"))
    results = backend.complete_json(requests_for(captions(5)), Keywords)
    assert all(r.status == "ok" for r in results)
    assert server.counts["files.create"] == server.counts["batches.create"] == 2
    assert server.counts["chat"] == 0


def run_killed_batch(server: LLMServer, cfg: LLMConfig, texts: list[str]) -> None:
    """Start a batch run in a child process and kill it once its batch exists."""
    script = (
        "import json, sys\n"
        "from benchmark.models.llm import LLMBackend, LLMConfig, LLMRequest\n"
        "from llm_server import Keywords\n"
        "cfg = LLMConfig.model_validate_json(sys.argv[1])\n"
        "texts = json.loads(sys.argv[2])\n"
        "reqs = [LLMRequest.of(f'id{i}', t, system='Extract keywords.') "
        "for i, t in enumerate(texts)]\n"
        "LLMBackend(cfg).complete_json(reqs, Keywords)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    args = [sys.executable, "-c", script, cfg.model_dump_json(), json.dumps(texts)]
    child = subprocess.Popen(args, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while server.counts["batches.retrieve"] < 2 and time.monotonic() < deadline:
        assert child.poll() is None, "child finished before it could be killed"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert server.counts["batches.create"] == 1


@pytest.mark.slow
def test_killed_batch_run_resumes_without_paying_twice(server: LLMServer, tmp_path: Path) -> None:
    texts = captions(20)
    server.hold_batches = True
    cfg = config(server, mode="batch", cache_dir=tmp_path, batch_poll_s=0.01)
    run_killed_batch(server, cfg, texts)
    server.hold_batches = False
    backend = LLMBackend(cfg)
    results = backend.complete_json(requests_for(texts), Keywords)
    assert [r.value.keywords for r in results] == [expected_keywords(t) for t in texts]
    assert server.counts["batches.create"] == server.counts["files.create"] == 1
    assert server.counts["chat"] == 0
    assert backend.usage.batch_requests == 20
    assert not list((tmp_path / "batches").iterdir())


def test_api_key_never_leaks(
    server: LLMServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server quotes the Authorization header in its 401s, the worst a provider can do."""
    caplog.set_level(logging.DEBUG)
    texts = captions(4)
    server.faults = {texts[0]: ["unauthorized"], texts[1]: ["server_error"] * 10}
    cfg = config(server, cache_dir=tmp_path)
    backend = LLMBackend(cfg)
    results = backend.complete_json(requests_for(texts), Keywords)
    assert "Incorrect API key provided: Bearer [redacted]" in results[0].reason

    server.control_faults = {"batches.create": ["unauthorized"]}
    with pytest.raises(LLMError) as info:
        LLMBackend(config(server, mode="batch")).complete_json(
            requests_for(captions(6)[4:]), Keywords
        )
    written = [
        repr(results),
        json.dumps(backend.usage.as_dict()),
        repr(backend),
        repr(cfg),
        caplog.text,
        "".join(traceback.format_exception(info.value)),
        *(p.read_text() for p in tmp_path.rglob("*") if p.is_file()),
    ]
    assert "HTTP 401" in written[5]
    assert f"Bearer {KEY}" in server.authorization
    for text in written:
        assert KEY not in text


def test_config_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no price for model 'local-llm'"):
        LLMConfig(model="local-llm")
    with pytest.raises(ValueError, match="Extra inputs"):
        LLMConfig(temprature=0.5)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(LLMError, match="set the environment variable MY_KEY"):
        LLMBackend(LLMConfig(api_key_env="MY_KEY"))
