"""bench/ tooling: regression check (noise-aware) and the dashboard."""
from bench.cli import check
from bench.dashboard import write_dashboard


def _entry(sha, t, ratio=2.0):
    return {"sha": sha, "time": "2026-11-25T00:00:00Z", "quick": False, "machine": {}, "versions": {},
            "blas": {"blas": "openblas"}, "roofline": {"read_GBps": 20.0},
            "cases": {"bench_x": {"median_s": t, "ratio": ratio, "extra": {}}}}


def test_bench_check_flags_regression_not_noise():
    history = [_entry(f"c{i}", t) for i, t in enumerate([1.00, 1.05, 0.97, 1.02, 0.99])]
    assert check(_entry("new", 1.10), history) == []
    bad = check(_entry("new", 2.0), history)
    assert len(bad) == 1 and bad[0].startswith("bench_x")


def test_bench_check_needs_history():
    assert check(_entry("new", 100.0), [_entry("c0", 1.0)]) == []


def test_bench_dashboard_offline_svg(tmp_path):
    history = [_entry(f"c{i}", 1.0 + 0.1 * i, ratio=1.5 + i) for i in range(3)]
    page = write_dashboard(history, tmp_path)
    text = page.read_text()
    assert text.count("<svg") == 2 and "bench_x" in text and "c2" in text and "<script" not in text


def test_roofline_read_bandwidth_is_the_best_kernel():
    from bench.roofline import memory_bandwidth

    bw = memory_bandwidth(16)
    assert set(bw) == {"read_GBps", "read_1t_GBps", "read_gemv_GBps", "read_gemv_colmajor_GBps", "copy_GBps"}
    assert bw["read_GBps"] >= max(bw["read_1t_GBps"], bw["read_gemv_GBps"], bw["read_gemv_colmajor_GBps"])  # or a threaded sum
    assert bw["read_GBps"] >= bw["read_1t_GBps"] > 0 and bw["copy_GBps"] > 0
