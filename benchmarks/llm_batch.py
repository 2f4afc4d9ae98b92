"""Benchmark: 1,000 captions through the Batch API path, against the local test server.

Measures the backend's own overhead (JSONL building, upload, polling, parsing, validation, cache
writes, chat retries of bad lines) and checks that the cost report is exact: every token the
server reported is counted once, at the batch price or the chat price as it was sent, and a rerun
from the cache sends nothing. Run from the repository root:

    python -m benchmarks.llm_batch [--n 1000] [--fault-every 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmark.models.llm import LLMBackend, LLMConfig, LLMRequest
from tests.llm_server import Keywords, LLMServer, expected_keywords

SAMPLES = Path(os.environ.get("SMALLCOMP_SAMPLES", Path(__file__).parents[1] / "../shared/data"))
FAULTS = ["missing", "server_error", "malformed", "truncated"]  # the faults a batch can return
PRICE = {"input": 0.15, "output": 0.60}  # gpt-4o-mini's, so the dollars read as real ones
KEY_ENV = "SMALLCOMP_BENCH_KEY"  # its own variable: the benchmark never touches a real key


def load_captions(n: int) -> list[str]:
    """Real Flickr8k captions when the sample pack is there (one per image), else synthetic."""
    path = SAMPLES / "flickr8k-1k" / "captions.txt"
    if path.exists():
        lines = [ln.split(maxsplit=1) for ln in path.read_text().splitlines() if "#0" in ln]
        captions = [caption.strip() for _, caption in lines]
        if len(captions) >= n:
            return captions[:n]
    return [f"a photo of object {i} on a table number {i % 97}" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="captions in the batch")
    parser.add_argument(
        "--fault-every", type=int, default=50, help="one faulty line per N (0: none)"
    )
    args = parser.parse_args()
    os.environ[KEY_ENV] = "sk-bench-0000000000000000"

    captions = load_captions(args.n)
    requests = [
        LLMRequest.of(f"c{i}", c, system="List the three most salient keywords.")
        for i, c in enumerate(captions)
    ]
    unique = list(dict.fromkeys(captions))
    picked = unique[:: args.fault_every] if args.fault_every else []
    faulty = {c: [FAULTS[i % len(FAULTS)]] for i, c in enumerate(picked)}

    with LLMServer() as server, tempfile.TemporaryDirectory() as cache:
        server.faults = faulty
        config = LLMConfig(
            model="gpt-4o-mini",
            base_url=server.base_url,
            api_key_env=KEY_ENV,
            mode="batch",
            prices={"gpt-4o-mini": PRICE},
            batch_poll_s=0.05,
            retry_base_s=0.01,
            cache_dir=Path(cache),
        )
        backend = LLMBackend(config)
        start = time.perf_counter()
        results = backend.complete_json(requests, Keywords)
        wall = time.perf_counter() - start

        usage, tokens = backend.usage, server.tokens
        assert [r.id for r in results] == [r.id for r in requests], "order or count changed"
        assert all(r.status == "ok" for r in results), [r.reason for r in results if r.reason]
        assert [r.value.keywords for r in results] == [expected_keywords(c) for c in captions]
        assert usage.batch_requests == len(unique)
        assert usage.requests == len(unique) + len(faulty) and usage.retries == len(faulty)
        assert server.counts["chat"] == len(faulty) and server.counts["batches.create"] == 1
        assert usage.cached == len(captions) - len(unique)
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            tokens["prompt"],
            tokens["completion"],
        )
        chat = tokens["chat.prompt"] * PRICE["input"] + tokens["chat.completion"] * PRICE["output"]
        batch = tokens["batch.prompt"] * PRICE["input"]
        batch += tokens["batch.completion"] * PRICE["output"]
        assert abs(usage.cost_usd - (chat + 0.5 * batch) / 1e6) < 1e-12

        server.reset()
        rerun = LLMBackend(config)
        start = time.perf_counter()
        again = rerun.complete_json(requests, Keywords)
        rerun_wall = time.perf_counter() - start
        assert [r.value for r in again] == [r.value for r in results]
        assert sum(server.counts.values()) == 0 and rerun.usage.cost_usd == 0

    print(f"captions            {len(captions)} ({len(unique)} distinct)")
    print(f"faulty batch lines  {len(faulty)} ({', '.join(FAULTS)}), retried via chat")
    print(f"wall time           {wall:.2f} s (batch path incl. {len(faulty)} chat retries)")
    print(f"throughput          {len(captions) / wall:,.0f} captions/s")
    print(f"requests            {usage.requests} ({usage.batch_requests} batch lines)")
    print(f"retries / failures  {usage.retries} / {usage.failures}")
    print(f"tokens              {usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} out")
    print(f"cost                ${usage.cost_usd:.6f} (chat at list price, batch at half)")
    print(f"rerun from cache    {rerun_wall:.2f} s, 0 requests, $0")
    print("accounting          exact (tokens and cost match the server's report)")


if __name__ == "__main__":
    main()
