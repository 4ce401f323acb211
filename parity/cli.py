"""`./vp parity [COMPONENT ...] --report DIR`: the full statement of parity, one section per contract, written to
DIR/report.json + DIR/index.html; exit 1 when any section fails (or could not run).

Components: the layer-by-layer specs (`dac`, `llama`: parity/specs/dac.py, llama.py, through parity.harness) and
the contracts (parity/specs/<stem>.py, through parity.contracts): DAC encode/decode, outetts' chunked codec
interface, LM greedy-64, prompt ids, sampler, speaker profile, audio path, end-to-end generation; then the
Spark-TTS BiCodec's four paths (`spark-decoder`, `spark-global`, `spark-semantic`, `spark-wav2vec2`:
parity/specs/spark.py), its LM (`qwen2-0.5b`) and its contracts (`spark-prompt-ids`, `spark-sampler`,
`spark-generation`: parity/specs/spark_{prompt,sampler,generation}.py).
`--fixtures` replays every section from recorded reference outputs (fixtures/), without torch.

What ran is part of the statement: the header and every section name the device, MLX backend, precision mode,
model variant, ops path (`impl.ops.path()`) and BLAS. The LM layer specs (`llama`, `qwen2-0.5b`) run once per
variant that ships on this machine (`impl.accel.shipped_variants()`: plain, fused, and the device's default),
each its own section (`LM layers (llama-small[fused])`); `--variant NAME` runs one.
Precision: parity runs in strict fp32 (`--precision fp32`, the default: MLX_ENABLE_TF32=0, set before MLX's first
product -- MLX latches the variable then, docs/src/usage/precision.rst -- and checked by a probe product). On a GPU
backend the report adds one section measured at the device's default precision (TF32 products on CUDA and M5
GPUs): a child process replays the same components with `--precision device`, and each case's error is judged
against its TF32 bound (parity.harness.TF32_SCALE: the fp32 limit x 2^13; KL x 2^26; exact outputs counted, not
bounded). On the CPU backend that section is "not applicable (no TF32 on this backend)".

report.json: {"passed": bool, "platform": {device, backend, precision, ops_path, blas, ...}, "sections": [{"name",
"passed", "cases", "worst", "limit", "first_divergence", "compared", "limit_why", "metric", "worst_case", "details",
"platform": {..., "variant"}, ...}], "device_precision": {...}, "components": [per-layer reports], ...}.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

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
    # every public setting reaches what it controls: ported defaults, arguments, API and CLI settings
    "public-settings": "parity.specs.settings",
}
# the report's order: codec first, then the LM, the text side, the speaker side, the whole pipeline
DEFAULT = ["dac", "dac-codec", "dac-interface", "llama", "lm-greedy", "prompt-ids", "sampler", "speaker-profile",
           "audio-path", "generation", "spark-decoder", "spark-global", "spark-semantic", "spark-wav2vec2",
           "qwen2-0.5b", "spark-prompt-ids", "spark-sampler", "spark-generation", "public-settings"]
EXTRA = {"toy": ("parity.toy:spec", {}, {})}  # the harness self-test, on request only
VARIANT_COMPONENTS = ("llama", "qwen2-0.5b")  # the LM specs: one section set per impl.accel variant
TF32_ENV = "MLX_ENABLE_TF32"  # MLX: 0 keeps float32 products in full float32 (read once, at the first product)
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
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="LM layer specs: check this impl.accel variant only (plain, fused, cpu; default: every "
                        "variant that ships on this machine, impl.accel.shipped_variants())")
    p.add_argument("--precision", choices=("fp32", "device"), default="fp32",
                   help="fp32 (default): strict float32 products (MLX_ENABLE_TF32=0), plus, on a GPU, one section "
                        "measured at the device default against TF32 bounds; device: the device's default only")
    p.add_argument("--no-device-precision", action="store_true",
                   help="skip the device-default-precision section (a second, child run on a GPU)")
    p.add_argument("-v", "--verbose", action="store_true", help="keep the official packages' warnings and bars")
    p.add_argument("--port", default=None, metavar="NAME",
                   help="verify a foreign port (parity/ports/NAME.py, e.g. mlx-audio) instead of impl: the same specs, "
                        "reference and tolerances; COMPONENTS are the port's (docs/ports.md)")
    p.add_argument("--dumps", default=None, metavar="DIR",
                   help="compare a port's tensor dumps (docs/dump-protocol.md) with the recorded official outputs, "
                        "torch-free")
    p.add_argument("--dump-inputs", default=None, metavar="DIR",
                   help="write the inputs, checkpoints and tensor lists a dump producer needs (docs/dump-protocol.md)")


def factory(ref: str):
    mod, fn = ref.split(":")
    return getattr(importlib.import_module(mod), fn)


def contract(name: str):
    return importlib.import_module(CONTRACTS[name]).CONTRACT


def _failed(name: str, why: str, component: str = ""):
    from parity.contracts import Section

    return Section(name, "(could not run)", 0, float("inf"), 0.0, None, why, False, "-", "-", component=component)


def variants(args) -> List[str]:
    """The LM variants to check: `--variant`, else every one that ships on this machine."""
    from impl import accel

    if args.variant:
        if args.variant not in accel.VARIANTS:
            from parity.spec import SpecError

            raise SpecError(f"unknown variant {args.variant!r}; known: {sorted(accel.VARIANTS)}")
        return [args.variant]
    return accel.shipped_variants()


def _layer_sections(name: str, args, progress, variant: Optional[str] = None, live: Optional[dict] = None
                    ) -> Tuple[list, list]:
    """(sections, reports) of one layer spec: 'DAC layers'; for the LM also 'LM KL' (teacher-forced logits).
    variant: the impl.accel variant of an LM spec (VARIANT_COMPONENTS); its sections' names end in [variant].
    live: {component: RefRecord}, the live reference recorded once and shared by the variants (the reference side
    does not depend on the impl variant; a 1B fp64 run takes minutes)."""
    from parity.contracts import from_report
    from parity.harness import record_reference, run_spec

    ref, full, quick = {**COMPONENTS, **EXTRA}[name]
    kwargs = dict(quick if (args.quick or args.fixtures) else full)  # fixtures hold the quick runs
    if name == "toy" and args.bug:
        kwargs["bug"] = args.bug
    if variant is not None:
        kwargs["variant"] = variant
    spec = factory(ref)(**kwargs)
    title = LAYER_TITLES.get(name, name) + (f" ({spec.name.split('-', 1)[-1]})" if variant is None else
                                            f" ({spec.name}[{variant}])")
    progress.stage(title, "impl vs recorded reference" if args.fixtures else "impl vs the reference recorded above"
                   if live is not None and name in live else "reference (fp64 + fp32, every mapped layer)")
    try:
        record = None
        if args.fixtures:  # a missing or stale fixture is this section's failure (toy: raised, as its bugs)
            from parity.fixtures import find, load_record

            record = load_record(*find(Path(args.fixtures), spec, args.seed))
        elif live is not None:
            if name not in live:
                live[name] = record_reference(spec, args.seed, not args.no_isolated)
            record = live[name]
        report = run_spec(spec, seed=args.seed, isolated=not args.no_isolated, record=record, variant=variant)
    except Exception as e:  # noqa: BLE001 -- an impl that cannot run is a failed section, the report goes on
        if name == "toy":
            raise
        return [_failed(title, f"{type(e).__name__}: {e}", spec.name)], []
    if name == "llama":
        kl = [r.name for r in report.rows if r.kl is not None]
        kl_title = "LM KL (teacher-forced through the KV cache)" if variant is None else \
            f"LM KL ({spec.name}[{variant}], teacher-forced through the KV cache)"
        secs = [from_report(report, title, f"{report.compared - len(kl)} tensors: every decoder layer's norms, "
                            "attention, MLP and output, embeddings, final norm, full-forward logits; propagated and "
                            "isolated", exclude=kl),
                from_report(report, kl_title, "logits of a prefill + one "
                            "token per step through impl's KV cache: KL(ref64 || impl) per position, max",
                            exclude=[r.name for r in report.rows if r.name not in kl])]
        secs[1].limit_why = secs[1].limit_why if not kl else \
            next(r for r in report.rows if r.kl is not None).tol + ": KL is quadratic in the logit error"
        secs[1].metric = "KL(ref64 || impl), max over positions"
    else:
        secs = [from_report(report, title, f"{report.compared} tensors: every mapped layer (propagated and "
                            "isolated) and the outputs")]
    if report.untapped:
        secs[0].notes.append(f"{len(report.untapped)} mapped pairs have no module to tap in the {variant} variant "
                             f"(compared through the modules around them): {', '.join(report.untapped)}")
    return secs, [report]


def run(args) -> int:
    from parity.contracts import Progress, quiet_official, run_contract
    from parity.harness import run_platform
    from parity.report import write_report
    from parity.spec import SpecError

    if getattr(args, "port", None):
        from parity.ports import run as port_run

        return port_run.run(args)
    if getattr(args, "dumps", None) or getattr(args, "dump_inputs", None):
        from parity.ports import dumps

        if args.dump_inputs:
            for d in dumps.export_inputs(Path(args.dump_inputs), args.components or None):
                print(f"[dumps] inputs for {d.name}: {d}")
            return 0
        return dumps.check(Path(args.dumps), Path(args.report), Path(args.fixtures or ROOT / "fixtures"))
    table = {**COMPONENTS, **EXTRA, **CONTRACTS}
    names = args.components or DEFAULT
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SpecError(f"unknown component(s) {unknown}; known: {sorted(table)}")
    precision = getattr(args, "precision", "fp32")
    with strict_fp32(precision == "fp32"):
        lm_variants = variants(args) if any(n in VARIANT_COMPONENTS for n in names) else []
        platform = run_platform(precision)
        progress = Progress()
        progress.stage("platform", ", ".join(f"{k} {platform[k]}" for k in ("device", "precision", "ops_path",
                                                                            "blas")))
        sections, reports = [], []
        quiet = quiet_official(live=not args.fixtures) if not args.verbose else _nothing()
        with quiet:
            for name in names:
                if name in CONTRACTS:
                    c = contract(name)
                    with applied_variants() as applied:
                        try:
                            record = None
                            if args.fixtures:  # a missing or stale fixture is this section's failure
                                from parity.fixtures import find_contract, load_contract

                                record = load_contract(find_contract(Path(args.fixtures), c.name, c.version))
                            sec = run_contract(c, quick=bool(args.quick or args.fixtures), record=record,
                                               progress=progress)
                        except Exception as e:  # noqa: BLE001 -- a failed section, the report goes on
                            where = traceback.extract_tb(e.__traceback__)[-1]
                            sec = _failed(name, f"{type(e).__name__}: {e} ({Path(where.filename).name}:"
                                          f"{where.lineno})")
                    sec.platform = {**platform, "variant": _variant_words(applied)}
                    secs = [sec]
                else:
                    secs, live = [], {}
                    for v in (lm_variants if name in VARIANT_COMPONENTS else [None]):
                        vsecs, reps = _layer_sections(name, args, progress, v, live if v is not None else None)
                        for sec in vsecs:
                            sec.platform = {**platform, "variant": v or "plain (the model as loaded: no "
                                                                         "accelerated variant of this model)"}
                        secs += vsecs
                        reports += reps
                        _release_memory()
                for s in secs:
                    progress.done(s)
                sections += secs
                _release_memory()
        device = _device_precision(args, names, platform, progress)
    if device.get("section") is not None:
        sections.append(device.pop("section"))
    page = write_report(sections, args.report, reports=reports, platform=platform, device_precision=device,
                        variants=lm_variants)
    n_bad = sum(1 for s in sections if not s.passed)
    print(f"[parity {progress.stamp()}] {len(sections) - n_bad} of {len(sections)} sections pass; report: {page} "
          f"and {page.parent / 'report.json'}")
    return 0 if sections and n_bad == 0 else 1


@contextlib.contextmanager
def strict_fp32(on: bool):
    """MLX_ENABLE_TF32=0 for the run (restored after) when `on`; else the variable removed for the run (the
    device's default). MLX latches it at the first float32 product of the process: `./vp parity` sets it before
    MLX is imported (parity.dev_cli.main), this covers a caller of `run`; `run_platform`'s probe checks what
    holds."""
    saved = os.environ.get(TF32_ENV)
    if on:
        os.environ[TF32_ENV] = "0"
    else:
        os.environ.pop(TF32_ENV, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TF32_ENV, None)
        else:
            os.environ[TF32_ENV] = saved


@contextlib.contextmanager
def applied_variants():
    """Record the variants `impl.accel.apply` makes while a contract section runs (its loaders apply the
    API's default); yields the list of names."""
    from impl import accel

    seen: List[str] = []
    apply = accel.apply

    def recording(model, variant="auto"):
        name = apply(model, variant)
        seen.append(name)
        return name

    accel.apply = recording
    try:
        yield seen
    finally:
        accel.apply = apply


def _variant_words(applied: List[str]) -> str:
    if not applied:
        return "plain (no impl.accel variant applied in this section)"
    return " + ".join(dict.fromkeys(applied)) + " (applied by the API's loader)"


def _device_precision(args, names: List[str], platform: Dict[str, str], progress) -> Dict[str, Any]:
    """The report's device-precision statement: on a GPU backend (strict run), the same components replayed in a
    child process at the device's default precision, as one section judged against TF32 bounds; on the CPU
    backend, not applicable. Returns {"applicable", "why", ...} (+ "section" when one was measured)."""
    if getattr(args, "precision", "fp32") != "fp32":
        return {"applicable": False, "why": "this run is the device-default run"}
    if platform["backend"] == "cpu":
        return {"applicable": False, "why": "not applicable (no TF32 on this backend): the CPU backend runs float32 "
                                            "products in float32"}
    if args.no_device_precision:
        return {"applicable": True, "why": "not measured (--no-device-precision)"}
    out = Path(args.report) / "device-precision"
    cmd = [sys.executable, "-m", "parity.dev_cli", "parity", *names, "--precision", "device", "--report", str(out),
           "--seed", str(args.seed)]
    cmd += [f"--fixtures={args.fixtures}"] if args.fixtures else []
    cmd += ["--quick"] if args.quick else []
    cmd += ["--no-isolated"] if args.no_isolated else []
    cmd += ["--variant", args.variant] if args.variant else []
    env = {k: v for k, v in os.environ.items() if k != TF32_ENV}
    progress.stage("device precision", f"the same components at the device default, in a child process ({out})")
    res = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True)
    from parity.report import device_precision_section

    rj = out / "report.json"
    if not rj.exists():
        why = f"the device-default run wrote no report (exit {res.returncode}): {res.stderr[-1500:]}"
        sec = _failed("device default precision (TF32) vs official", why)
        return {"applicable": True, "why": why, "section": sec}
    child = json.loads(rj.read_text())
    sec = device_precision_section(child)
    sec.platform = {**child.get("platform", {}), "variant": "each section's own (see the cases)"}
    progress.done(sec)
    return {"applicable": True, "why": "measured", "report": str(rj.relative_to(Path(args.report))),
            "child_exit": res.returncode, "child_platform": child.get("platform", {}), "section": sec}


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
