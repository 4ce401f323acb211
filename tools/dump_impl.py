"""A tensor-dump producer for voiceport's own port (`impl`), written against docs/dump-protocol.md only: it reads
the input folders `./vp parity --dump-inputs IN` writes and writes a dump that `./vp parity --dumps OUT` checks.

    ./vp python tools/dump_impl.py IN OUT [COMPONENT ...] [--tamper NAME]

It uses impl's public loaders and modules and its own tap (a subclass swap that records each named module's first
output); nothing from parity/. --tamper NAME adds 1e-3 x max|x| to one tensor after the run (the checker must then
name exactly that tensor); for an id tensor (ids:...) it adds 1 to its last id, for a distribution (p:...) it moves
1e-3 of the top token's probability to the second.

Contract components (protocol §5: outetts-prompt, outetts-sampler, speaker-profile, spark-prompt, spark-sampler)
run impl's public API on the inputs in inputs.json / inputs.safetensors (`contract`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from safetensors.numpy import load_file, save_file

PROTOCOL = "voiceport-dump/2"
READS = ("voiceport-dump/1", PROTOCOL)


def walk(root, path: str):
    node = root
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class Taps:
    """Record the first output of each named module (the first element when it returns a tuple)."""

    def __init__(self, model, names):
        self.out, self.swapped = {}, []
        for name in names:
            m = walk(model, name)
            cls = type(m)
            m.__class__ = type("Tap" + cls.__name__, (cls,), {"__call__": self._call(cls, name)})
            self.swapped.append((m, cls))

    def _call(self, cls, name):
        out = self.out

        def __call__(module, *args, **kwargs):
            y = cls.__call__(module, *args, **kwargs)
            if name not in out:
                first = y
                while isinstance(first, (tuple, list)):
                    first = first[0]
                out[name] = np.array(first.astype(mx.float32) if mx.issubdtype(first.dtype, mx.floating) else first)
            return y

        return __call__

    def restore(self):
        for m, cls in self.swapped:
            m.__class__ = cls


def run(comp: str, folder: Path, cfg: dict):
    """(model, function(model, inputs) -> outputs by name) for one component, with impl's public API."""
    ckpt = folder / "checkpoint"
    if comp == "dac":
        from impl import dac

        def fwd(model, x):
            z = model.encoder(mx.array(x["audio"])[:, :, None])
            z_q, codes, _ = model.quantizer(z)
            return {"codes": codes, "audio": model.decoder(z_q)[:, :, 0]}

        return dac.load(ckpt.resolve()), fwd
    if comp in ("llama", "qwen2-0.5b"):
        from impl import llama, qwen2
        from impl.outetts.generate import generate_greedy

        model = (llama if comp == "llama" else qwen2).load(ckpt)

        def fwd(model, x):
            ids = mx.array(x["ids"].astype(np.int32))
            logits = model(ids)
            mx.eval(logits)
            cache = llama.make_cache(model)
            half = ids.shape[1] // 2
            steps = [model(ids[:, :half], cache)]
            for t in range(half, ids.shape[1]):
                steps.append(model(ids[:, t:t + 1], cache))
            out = {"logits": logits, "logits_tf": mx.concatenate(steps, axis=1)}
            if comp == "qwen2-0.5b":
                out["greedy"] = np.asarray(generate_greedy(model, x["ids"][0, :12].tolist(), 64), np.int64)
            return out

        return model, fwd
    from impl import spark

    model = spark.load(ckpt)
    if comp == "spark-decoder":
        return model, lambda m, x: {"audio": m.detokenize(mx.array(x["semantic"]), mx.array(x["global"]))}
    if comp == "spark-global":
        def fwd(m, x):
            mel = m.mel(mx.array(x["ref_wav"]))
            ids = m.speaker_encoder.tokenize(mel)
            x_vec, d_vec = m.speaker_encoder(mel)
            return {"mel": mel, "global_ids": ids, "x_vector": x_vec, "d_vector": d_vec}

        return model, fwd
    if comp == "spark-semantic":
        def fwd(m, x):
            z = m.encoder(mx.array(x["feat"]))
            return {"z": z, "semantic_ids": m.quantizer.tokenize(z)}

        return model, fwd
    raise SystemExit(f"dump_impl: no producer for component {comp!r}")


# ------------------------------------------------------------------------------------- contract components

def contract(comp: str, folder: Path, info: dict):
    """(tensors, {file name: JSON object}) of one contract component (protocol §5)."""
    cases = json.loads((folder / "inputs.json").read_text(encoding="utf-8"))
    if comp == "outetts-prompt":
        from impl.outetts.prompt import prompt_ids
        from impl.outetts.text import TextError
        from impl.outetts.tokenizer import Tokenizer

        tok = Tokenizer(folder / "tokenizer")
        out = {}
        for c in cases["cases"]:
            try:
                ids = prompt_ids(tok, c["text"], c["speaker"])
            except TextError:  # empty after outetts' normalisation: refused, 0 ids (§5)
                ids = []
            out[f"ids:{c['name']}"] = np.asarray(ids, np.int64)
        return out, {}
    if comp in ("outetts-sampler", "spark-sampler"):
        from impl.outetts.sampler import SamplerConfig, probabilities
        from impl.spark import sampler as spark_sampler

        x = load_file(str(folder / "inputs.safetensors"))
        out = {}
        for s in cases["sets"]:
            st, ids = s["settings"], x[f"ids:{s['name']}"]
            if comp == "spark-sampler":
                cfg = spark_sampler.config(st["temperature"], st["top_k"], st["top_p"])
            else:
                cfg = SamplerConfig(st["temperature"], st["repetition_penalty"], st["repetition_range"], st["top_k"],
                                    st["top_p"], st["min_p"])
            window = ids[:, max(0, ids.shape[1] - cfg.repetition_range):]
            p = probabilities(mx.array(x[f"logits:{s['name']}"]), mx.array(window.astype(np.int32)), cfg)
            out[f"p:{s['name']}"] = np.array(p)
        return out, {}
    if comp == "speaker-profile":
        from impl import dac
        from impl.dac.interface import DacInterface
        from impl.speaker import features, profile
        from impl.speaker.align import GivenWords

        codec = DacInterface(dac.load((folder / "checkpoint").resolve()))
        bucketed, raw = profile.extract_audio_features, []

        def tap(audio, sr):  # the values x 100 before rounding (optional output), where the profile calls it
            v = features.feature_values(audio, sr)
            raw.append([v[k] * 100 for k in ("energy", "spectral_centroid", "pitch")])
            return bucketed(audio, sr)

        profiles, out = {}, {}
        profile.extract_audio_features = tap
        try:
            for c in cases["cases"]:
                raw.clear()
                profiles[c["name"]] = profile.create_profile(str(folder / c["audio"]), codec, GivenWords(c["words"]),
                                                             text=c["text"])
                out[f"features:{c['name']}"] = np.asarray(raw[-1:] + raw[:-1], np.float64)  # impl: words, global
        finally:
            profile.extract_audio_features = bucketed
        return out, {"profiles.json": profiles}
    if comp == "spark-prompt":
        from impl.spark import prompt as P
        from impl.spark.tokens import Tokenizer

        tok = Tokenizer(folder / "tokenizer")
        out = {}
        for c in cases["cases"]:
            g, s, n = c["global_ids"], c["semantic_ids"], c["name"]
            out[f"ids:{n}:clone"] = np.asarray(P.clone_ids(tok, c["text"], g, s, None), np.int64)
            out[f"ids:{n}:clone-transcript"] = np.asarray(P.clone_ids(tok, c["text"], g, s, c["prompt_text"]),
                                                          np.int64)
            out[f"ids:{n}:create"] = np.asarray(P.control_ids(tok, c["text"], c["gender"], c["pitch"], c["speed"]),
                                                np.int64)
        return out, {}
    raise SystemExit(f"dump_impl: no producer for component {comp!r}")


def tamper(tensors: dict, name: str) -> None:
    """The checker's self-test: change one tensor slightly (see the module docstring)."""
    t = tensors[name]
    if name.startswith("ids:"):
        t = t.copy()
        t[-1] += 1
    elif name.startswith("p:"):
        t = t.astype(np.float64).copy()
        flat = t.reshape(-1)
        top, second = np.argsort(flat)[::-1][:2]
        flat[top], flat[second] = flat[top] - 1e-3 * flat[top], flat[second] + 1e-3 * flat[top]
        t = t.astype(np.float32)
    else:
        t = t.astype(np.float32)
        t.reshape(-1)[0] += 1e-3 * float(np.max(np.abs(t)) or 1.0)
    tensors[name] = t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("components", nargs="*")
    p.add_argument("--tamper", default=None, metavar="NAME", help="perturb this tensor (checker self-test)")
    a = p.parse_args(argv)
    comps = a.components or sorted(d.name for d in a.inputs.iterdir() if (d / "component.json").exists())
    for comp in comps:
        folder = a.inputs / comp
        info = json.loads((folder / "component.json").read_text(encoding="utf-8"))
        if info["protocol"] not in READS:
            raise SystemExit(f"{folder}: protocol {info['protocol']!r}, this producer reads {READS}")
        (a.out / comp).mkdir(parents=True, exist_ok=True)
        if info.get("kind") == "contract":
            tensors, files = contract(comp, folder, info)
            if a.tamper in tensors:
                tamper(tensors, a.tamper)
            if tensors:
                save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                          str(a.out / comp / "dump.safetensors"))
            for fname, obj in files.items():
                (a.out / comp / fname).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n",
                                                  encoding="utf-8")
            print(f"[dump_impl] {comp}: {len(tensors)} tensors" + (f", {', '.join(files)}" if files else ""))
            continue
        x = load_file(str(folder / "inputs.safetensors"))
        model, fwd = run(comp, folder, info["config"])
        layers = [n for n, t in info["tensors"].items() if t["kind"] == "layer"]
        taps = Taps(model, layers)
        try:
            outs = fwd(model, x)
        finally:
            taps.restore()
        tensors = dict(taps.out)
        for k, v in outs.items():
            v = np.asarray(v) if isinstance(v, np.ndarray) else np.array(v)
            tensors[f"output:{k}"] = v
        if a.tamper in tensors:
            tamper(tensors, a.tamper)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(a.out / comp / "dump.safetensors"))
        print(f"[dump_impl] {comp}: {len(tensors)} tensors")
    (a.out / "dump.json").write_text(json.dumps({"protocol": PROTOCOL, "producer": "voiceport impl (tools/dump_impl.py)",
                                                 "components": comps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
