"""`./vp parity [COMPONENT ...] --report DIR`: the full statement of parity, one section per contract, written to
DIR/report.json + DIR/index.html; exit 1 when any section fails (or could not run).

Components: the layer-by-layer specs (`dac`, `llama`: parity/specs/dac.py, llama.py, through parity.harness) and
the contracts (parity/specs/<stem>.py, through parity.contracts): DAC encode/decode, outetts' chunked codec
interface, LM greedy-64, prompt ids, sampler, speaker profile, audio path, end-to-end generation; then the
Spark-TTS BiCodec's four paths (`spark-decoder`, `spark-global`, `spark-semantic`, `spark-wav2vec2`:
parity/specs/spark.py), its LM (`qwen2-0.5b`) and its contracts (`spark-prompt-ids`, `spark-sampler`,
`spark-generation`: parity/specs/spark_{prompt,sampler,generation}.py).
`--fixtures` replays every section from recorded reference outputs (fixtures/), without torch.

report.json: {"passed": bool, "sections": [{"name", "passed", "cases", "worst", "limit", "first_divergence",
"compared", "limit_why", "metric", "worst_case", "details", ...}], "components": [per-layer reports], ...}.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]  # defaults live in the clone, whatever the working directory
# layer specs: component -> (spec factory "module:function", kwargs for the full run, kwargs for --quick/fixtures)
COMPONENTS: Dict[str, tuple] = {
    "dac": ("parity.specs.dac:spec", {"config": "24khz_speech", "seconds": 1.0, "signal": "speech"},
            {"config": "24khz_speech", "seconds": 0.5, "signal": "speech"}),
    "llama": ("parity.specs.llama:spec", {"config": "1b", "seq_len": 32}, {"config": "small", "seq_len": 32}),
    # Spark-TTS BiCodec (parity/specs/spark.py): full = the real sizes; quick = the tiny configs at the sizes of
    # the fixtures (fixtures/spark-*, 4.4 MB: a longer run records more per layer)
    "spark-decoder": ("parity.specs.spark:decoder_spec", {"config": "bicodec", "frames": 50},
                      {"config": "tiny", "frames": 4}),
    "spark-global": ("parity.specs.spark:global_spec", {"config": "bicodec", "samples": 96000},
                     {"config": "tiny", "samples": 1920}),
    "spark-semantic": ("parity.specs.spark:semantic_spec", {"config": "bicodec", "frames": 50},
                       {"config": "tiny", "frames": 50}),
    "spark-wav2vec2": ("parity.specs.spark:wav2vec2_spec", {"config": "xlsr53", "samples": 16000},
                       {"config": "tiny", "samples": 4000}),
    # Spark-TTS LM (parity/specs/qwen2.py): full = the real 0.5B; quick = the small config (fixtures/qwen2-0.5b)
    "qwen2-0.5b": ("parity.specs.qwen2:spec", {"config": "0.5b", "seq_len": 32}, {"config": "small", "seq_len": 32}),
}
# contracts: component -> module holding CONTRACT (parity.contracts.Contract)
CONTRACTS: Dict[str, str] = {
    "dac-codec": "parity.specs.dac_codec",
    "dac-interface": "parity.specs.dac_interface",
    "lm-greedy": "parity.specs.lm_greedy",
    "prompt-ids": "parity.specs.prompt",
    "sampler": "parity.specs.sampler",
    "speaker-profile": "parity.specs.speaker",
    "audio-path": "parity.specs.audio_path",
    "generation": "parity.specs.generation",
    # Spark-TTS: prompt ids, sampler, end-to-end generation (parity/specs/spark_{prompt,sampler,generation}.py)
    "spark-prompt-ids": "parity.specs.spark_prompt",
    "spark-sampler": "parity.specs.spark_sampler",
    "spark-generation": "parity.specs.spark_generation",
}
# the report's order: codec first, then the LM, the text side, the speaker side, the whole pipeline
DEFAULT = ["dac", "dac-codec", "dac-interface", "llama", "lm-greedy", "prompt-ids", "sampler", "speaker-profile",
           "audio-path", "generation", "spark-decoder", "spark-global", "spark-semantic", "spark-wav2vec2",
           "qwen2-0.5b", "spark-prompt-ids", "spark-sampler", "spark-generation"]
EXTRA = {"toy": ("parity.toy:spec", {}, {})}  # the harness self-test, on request only
LAYER_TITLES = {"dac": "DAC layers", "llama": "LM layers", "spark-decoder": "Spark BiCodec decoder layers",
                "spark-global": "Spark global-token layers", "spark-semantic": "Spark semantic-token layers",
                "spark-wav2vec2": "Spark wav2vec2 feature layers", "qwen2-0.5b": "Spark LM (Qwen2) layers"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("components", nargs="*", metavar="COMPONENT",
                   help=f"components to check (default: all: {' '.join(DEFAULT)}; also: toy). "
                        "The mutation self-test is `vp parity mutate` (its own --help)")
    p.add_argument("--report", default=str(ROOT / "out" / "report"),
                   help="output folder for report.json and index.html (default: out/report in the clone)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layer specs' inputs")
    p.add_argument("--quick", action="store_true", help="small configs / short inputs (minutes -> seconds)")
    p.add_argument("--no-isolated", action="store_true", help="skip the isolated (per-layer) comparison")
    p.add_argument("--bug", default=None, help="toy only: inject a bug into this layer (harness demo)")
    p.add_argument("--fixtures", nargs="?", const=str(ROOT / "fixtures"), default=None, metavar="DIR",
                   help="fixture mode: compare against recorded reference outputs (no torch needed) "
                        "instead of running the reference live (default DIR: fixtures/ in the clone)")
    p.add_argument("-v", "--verbose", action="store_true", help="keep the official packages' warnings and bars")


def factory(ref: str):
    mod, fn = ref.split(":")
    return getattr(importlib.import_module(mod), fn)


def contract(name: str):
    return importlib.import_module(CONTRACTS[name]).CONTRACT


def _failed(name: str, why: str, component: str = ""):
    from parity.contracts import Section

    return Section(name, "(could not run)", 0, float("inf"), 0.0, None, why, False, "-", "-", component=component)


def _layer_sections(name: str, args, progress) -> Tuple[list, list]:
    """(sections, reports) of one layer spec: 'DAC layers'; for the LM also 'LM KL' (teacher-forced logits)."""
    from parity.contracts import from_report
    from parity.harness import run_spec

    ref, full, quick = {**COMPONENTS, **EXTRA}[name]
    kwargs = dict(quick if (args.quick or args.fixtures) else full)  # fixtures hold the quick runs
    if name == "toy" and args.bug:
        kwargs["bug"] = args.bug
    spec = factory(ref)(**kwargs)
    title = LAYER_TITLES.get(name, name) + f" ({spec.name.split('-', 1)[-1]})"
    record = None
    if args.fixtures:
        from parity.fixtures import find, load_record

        record = load_record(*find(Path(args.fixtures), spec, args.seed))
    progress.stage(title, "reference (fp64 + fp32, every mapped layer)" if record is None else
                   "impl vs recorded reference")
    try:
        report = run_spec(spec, seed=args.seed, isolated=not args.no_isolated, record=record)
    except Exception as e:  # noqa: BLE001 -- an impl that cannot run is a failed section, the report goes on
        if name == "toy":
            raise
        return [_failed(title, f"{type(e).__name__}: {e}", spec.name)], []
    if name == "llama":
        kl = [r.name for r in report.rows if r.kl is not None]
        secs = [from_report(report, title, f"{report.compared - len(kl)} tensors: every decoder layer's norms, "
                            "attention, MLP and output, embeddings, final norm, full-forward logits; propagated and "
                            "isolated", exclude=kl),
                from_report(report, "LM KL (teacher-forced through the KV cache)", "logits of a prefill + one "
                            "token per step through impl's KV cache: KL(ref64 || impl) per position, max",
                            exclude=[r.name for r in report.rows if r.name not in kl])]
        secs[1].limit_why = secs[1].limit_why if not kl else \
            next(r for r in report.rows if r.kl is not None).tol + ": KL is quadratic in the logit error"
        secs[1].metric = "KL(ref64 || impl), max over positions"
    else:
        secs = [from_report(report, title, f"{report.compared} tensors: every mapped layer (propagated and "
                            "isolated) and the outputs")]
    return secs, [report]


def run(args) -> int:
    from parity.contracts import Progress, quiet_official, run_contract
    from parity.report import write_report
    from parity.spec import SpecError

    table = {**COMPONENTS, **EXTRA, **CONTRACTS}
    names = args.components or DEFAULT
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SpecError(f"unknown component(s) {unknown}; known: {sorted(table)}")
    progress = Progress()
    sections, reports = [], []
    quiet = quiet_official(live=not args.fixtures) if not args.verbose else _nothing()
    with quiet:
        for name in names:
            if name in CONTRACTS:
                c = contract(name)
                record = None
                if args.fixtures:
                    from parity.fixtures import find_contract, load_contract

                    record = load_contract(find_contract(Path(args.fixtures), c.name, c.version))
                try:
                    sec = run_contract(c, quick=bool(args.quick or args.fixtures), record=record, progress=progress)
                except Exception as e:  # noqa: BLE001 -- a failed section, the report goes on
                    where = traceback.extract_tb(e.__traceback__)[-1]
                    sec = _failed(name, f"{type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})")
                secs = [sec]
            else:
                secs, reps = _layer_sections(name, args, progress)
                reports += reps
            for s in secs:
                progress.done(s)
            sections += secs
            _release_memory()
    page = write_report(sections, args.report, reports=reports)
    n_bad = sum(1 for s in sections if not s.passed)
    print(f"[parity {progress.stamp()}] {len(sections) - n_bad} of {len(sections)} sections pass; report: {page} "
          f"and {page.parent / 'report.json'}")
    return 0 if sections and n_bad == 0 else 1


def _release_memory() -> None:
    """Between sections: drop the previous section's models (Python, torch) and MLX's buffer cache, so the 1B LM
    sections start from a clean heap."""
    import gc

    gc.collect()
    if "mlx.core" in sys.modules:
        import mlx.core as mx

        getattr(mx, "clear_cache", lambda: None)()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def contract_names() -> List[str]:
    return list(CONTRACTS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
