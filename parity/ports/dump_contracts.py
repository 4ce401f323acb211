"""The contract components of the tensor-dump protocol (docs/dump-protocol.md §5, `voiceport-dump/2`): the public
promises of OuteTTS and Spark-TTS that need no layer taps, checked from files, torch-free.

  outetts-prompt    texts + speaker profiles -> the prompt ids       fixture contract `prompt-ids`     exact
  outetts-sampler   logits + previous ids + settings -> distribution fixture contract `sampler`        softmax bound
  speaker-profile   audio + official words and times -> profile JSON fixture contract `speaker-profile` exact + RAW_REL
  spark-prompt      text, transcript, BiCodec ids, controls -> ids   fixture contract `spark-prompt-ids` exact
  spark-sampler     logits + settings -> distribution                fixture contract `spark-sampler`   softmax bound

Each component's official side is the golden record of the live contract (fixtures/contracts/<name>.safetensors,
recorded by `./vp fixtures generate <name>`), its inputs are the live contract's own (regenerated torch-free from
the spec module, or read from the record), and the comparison is the live contract's: the same cases, the same
tolerances (parity/specs/prompt.py, sampler.py, speaker.py, spark_prompt.py, spark_sampler.py). Codes are the
`dac` layer component's `output:codes`.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from parity.contracts import Case, first_difference


@dataclass(frozen=True)
class ContractComponent:
    contract: str   # the live contract (parity.cli.CONTRACTS) whose fixture is the official side
    run: str        # what the producer computes, in words
    export: Callable[[Path, Dict[str, Any]], Dict[str, Any]]  # (folder, record) -> component.json's extra keys
    check: Callable[[Dict[str, Any], "Dump"], List[Case]]    # (record, the producer's files) -> cases


@dataclass
class Dump:
    """One component's dump: its tensors (dump.safetensors, may be empty), its JSON files, and problems found."""

    folder: Path
    tensors: Dict[str, np.ndarray]
    problems: List[str]

    def json(self, name: str) -> Optional[Any]:
        f = self.folder / name
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self.problems.append(f"{f}: not valid UTF-8 JSON ({e})")
            return None


def _key(name: str) -> str:
    """A record's case name -> the protocol's tensor-safe name ('set 3' -> 'set-003')."""
    m = re.fullmatch(r"set (\d+)", name)
    if m:
        return f"set-{int(m.group(1)):03d}"
    return re.sub(r"[^0-9A-Za-z]+", "-", name).strip("-").lower()


def _link(folder: Path, name: str, target: Path) -> None:
    link = folder / name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(target).resolve())


def _ids(dump: Dump, comp: str, key: str, label: str, want: Optional[List[int]]) -> Case:
    """One id sequence `key` of the dump against `want` (None: the official side refuses the input, the dump must
    hold a 0-length tensor)."""
    x = dump.tensors.get(key)
    name = f"{key} ({label})"
    if x is None:
        dump.problems.append(f"{comp}: tensor {key!r} missing (1-D integer ids)")
        return Case(name, 1.0, 0.0, False, "exact", "missing from the dump")
    if x.dtype.kind not in "iu" or x.ndim != 1:
        dump.problems.append(f"{comp}: tensor {key!r} is {x.dtype} {list(x.shape)}; ids are a 1-D integer tensor")
        return Case(name, 1.0, 0.0, False, "exact", f"{x.dtype} {list(x.shape)}: not 1-D integer ids")
    if want is None:
        ok = x.size == 0
        return Case(name, 0.0 if ok else 1.0, 0.0, ok, "exact", "refused (0 ids) on both sides" if ok else
                    f"the official side refuses this input (empty after normalisation); the dump has {x.size} ids")
    got = x.tolist()
    pos = first_difference(got, want)
    if pos is None:
        return Case(name, 0.0, 0.0, True, "exact", f"{len(want)} ids")
    n = sum(1 for a, b in zip(got, want) if a != b) + abs(len(got) - len(want))
    return Case(name, float(n), 0.0, False, "exact", f"position {pos} of {len(want)}: dump {got[pos:pos + 3]} != "
                f"official {want[pos:pos + 3]}")


# ----------------------------------------------------------------------------------------- outetts-prompt

def _prompt_export(folder: Path, rec: Dict[str, Any]) -> Dict[str, Any]:
    from parity.specs import prompt as P

    _link(folder, "tokenizer", P._tokenizer_dir())
    cases = [{"name": f"case-{i:03d}", "text": text, "speaker": speaker}
             for i, (text, speaker) in enumerate(P.cases(int(rec["n"])))]
    (folder / "inputs.json").write_text(json.dumps({"cases": cases}, ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")
    return {"files": {"inputs.json": "{\"cases\": [{\"name\", \"text\", \"speaker\": a profile object or null}]}",
                      "tokenizer": "a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json, "
                                   "special_tokens_map.json): OuteTTS-1.0's added tokens over a small seeded "
                                   "byte-level BPE"},
            "outputs": {"dump.safetensors": "ids:<case name>: 1-D integer ids; (0,) for a text the official "
                                            "normaliser empties"}}


def _prompt_check(rec: Dict[str, Any], dump: Dump) -> List[Case]:
    from parity.specs import prompt as P

    cases, at = [], 0
    for i, ((text, speaker), n) in enumerate(zip(P.cases(int(rec["n"])), rec["lengths"].tolist())):
        label = f"{'no speaker' if speaker is None else str(len(speaker['words'])) + ' words'}, text {text[:24]!r}"
        want = None if n < 0 else rec["ids"][at:at + n].tolist()
        at += max(n, 0)
        cases.append(_ids(dump, "outetts-prompt", f"ids:case-{i:03d}", label, want))
    return cases


# ----------------------------------------------------------------------------------------- samplers

def _sampler_inputs(contract: str) -> Dict[str, Tuple[np.ndarray, np.ndarray, Dict[str, Any]]]:
    """name -> (logits (B, V) float32, previous ids (B, L) int64, settings) of every logits set of the live
    contract; Spark's sets have no previous ids and no penalty (its official call has none)."""
    if contract == "sampler":
        from parity.specs import sampler as S

        return {name: (logits, ids.astype(np.int64), dict(kw, repetition_range=64))
                for name, logits, ids, kw in S._inputs(True)}
    from parity.specs import spark_sampler as S

    return {name: (logits, np.zeros((logits.shape[0], 0), np.int64),
                   dict(kw, repetition_penalty=1.0, repetition_range=0, min_p=0.0))
            for name, logits, kw in S._inputs()}


def _sampler_export(contract: str):
    def export(folder: Path, rec: Dict[str, Any]) -> Dict[str, Any]:
        from safetensors.numpy import save_file

        inputs = _sampler_inputs(contract)
        sets, tensors = [], {}
        for s in rec["sets"]:
            logits, ids, kw = inputs[s["name"]]
            key = _key(s["name"])
            tensors[f"logits:{key}"], tensors[f"ids:{key}"] = np.ascontiguousarray(logits), np.ascontiguousarray(ids)
            sets.append({"name": key, "label": s["name"], "shape": list(logits.shape), "settings": kw})
        save_file(tensors, str(folder / "inputs.safetensors"))
        (folder / "inputs.json").write_text(json.dumps({"sets": sets}, indent=1) + "\n")
        return {"files": {"inputs.json": "{\"sets\": [{\"name\", \"label\", \"shape\": [B, V], \"settings\": "
                                         "{temperature, repetition_penalty, repetition_range, top_k, top_p, min_p}}]}",
                          "inputs.safetensors": "logits:<set> (B, V) float32 next-token logits; ids:<set> (B, L) "
                                                "int64 the sequence so far (prompt and generated ids), L may be 0"},
                "outputs": {"dump.safetensors": "p:<set> (B, V) float32 or float64: the probability distribution "
                                                "the next id is drawn from (0 exactly where the processors removed "
                                                "a token)"}}

    return export


def _sampler_check(rec: Dict[str, Any], dump: Dump, comp: str) -> List[Case]:
    from parity.specs.sampler import softmax_bound

    cases = []
    for s in rec["sets"]:
        key = f"p:{_key(s['name'])}"
        name = f"{key} ({s['name']}, V {s['shape'][-1]}, B {s['shape'][0]})"
        x = dump.tensors.get(key)
        if x is None:
            dump.problems.append(f"{comp}: tensor {key!r} missing (expected shape {s['shape']})")
            cases.append(Case(name, float("inf"), 1.0, False, "bound", "missing from the dump"))
            continue
        if list(x.shape) != list(s["shape"]) or x.dtype not in (np.float32, np.float64):
            dump.problems.append(f"{comp}: tensor {key!r} is {x.dtype} {list(x.shape)}, expected float32 "
                                 f"{s['shape']}")
            cases.append(Case(name, float("inf"), 1.0, False, "bound", f"{x.dtype} {list(x.shape)}"))
            continue
        p = x.reshape(-1).astype(np.float64)
        idx = np.asarray(s["index"]).astype(np.int64)
        support = np.flatnonzero(p != 0)
        if not np.array_equal(support, idx):
            extra = sorted(set(support.tolist()) ^ set(idx.tolist()))[:3]
            cases.append(Case(name, float("inf"), 1.0, False, "bound", f"support differs: {len(support)} vs "
                              f"official {len(idx)} tokens, e.g. flat {extra}"))
            continue
        want = np.asarray(s["p"], np.float64)
        bound = softmax_bound(want[None])[0]
        ratio = np.abs(p[idx] - want) / bound
        worst = int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio)))
        err = float(ratio[worst]) if not np.isnan(ratio[worst]) else float("inf")
        cases.append(Case(name, err, 1.0, bool(err <= 1.0), "bound",
                          f"max|dp| {np.nanmax(np.abs(p[idx] - want)):.3g}; worst vs bound at flat token {idx[worst]}"))
    return cases


# ----------------------------------------------------------------------------------------- speaker-profile

def _speaker_export(folder: Path, rec: Dict[str, Any]) -> Dict[str, Any]:
    from impl.seeded.dac import seeded_checkpoint
    from parity.doubles import load_librivox
    from parity.specs.speaker import profile_cases

    _link(folder, "checkpoint", seeded_checkpoint("24khz_speech", 0))
    (folder / "audio").mkdir(exist_ok=True)
    cases = []
    for name, clip, words, text in profile_cases(load_librivox()):
        wav = folder / "audio" / Path(clip.wav).name
        if not wav.exists():
            shutil.copyfile(clip.wav, wav)
        cases.append({"name": _key(name), "label": name, "audio": f"audio/{wav.name}", "text": text,
                      "words": words})
    (folder / "inputs.json").write_text(json.dumps({"cases": cases}, ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")
    return {"files": {"inputs.json": "{\"cases\": [{\"name\", \"label\", \"audio\": path of a WAV file in this "
                                     "folder, \"text\": the transcript, \"words\": [{\"word\", \"start\", \"end\"} "
                                     "in seconds]}]}",
                      "audio/": "the speakers' recordings (16 kHz mono 16-bit WAV)",
                      "checkpoint": "the seeded DAC 24 kHz speech checkpoint (as the dac component's)"},
            "outputs": {"profiles.json": "{<case name>: the profile object}",
                        "dump.safetensors (optional)": "features:<case name> (1 + words, 3) float64: energy, "
                                                       "spectral_centroid, pitch x 100 before rounding; row 0 the "
                                                       "global features, then one row per word"}}


def _speaker_check(rec: Dict[str, Any], dump: Dump) -> List[Case]:
    from parity.specs.speaker import compare_profile, raw_cases

    got_all = dump.json("profiles.json")
    if got_all is None:
        dump.problems.append("speaker-profile: profiles.json missing or unreadable ({case name: profile})")
        got_all = {}
    cases = []
    for p in rec["profiles"]:
        key = _key(p["clip"])
        name = f"{key} ({p['clip']})"
        got = got_all.get(key)
        if not isinstance(got, dict):
            dump.problems.append(f"speaker-profile: profile {key!r} missing from profiles.json")
            cases.append(Case(name, 1.0, 0.0, False, "exact", "missing from profiles.json"))
            continue
        try:
            c, _ = compare_profile(name, got, json.loads(p["json"]), p["raw"])
        except (AttributeError, KeyError, TypeError) as e:  # a malformed profile is a divergence, named
            c = [Case(name, 1.0, 0.0, False, "exact", f"malformed profile: {type(e).__name__}: {e}")]
        cases += c
        raw = dump.tensors.get(f"features:{key}")
        if raw is not None:
            if raw.ndim != 2 or raw.shape[1] != 3 or raw.dtype.kind != "f":
                dump.problems.append(f"speaker-profile: tensor 'features:{key}' is {raw.dtype} {list(raw.shape)}, "
                                     "expected float (1 + words, 3)")
            got_raw = raw.astype(np.float64).tolist()
            cases += (raw_cases(name, got_raw, p["raw"], p["raw64"], p["pitch_floor"]) if "raw64" in p else
                      raw_cases(name, got_raw, p["raw"]))  # a record before contract v3: relative limits
    return cases


# ----------------------------------------------------------------------------------------- spark-prompt

SPARK_MODES = ("clone", "clone-transcript", "create")


def _spark_prompt_export(folder: Path, rec: Dict[str, Any]) -> Dict[str, Any]:
    from parity.specs.spark_prompt import llm_dir

    _link(folder, "tokenizer", llm_dir())
    sem_at = np.concatenate([[0], np.cumsum(rec["semantic_len"])])
    cases = []
    for i, text in enumerate(rec["text"]):
        gender, pitch, speed = rec["control"][i]
        cases.append({"name": f"case-{i:03d}", "text": text, "prompt_text": rec["prompt_text"][i],
                      "global_ids": rec["global"][i].tolist(),
                      "semantic_ids": rec["semantic"][sem_at[i]:sem_at[i + 1]].tolist(),
                      "gender": gender, "pitch": pitch, "speed": speed})
    (folder / "inputs.json").write_text(json.dumps({"cases": cases}, ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")
    return {"files": {"inputs.json": "{\"cases\": [{\"name\", \"text\", \"prompt_text\", \"global_ids\": 32 ints, "
                                     "\"semantic_ids\": ints, \"gender\", \"pitch\", \"speed\"}]}",
                      "tokenizer": "the Spark-TTS LLM folder (tokenizer.json, tokenizer_config.json, ...: the real "
                                   "Spark-TTS added tokens at their ids)"},
            "outputs": {"dump.safetensors": "ids:<case name>:<mode> 1-D integer ids, mode in "
                                            + ", ".join(SPARK_MODES)}}


def _spark_prompt_check(rec: Dict[str, Any], dump: Dump) -> List[Case]:
    at = {m: np.concatenate([[0], np.cumsum(rec["lengths"][m])]) for m in SPARK_MODES}
    cases = []
    for i, text in enumerate(rec["text"]):
        for m in SPARK_MODES:
            want = rec["ids"][m][at[m][i]:at[m][i + 1]].tolist()
            cases.append(_ids(dump, "spark-prompt", f"ids:case-{i:03d}:{m}", f"text {text[:20]!r}", want))
    return cases


# ----------------------------------------------------------------------------------------- table

COMPONENTS: Dict[str, ContractComponent] = {
    "outetts-prompt": ContractComponent(
        "prompt-ids", "per case: outetts v3's completion prompt for `text` spoken by `speaker` (PromptProcessor."
        "get_completion_prompt: text normalisation, speaker text merge, the prompt string), encoded by the "
        "tokenizer without special tokens added -> ids:<case>", _prompt_export, _prompt_check),
    "outetts-sampler": ContractComponent(
        "sampler", "per logits set: the official OuteTTS processors in order (repetition penalty over the last "
        "repetition_range ids, temperature, top-k, top-p, min-p) on the logits, then softmax -> p:<set>",
        _sampler_export("sampler"), lambda rec, d: _sampler_check(rec, d, "outetts-sampler")),
    "speaker-profile": ContractComponent(
        "speaker-profile", "per case: outetts v3's speaker profile (AudioProcessor.create_speaker_from_dict) of the "
        "recording with the given words and times and the normalised transcript, DAC = checkpoint -> "
        "profiles.json[<case>] (+ optional features:<case>)", _speaker_export, _speaker_check),
    "spark-prompt": ContractComponent(
        "spark-prompt-ids", "per case and mode: Spark-TTS's prompt string (SparkTTS.process_prompt for clone / "
        "clone-transcript, process_prompt_control for create) through the tokenizer -> ids:<case>:<mode>",
        _spark_prompt_export, _spark_prompt_check),
    "spark-sampler": ContractComponent(
        "spark-sampler", "per logits set: the processors of SparkTTS.inference's generate (temperature, top-k, "
        "top-p; no penalty, no min-p) on the logits, then softmax -> p:<set>",
        _sampler_export("spark-sampler"), lambda rec, d: _sampler_check(rec, d, "spark-sampler")),
}

LIMIT_WHY = {
    "outetts-prompt": "exact: token ids (a text the official normaliser empties must be refused: 0 ids)",
    "outetts-sampler": "support exact; |p - p_ref| <= 1.01 (71 u + 2 n u / (1 - n u)) p_ref per token "
                       "(parity/specs/sampler.py: the float32 softmax bound of bit-equal processed scores)",
    "speaker-profile": "exact (ints, strings, file bytes; buckets within 1e-4 of a rounding edge of the official "
                       "value skipped); values before rounding within the live contract's limit (parity/specs/"
                       "speaker.py raw_cases: k x the value's fp32 floor)",
    "spark-prompt": "exact: token ids",
    "spark-sampler": "support exact; |p - p_ref| within the float32 softmax bound (parity/specs/sampler.py)",
}


def record(comp: str, fixtures: Path) -> Tuple[Dict[str, Any], str]:
    """The official record of a contract component and its fixture file name."""
    from parity import cli
    from parity.fixtures import find_contract, load_contract

    name = COMPONENTS[comp].contract
    path = find_contract(fixtures, name, cli.contract(name).version)
    return load_contract(path), path.name


def export(comp: str, folder: Path, fixtures: Path) -> Dict[str, Any]:
    """Write the component's inputs into `folder`; returns component.json's component-specific keys."""
    rec, fname = record(comp, fixtures)
    info = COMPONENTS[comp].export(folder, rec)
    info.update(kind="contract", contract=COMPONENTS[comp].contract, run=COMPONENTS[comp].run,
                compare=LIMIT_WHY[comp], fixture=f"contracts/{fname}")
    return info


def check(comp: str, folder: Path, fixtures: Path, producer: str = ""):
    """(parity.contracts.Section, [problems]) of one contract component's dump folder."""
    from safetensors.numpy import load_file

    from parity.contracts import section

    rec, fname = record(comp, fixtures)
    f = folder / "dump.safetensors"
    tensors = load_file(str(f)) if f.exists() else {}
    dump = Dump(folder, tensors, [])
    cases = COMPONENTS[comp].check(rec, dump)
    kind = "bound" if comp.endswith("sampler") else "exact"
    sec = section(f"dump {comp} ({producer or 'producer?'})",
                  f"{COMPONENTS[comp].run}; vs the official record fixtures/contracts/{fname}", cases,
                  LIMIT_WHY[comp], "max |dp| / softmax bound" if kind == "bound" else "differing ids / values")
    return sec, dump.problems
