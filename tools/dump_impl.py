"""A tensor-dump producer for voiceport's own port (`impl`), written against docs/dump-protocol.md only: it reads
the input folders `./vp parity --dump-inputs IN` writes and writes a dump that `./vp parity --dumps OUT` checks.

    ./vp python tools/dump_impl.py IN OUT [COMPONENT ...] [--tamper NAME]

It uses impl's public loaders and modules and its own tap (a subclass swap that records each named module's first
output); nothing from parity/. --tamper NAME adds 1e-3 x max|x| to one tensor after the run (the checker must then
name exactly that tensor).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from safetensors.numpy import load_file, save_file

PROTOCOL = "voiceport-dump/1"


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
        info = json.loads((folder / "component.json").read_text())
        if info["protocol"] != PROTOCOL:
            raise SystemExit(f"{folder}: protocol {info['protocol']!r}, this producer writes {PROTOCOL!r}")
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
            t = tensors[a.tamper].astype(np.float32)
            t.reshape(-1)[0] += 1e-3 * float(np.max(np.abs(t)) or 1.0)
            tensors[a.tamper] = t
        (a.out / comp).mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(a.out / comp / "dump.safetensors"))
        print(f"[dump_impl] {comp}: {len(tensors)} tensors")
    (a.out / "dump.json").write_text(json.dumps({"protocol": PROTOCOL, "producer": "voiceport impl (tools/dump_impl.py)",
                                                 "components": comps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
