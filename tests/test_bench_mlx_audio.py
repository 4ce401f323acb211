"""bench/bench_mlx_audio.py's own logic (no port needed): the alternating rounds, the round budget, the record rows."""
import json

from bench.bench_mlx_audio import alternating, record, row


def test_bench_mlx_audio_alternating_order_and_budget():
    calls = []
    a = lambda: calls.append("a") or len(calls)  # noqa: E731
    b = lambda: calls.append("b") or len(calls)  # noqa: E731
    ra, rb = alternating(a, b, rounds=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up pair, then a b / b a / a b
    assert ra == [3, 6, 7] and rb == [4, 5, 8]
    calls.clear()
    ra, rb = alternating(a, b, rounds=3, budget_s=0.0)  # any warm-up pair exceeds a zero budget: one round
    assert len(ra) == len(rb) == 1 and calls == ["a", "b", "a", "b"]


def test_bench_mlx_audio_row_and_record_shape():
    r = row("dac encode 1 s", [1.0, 3.0, 2.0], [4.0, 6.0, 5.0], extra=1)
    assert (r["impl_s"], r["mlx_audio_s"], r["mlx_audio / impl"], r["extra"]) == (2.0, 5.0, 2.5, 1)
    assert r["runs_s"] == {"impl": [1.0, 3.0, 2.0], "mlx_audio": [4.0, 6.0, 5.0]}
    rec = record([r], ["--cases", "dac"], (1.0, 2.0), 12.3, "0.6.2")
    assert rec["command"] == "python -m bench.bench_mlx_audio --cases dac" and rec["rows"] == [r]
    assert {"machine", "date", "git_sha", "what"} <= set(rec) and json.loads(json.dumps(rec)) == rec
