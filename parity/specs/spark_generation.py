"""Contract: Spark-TTS end to end, greedy: `impl.spark.generate.SparkTTS` vs sparktts' own `SparkTTS.inference`
(reference.spark.SparkReference) on the same seeded folder and the same prompt audio (LibriVox 0880, 3 s).

Per case: prompt ids exact (the official string through AutoTokenizer), generated ids exact (the official call with
top_k=1: one candidate left, the draw is the argmax = impl's greedy), parsed semantic ids exact, audio within 10x the
fp32 floor (the official float32 pipeline's audio vs BiCodec.detokenize of the same ids in float64). Cases: cloning
without and with the prompt transcript, and voice creation (gender/pitch/speed). A random LLM writes too few global
ids for a created voice: upstream then fails in its detokenize (it cannot reshape them), impl refuses with one line;
the ids up to there must still be equal.

The folder: the tiny seeded Spark-TTS folder (impl.seeded.spark.seeded_spark: real 166,000-token layout, Qwen2
structure, BiCodec with the real id spaces) with LLM/generation_config.json adding EOS ids, so that both sides stop
within ~100 tokens instead of the official 3000 (upstream's generate at the 166,000-token vocabulary takes ~43 ms a
step here): the ids each case's impl greedy run writes first at step >= STOP_AT. Both sides read the EOS ids from that
file (transformers' generate: generation_config.json; impl: stop_ids_from_config), so the stop rule is part of
what is compared.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from parity.contracts import Case, Contract, Section, floor_case, floor_ref, ids_case, section

TEXT = "Hello there, how are you today?"
CASES: Dict[str, Dict[str, Any]] = {
    "clone": dict(prompt_text=None),
    "clone-transcript": dict(prompt_text="He was not an ill disposed young man."),
    "create": dict(gender="female", pitch="high", speed="low"),
}
STOP_AT = 60


def _link_tree(src: Path, dst: Path) -> None:
    """dst mirrors the Spark-TTS folder src through symbolic links, LLM/ as a real folder (a file is added there)."""
    dst.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name == "LLM":
            (dst / "LLM").mkdir()
            for f in entry.iterdir():
                (dst / "LLM" / f.name).symlink_to(f.resolve())
        else:
            (dst / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


def folder(dst: Path, prompt_audio: str, extra: Optional[Dict[str, Any]] = None,
           cases: Optional[Sequence[str]] = None) -> Tuple[Path, List[int]]:
    """(the test folder, its EOS ids): the seeded tiny folder linked into `dst`, plus LLM/generation_config.json
    (with `extra` generation keys, which impl's greedy run choosing the EOS ids already honours)."""
    from impl.seeded.spark import seeded_spark
    from impl.spark import generate as G

    src = seeded_spark()
    _link_tree(src, dst)
    if extra:
        write_generation_config(dst, [G.generation_settings(src / "LLM").stop_ids[0]], extra)
    tts = G.load(dst)
    stops = [tts.tokenizer.eos_id]
    for case in (CASES if cases is None else cases):
        kw = CASES[case]
        voice = (G.Voice(gender=kw["gender"], pitch=kw["pitch"], speed=kw["speed"]) if "gender" in kw else
                 tts.voice_from_audio(prompt_audio, kw["prompt_text"]))
        ids = []
        try:
            next(tts.generate_chunks(TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=STOP_AT + 1),
                                     on_token=ids.append))
        except G.GenerationError:
            pass  # a created voice's parse fails after its ids (too few global ids): the ids are what is needed
        stops.append(ids[STOP_AT])
    write_generation_config(dst, stops, extra)
    return dst, stops


def write_generation_config(dst: Path, stops: List[int], extra: Optional[Dict[str, Any]] = None) -> None:
    """LLM/generation_config.json with these EOS ids (read by transformers' generate and impl's loader alike)."""
    (dst / "LLM" / "generation_config.json").write_text(json.dumps(
        dict({"bos_token_id": 151643, "eos_token_id": stops, "pad_token_id": 151643}, **(extra or {})), indent=2)
        + "\n")


# ------------------------------------------------------------------------------------------------ real sizes
# parity/test_spark_e2e.py (slow). A random LLM at the real size never writes an EOS id and soon repeats one token
# for good, so ids[STOP_AT] (above) would often be an id it wrote from the start. Here impl's greedy run of HORIZON
# ids per case picks the id that appeared last for the first time (the longest run an EOS id can end), the folder
# gets those EOS ids (LLM/generation_config.json: config.json's bos/eos, which transformers derives when the file is
# absent as in the official folder, with the eos list extended), and the official run on it must stop there with
# the same ids. impl's ids are its HORIZON-id run cut after the first EOS id, as its decode loop stops
# (impl.outetts.generate.decode_loop; the tiny tests above run that stop itself): one impl pass, so one model set in
# memory at a time.

REAL_FOLDERS: Dict[str, Tuple[str, str, str, str]] = {
    "0.5b": ("0.5b", "bicodec", "xlsr53", "bfloat16"),     # impl.seeded.spark.default_spark_dir(): all real sizes
    "real-codec": ("tiny", "bicodec", "xlsr53", "float32"),  # the tiny LLM (it writes semantic ids) + real codec
}
HORIZON = 96


def real_folder(name: str) -> Path:
    from impl.seeded.spark import seeded_spark

    llm, bicodec, w2v, dtype = REAL_FOLDERS[name]
    return seeded_spark(llm, bicodec, w2v, 0, dtype)


def newest_id(ids: Sequence[int]) -> int:
    """The id whose first occurrence comes last."""
    first: Dict[int, int] = {}
    for n, t in enumerate(ids):
        first.setdefault(int(t), n)
    return max(first, key=first.get)


def cut_at_stop(ids: Sequence[int], stops: Sequence[int]) -> List[int]:
    """ids up to and including the first stop id (all of them when none occurs)."""
    out: List[int] = []
    for t in ids:
        out.append(int(t))
        if t in stops:
            break
    return out


def with_stops(dst: Path, src: Path, stops: List[int]) -> Path:
    """`src` linked into `dst` with LLM/generation_config.json: config.json's bos/pad ids and these EOS ids."""
    cfg = json.loads((src / "LLM" / "config.json").read_text())
    if (src / "LLM" / "generation_config.json").exists():
        raise ValueError(f"{src}: expected no LLM/generation_config.json (the official folder has none)")
    _link_tree(src, dst)
    keys = {k: cfg[k] for k in ("bos_token_id", "pad_token_id") if cfg.get(k) is not None}
    (dst / "LLM" / "generation_config.json").write_text(json.dumps(dict(keys, eos_token_id=stops), indent=2) + "\n")
    return dst


def impl_runs(folder: Path, wav: str) -> Tuple[Dict[str, Dict[str, Any]], List[int]]:
    """({case: prompt ids, global ids, HORIZON greedy ids, voice}, EOS ids) from impl on the folder as it is."""
    from impl.spark import generate as G

    tts = G.load(folder)
    cloned = tts.voice_from_audio(wav)
    runs: Dict[str, Dict[str, Any]] = {}
    stops = list(tts.stop_ids)
    for case, kw in CASES.items():
        voice = (G.Voice(gender=kw["gender"], pitch=kw["pitch"], speed=kw["speed"]) if "gender" in kw else
                 replace(cloned, prompt_text=kw["prompt_text"]))
        ids: List[int] = []
        try:
            next(tts.generate_chunks(TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=HORIZON),
                                     on_token=ids.append))
        except G.GenerationError:
            pass  # a created voice's parse fails after its ids: the ids are what is needed here
        runs[case] = {"prompt": tts.prompt(TEXT, voice), "voice": voice, "horizon": ids,
                      "global": None if voice.creates else voice.global_codes.tolist()}
        stops.append(newest_id(ids))
    for r in runs.values():
        r["ids"] = cut_at_stop(r["horizon"], stops)
        try:
            sem, glob = tts.parse(r["ids"], r["voice"])
            r["semantic"] = sem.tolist()
            r["audio"] = tts.decode(sem, glob) if sem.size else None
            r["error"] = None if sem.size else str(G.no_semantic_error(len(r["ids"])))
        except G.GenerationError as e:
            r["semantic"], r["audio"], r["error"] = None, None, str(e)
    return runs, stops


def official_runs(folder: Path, wav: str) -> Dict[str, Dict[str, Any]]:
    """Per case: sparktts' prompt ids and prompt-audio global ids, `SparkTTS.inference` (greedy: top_k=1) new ids,
    upstream's parsed semantic ids and the fp32 audio (or the exception it raised); then the float64
    `BiCodec.detokenize` of the same ids (the floor's truth). One model at a time: SparkTTS is freed first."""
    import gc

    from reference import spark as R

    ref = R.SparkReference(folder)
    runs: Dict[str, Dict[str, Any]] = {}
    for case, kw in CASES.items():
        prompt, glob = ref.prompt_ids(TEXT, wav, **kw)
        audio, ids = ref.inference(TEXT, wav, top_k=1, **kw)  # greedy: one candidate left
        text = ref.tokenizer.batch_decode([ids], skip_special_tokens=True)[0]  # upstream's parse
        runs[case] = {"prompt": prompt, "global": None if glob is None else [int(g) for g in glob], "ids": ids,
                      "semantic": [int(t) for t in re.findall(r"bicodec_semantic_(\d+)", text)],
                      "audio": None if isinstance(audio, Exception) else audio,
                      "error": f"{type(audio).__name__}: {audio}" if isinstance(audio, Exception) else None}
    del ref
    gc.collect()
    if any(r["audio"] is not None for r in runs.values()):
        codec64 = R.load(folder / "BiCodec", "float64")
        for r in runs.values():
            if r["audio"] is not None:
                r["audio64"] = R.detokenize(codec64, np.asarray(r["semantic"])[None],
                                            np.asarray(r["global"]).reshape(1, 1, -1))[0]
        del codec64
        gc.collect()
    return runs


# ------------------------------------------------------------------------------------------------ contract
# The report's section: the three CASES as parity/test_spark_generate.py runs them. The EOS ids (chosen by impl's
# greedy run, see `folder`) are recorded with the official outputs, so the replay rebuilds the same folder without
# running the official side (or trusting impl) to choose them.

def prompt_wav() -> str:
    """LibriVox 0880 (3 s, in the repository: fixtures/data/librivox)."""
    from parity.doubles import load_librivox

    return load_librivox()["0880"].wav


def record(quick: bool) -> Dict[str, Any]:
    import torch

    from reference import spark as R

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster on this 2-core machine (parity/test_spark.py)
    try:
        with tempfile.TemporaryDirectory(prefix="vp-spark-gen-") as tmp:
            wav = prompt_wav()
            dst, stops = folder(Path(tmp) / "Spark-TTS-tiny", wav)
            ref = R.SparkReference(dst)
            codec64 = R.load(dst / "BiCodec", "float64")
            runs = {}
            for case, kw in CASES.items():
                prompt, glob = ref.prompt_ids(TEXT, wav, **kw)
                audio, ids = ref.inference(TEXT, wav, top_k=1, **kw)  # greedy: one candidate left
                text = ref.tokenizer.batch_decode([ids], skip_special_tokens=True)[0]  # upstream's parse
                sem = [int(t) for t in re.findall(r"bicodec_semantic_(\d+)", text)]
                run = {"prompt": np.asarray(prompt, np.int32), "ids": np.asarray(ids, np.int32),
                       "semantic": np.asarray(sem, np.int32), "global": None if glob is None else
                       np.asarray(glob, np.int32), "audio": None,
                       "error": f"{type(audio).__name__}: {audio}" if isinstance(audio, Exception) else None}
                if glob is not None and sem:
                    a64 = R.detokenize(codec64, np.asarray(sem)[None], np.asarray(glob).reshape(1, 1, -1))[0]
                    run["audio"] = floor_ref(audio, a64)
                runs[case] = run
    finally:
        torch.set_num_threads(threads)
    return {"stops": list(stops), "runs": runs}


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl.seeded.spark import seeded_spark
    from impl.spark import generate as G

    wav = prompt_wav()
    cases: List[Case] = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="vp-spark-gen-") as tmp:
        dst = Path(tmp) / "Spark-TTS-tiny"
        _link_tree(seeded_spark(), dst)
        write_generation_config(dst, [int(s) for s in rec["stops"]])
        tts = G.load(dst)
        for case, kw in CASES.items():
            run = rec["runs"][case]
            voice = (G.Voice(gender=kw["gender"], pitch=kw["pitch"], speed=kw["speed"]) if "gender" in kw else
                     tts.voice_from_audio(wav, kw["prompt_text"]))
            if run["global"] is not None:
                cases.append(ids_case(f"{case}: prompt audio's global ids", voice.global_codes.tolist(),
                                      run["global"].tolist()))
            cases.append(ids_case(f"{case}: prompt ids", tts.prompt(TEXT, voice), run["prompt"].tolist()))
            ids: List[int] = []
            try:
                audio, _ = tts.generate(TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=None),
                                        on_token=ids.append)
                err = None
            except G.GenerationError as e:
                audio, err = None, e
            cases.append(ids_case(f"{case}: generated ids (greedy)", ids, run["ids"].tolist()))
            notes.append(f"{case}: {len(run['prompt'])} prompt ids, {len(run['ids'])} generated, "
                         f"{len(run['semantic'])} semantic" + (f"; upstream: {run['error']}" if run["error"] else ""))
            if run["error"] is not None:  # upstream could not decode (a created voice without 32 global ids)
                ok = err is not None and "\n" not in str(err)
                cases.append(Case(f"{case}: refused as upstream fails", 0.0 if ok else 1.0, 0.0, ok, "exact",
                                  f"impl: {err}" if ok else "impl decoded audio (or a multi-line error) where "
                                  "upstream's detokenize fails"))
                continue
            if err is not None:
                cases.append(Case(f"{case}: audio", float("inf"), 0.0, False, "exact", f"impl raised {err}"))
                continue
            cases.append(ids_case(f"{case}: semantic ids", tts.parse(ids, voice)[0].tolist(),
                                  run["semantic"].tolist()))
            if run["audio"] is not None:
                cases.append(floor_case(f"{case}: audio ({run['audio']['shape'][0]} samples)", audio, run["audio"]))
    return section("Spark generation (greedy)", "impl.spark SparkTTS.generate vs sparktts' SparkTTS.inference "
                   "(transformers generate with top_k=1, BiCodecTokenizer, BiCodec) on the tiny seeded Spark-TTS "
                   f"folder, prompt audio LibriVox 0880, text {TEXT!r}: prompt, generated and semantic ids exact, "
                   "audio within the floor", cases,
                   "ids exact; audio 10 x the fp32 floor (fp64: BiCodec.detokenize of the official ids in float64)",
                   "ids: differing; audio: max|impl - ref64|",
                   [f"EOS ids (LLM/generation_config.json): {[int(s) for s in rec['stops']]}"] + notes)


CONTRACT = Contract("spark-generation", record, check)
