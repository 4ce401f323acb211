"""A tensor-dump producer for mlx-audio 0.6.2, written from docs/dump-protocol.md alone (nothing from parity/ or
impl/): it loads mlx-audio from the protocol's official-format checkpoints with mlx-audio's own code, records the
protocol's tensors under their official names in the protocol's layout, and writes a dump for `./vp parity --dumps`.

    ./vp python tools/dump_mlx_audio.py IN OUT [COMPONENT ...] [--mlx-audio DIR]

IN is a `./vp parity --dump-inputs IN` folder. mlx-audio is imported from --mlx-audio (default: the folder
`./vp setup-port mlx-audio` installed, $VOICEPORT_PORT_DIR_MLX_AUDIO), appended to sys.path.

Contract components (protocol §5), each through the mlx-audio code its users run:
  outetts-prompt   tts/models/outetts/prompt_processor.py PromptProcessor.get_completion_prompt on the whole text
                   (one chunk; Model.generate first splits texts over 30 words), then tokenizer.encode(prompt,
                   add_special_tokens=False) as Model.generate does. mlx-audio refuses no text.
  outetts-sampler  lm/sample_utils.py as Model.generate builds it: make_logits_processors(None, penalty, window) on
  spark-sampler    the logits, logprobs = logits - logsumexp (lm/generate.py generate_step), then make_sampler's
                   filters in its order (top-p, min-p, top-k, each skipped when off) and categorical_sampling's
                   distribution softmax(logprobs x (1 / temperature)). A set whose settings mlx-audio refuses (top-k
                   >= the vocabulary: apply_top_k raises) is left out of the dump and named on stderr.
  speaker-profile  tts/models/outetts/audio_processor.py AudioProcessor.create_speaker_from_dict over
                   dac_interface.DacInterface.load_audio's steps (the WAV decoded by soundfile: mlx-audio's
                   audio_io needs miniaudio, not installed with --no-deps, and a 16-bit PCM WAV decodes to the same
                   samples; then its own convert_audio_array resample, and loudness in encode) with the protocol's
                   DAC checkpoint converted as for `dac`, the transcript through PromptProcessor.text_normalizations.
                   The profile is written as mlx-audio returns it (no values before rounding).
A component mlx-audio's code raises on is left out of dump.json (the checker lists it as not produced), the error on
stderr.
  spark-prompt     tts/models/spark/spark.py Model.process_prompt (its audio tokenizer answering with the given
                   ids, as mlx arrays of BiCodecTokenizer's shapes) and process_prompt_control, then tokenizer.encode(
                   prompt, add_special_tokens=False) as Model.generate does.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

PROTOCOL = "voiceport-dump/2"
READS = ("voiceport-dump/1", PROTOCOL)


# --------------------------------------------------------------------------------------------- taps

def walk(root, path: str):
    node = root
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def tap(model, names, record):
    """names: {official name: (path in mlx-audio's tree, output layout 'nlc'|'ncl')}; returns an undo."""
    import mlx.core as mx

    swapped = []
    for official, (path, layout) in names.items():
        m = walk(model, path)
        cls = type(m)

        def __call__(module, *args, _cls=cls, _name=official, _layout=layout, **kwargs):
            y = _cls.__call__(module, *args, **kwargs)
            if _name not in record:
                first = y
                while isinstance(first, (tuple, list)):
                    first = first[0]
                a = np.array(first.astype(mx.float32))
                record[_name] = np.swapaxes(a, 1, 2) if _layout == "ncl" and a.ndim == 3 else a
            return y

        m.__class__ = type("Tap" + cls.__name__, (cls,), {"__call__": __call__})
        swapped.append((m, cls))
    return lambda: [setattr(m, "__class__", c) for m, c in swapped]


# ---------------------------------------------------------------------------------------------- DAC

def dac_model(ckpt: Path, sample_rate: int = 24000):
    """The protocol's checkpoint is descript-audio-codec's state dict; mlx-audio's DAC.from_pretrained reads its own
    layout (config.json + model.safetensors): convert (keys: nn.Sequential children sit under `.layers`; conv
    weights (out, in, k) -> (out, k, in); transposed conv (in, out, k) -> (out, k, in), its weight_g (in,1,1) ->
    (1,1,in); Snake alpha (1, C, 1) -> (1, 1, C)) into a temporary folder and load it from there."""
    from mlx_audio.codec.models.descript import dac as mdac

    sd = load_file(str(ckpt))
    w = {}
    for k, v in sd.items():
        key = re.sub(r"\.(block|model)\.(\d+)", r".\1.layers.\2", "." + k)[1:]
        if re.fullmatch(r"decoder\.model\.\d+\.block\.1\.weight_[gv]", k):
            v = v.transpose(1, 2, 0) if k.endswith("_v") else v.reshape(1, 1, -1)
        elif k.endswith("weight_v") or k.endswith("alpha"):
            v = v.transpose(0, 2, 1)
        w[key] = np.ascontiguousarray(v)
    n_q = len({k.split(".")[2] for k in sd if k.startswith("quantizer.quantizers.")})
    config = {"encoder_dim": 64, "encoder_rates": [2, 4, 5, 8], "latent_dim": 1024, "decoder_dim": 1536,
              "decoder_rates": [8, 5, 4, 2], "n_codebooks": n_q, "codebook_size": 1024, "codebook_dim": 8,
              "sample_rate": sample_rate}
    tmp = Path(tempfile.mkdtemp(prefix="mlx-audio-dac-"))
    save_file(w, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config))
    saved, mdac.fetch_from_hub = mdac.fetch_from_hub, (lambda repo: Path(repo))  # a local folder, not the hub
    try:
        return mdac.DAC.from_pretrained(str(tmp))
    finally:
        mdac.fetch_from_hub = saved


def dac_names(tensors):
    """Official name -> (mlx-audio path, its output layout)."""
    out = {}
    for name in tensors:
        path = re.sub(r"\.(block|model)\.(\d+)", r".\1.layers.\2", "." + name)[1:]
        ncl = re.fullmatch(r"quantizer(\.quantizers\.\d+)?", name) is not None  # VQ modules keep (B, D, T)
        out[name] = (path, "ncl" if ncl else "nlc")
    return out


def dac_run(model, x):
    import mlx.core as mx

    z, codes = model.encode(mx.array(x["audio"])[:, None, :])[:2]
    return {"codes": codes, "audio": model.decode(z)[:, :, 0]}


# ----------------------------------------------------------------------------------------------- LMs

def lm_model(ckpt: Path, kind: str):
    """mlx-audio's TTS models wrap its lm/models: OuteTTS's (llama) via tts.utils.load_model with a local tokenizer
    named in config.json (its constructor loads one), Spark's (qwen2) from its ModelConfig + sanitize."""
    from mlx_audio.utils import load_weights

    config = json.loads((ckpt / "config.json").read_text())
    if kind == "qwen2":
        from mlx_audio.tts.models.spark import spark

        model = spark.Model(spark.ModelConfig.from_dict(config))
        model.load_weights(list(model.sanitize(load_weights(ckpt)).items()), strict=True)
        return model
    from mlx_audio.tts.models.outetts import outetts

    tok = Path(tempfile.mkdtemp(prefix="tok-"))
    _byte_tokenizer(tok)
    model = outetts.Model(outetts.ModelConfig.from_dict(dict(config, tokenizer_name=str(tok))))
    model.load_weights(list(model.sanitize(load_weights(ckpt)).items()), strict=True)
    return model


def _byte_tokenizer(folder: Path):
    """A minimal byte-level tokenizer folder (the OuteTTS wrapper loads one at construction; the dump never uses
    it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {chr(i) if 33 <= i < 127 else f"<0x{i:02X}>": i for i in range(256)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<0x00>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))


def lm_run(greedy: bool):
    def run(model, x):
        import mlx.core as mx
        from mlx_audio.lm.generate import generate_step
        from mlx_audio.lm.models.cache import make_prompt_cache

        lm = model.model
        ids = mx.array(x["ids"].astype(np.int32))
        logits = lm(ids)
        cache = make_prompt_cache(lm)
        half = ids.shape[1] // 2
        steps = [lm(ids[:, :half], cache=cache)] + [lm(ids[:, t:t + 1], cache=cache)
                                                     for t in range(half, ids.shape[1])]
        out = {"logits": logits, "logits_tf": mx.concatenate(steps, axis=1)}
        if greedy:
            out["greedy"] = np.array([t for t, _ in generate_step(mx.array(x["ids"][0, :12].astype(np.int32)), lm,
                                                                 max_tokens=64)], np.int64)
        return out

    return run


def lm_names(tensors):
    return {n: ("model." + n, "nlc") for n in tensors}  # the TTS wrapper's `model` holds the HF-named tree


# ----------------------------------------------------------------------------------------- BiCodec

def bicodec_model(ckpt: Path):
    """BiCodec.load_from_checkpoint reads the official folder; its strict load refuses the two torchaudio mel
    buffers of the official state dict (it computes the mel itself): drop them into a temporary folder."""
    from mlx_audio.tts.models.spark.bicodec import BiCodec

    tmp = Path(tempfile.mkdtemp(prefix="bicodec-"))
    (tmp / "config.yaml").write_text((ckpt / "config.yaml").read_text())
    w = load_file(str(ckpt / "model.safetensors"))
    save_file({k: v for k, v in w.items() if not k.startswith("mel_transformer.")}, str(tmp / "model.safetensors"))
    return BiCodec.load_from_checkpoint(tmp).eval()


# ------------------------------------------------------------------------------------ contract components

def outetts_prompt(folder: Path, cases):
    import copy

    from mlx_audio.tts.models.outetts.prompt_processor import PromptProcessor
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    pp = PromptProcessor(tok)
    out = {}
    for c in cases["cases"]:
        speaker = copy.deepcopy(c["speaker"])  # get_completion_prompt appends to the last word in place
        prompt = pp.get_completion_prompt(c["text"], speaker)
        out[f"ids:{c['name']}"] = np.asarray(tok.encode(prompt, add_special_tokens=False), np.int64)
    return out, {}


def distribution(logits, ids, st):
    """The distribution mlx-audio's sampler draws the next id from, one row at a time (its loop is batch 1)."""
    import mlx.core as mx
    from mlx_audio.lm import sample_utils as su

    procs = su.make_logits_processors(None, st["repetition_penalty"], st["repetition_range"])
    rows = []
    for b in range(logits.shape[0]):
        x = mx.array(logits[b:b + 1])
        tokens = mx.array(ids[b].astype(np.int32))
        if procs and len(tokens):
            for proc in procs:
                x = proc(tokens, x)
        logprobs = x - mx.logsumexp(x, keepdims=True)
        if 0 < st["top_p"] < 1.0:
            logprobs = su.apply_top_p(logprobs, st["top_p"])
        if st["min_p"] != 0.0:
            logprobs = su.apply_min_p(logprobs, st["min_p"], 1)
        if st["top_k"] > 0:
            logprobs = su.apply_top_k(logprobs, st["top_k"])
        rows.append(np.array(mx.softmax(logprobs * (1 / st["temperature"]), axis=-1)))
    return np.concatenate(rows, axis=0)


def sampler(folder: Path, cases):
    x = load_file(str(folder / "inputs.safetensors"))
    out = {}
    for s in cases["sets"]:
        try:
            out[f"p:{s['name']}"] = distribution(x[f"logits:{s['name']}"], x[f"ids:{s['name']}"], s["settings"])
        except ValueError as e:
            print(f"[dump_mlx_audio] {folder.name} {s['name']}: mlx-audio refuses the settings: {e}", file=sys.stderr)
    return out, {}


def speaker_profile(folder: Path, cases):
    from mlx_audio.tts.models.outetts.audio_processor import AudioProcessor, Features
    from mlx_audio.tts.models.outetts.dac_interface import DacInterface
    from mlx_audio.tts.models.outetts.prompt_processor import PromptProcessor

    codec = DacInterface.__new__(DacInterface)  # its __init__ loads a hub repo: the same fields, our checkpoint
    codec.model, codec.sr = dac_model((folder / "checkpoint").resolve()), 24000
    proc = AudioProcessor.__new__(AudioProcessor)
    proc.features, proc.audio_codec = Features(), codec
    profiles = {}
    import mlx.core as mx
    import soundfile

    for c in cases["cases"]:
        x, sr = soundfile.read(str(folder / c["audio"]), dtype="float32", always_2d=True)  # (L, channels)
        audio = codec.convert_audio_array(mx.array(x.T), sr).reshape(1, 1, -1)  # as DacInterface.load_audio
        prof = proc.create_speaker_from_dict({"audio": {"bytes": audio}, "text":
                                              PromptProcessor.text_normalizations(c["text"]), "words": c["words"]})
        profiles[c["name"]] = json.loads(json.dumps(prof, default=lambda v: np.array(v).tolist()))
    return {}, {"profiles.json": profiles}


def spark_prompt(folder: Path, cases):
    from types import SimpleNamespace

    import mlx.core as mx
    from mlx_audio.tts.models.spark.spark import Model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    out = {}
    for c in cases["cases"]:
        g, s, n = mx.array(c["global_ids"])[None, None], mx.array(c["semantic_ids"])[None], c["name"]
        holder = SimpleNamespace(_audio_tokenizer=SimpleNamespace(tokenize=lambda _path, g=g, s=s: (g, s)))
        prompts = {"clone": Model.process_prompt(holder, c["text"], Path("ref.wav"), None)[0],
                   "clone-transcript": Model.process_prompt(holder, c["text"], Path("ref.wav"), c["prompt_text"])[0],
                   "create": Model.process_prompt_control(holder, c["gender"], c["pitch"], c["speed"], c["text"])}
        for mode, prompt in prompts.items():
            out[f"ids:{n}:{mode}"] = np.asarray(tok.encode(prompt, add_special_tokens=False), np.int64)
    return out, {}


CONTRACTS = {"outetts-prompt": outetts_prompt, "outetts-sampler": sampler, "speaker-profile": speaker_profile,
             "spark-prompt": spark_prompt, "spark-sampler": sampler}


# ---------------------------------------------------------------------------------------------- main

COMPONENTS = {
    "dac": (lambda c: dac_model(c), dac_names, dac_run),
    "llama": (lambda c: lm_model(c, "llama"), lm_names, lm_run(False)),
    "qwen2-0.5b": (lambda c: lm_model(c, "qwen2"), lm_names, lm_run(True)),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("components", nargs="*")
    p.add_argument("--mlx-audio", default=os.environ.get("VOICEPORT_PORT_DIR_MLX_AUDIO"))
    a = p.parse_args(argv)
    if a.mlx_audio:
        sys.path.append(a.mlx_audio)
    comps = a.components or sorted(d.name for d in a.inputs.iterdir() if (d / "component.json").exists())
    done = []
    for comp in comps:
        folder = a.inputs / comp
        info = json.loads((folder / "component.json").read_text(encoding="utf-8"))
        if info["protocol"] not in READS:
            raise SystemExit(f"{folder}: protocol {info['protocol']!r}, this producer reads {READS}")
        if comp in CONTRACTS:
            try:
                tensors, files = CONTRACTS[comp](folder, json.loads((folder / "inputs.json").read_text(
                    encoding="utf-8")))
            except Exception as e:  # noqa: BLE001 -- mlx-audio cannot produce it: not produced, said why
                print(f"[dump_mlx_audio] {comp}: not produced: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            (a.out / comp).mkdir(parents=True, exist_ok=True)
            if tensors:
                save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                          str(a.out / comp / "dump.safetensors"))
            for fname, obj in files.items():
                (a.out / comp / fname).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n",
                                                  encoding="utf-8")
            done.append(comp)
            print(f"[dump_mlx_audio] {comp}: {len(tensors)} tensors" + (f", {', '.join(files)}" if files else ""))
            continue
        if comp not in COMPONENTS:  # left out of dump.json: the checker reports it as not produced
            print(f"[dump_mlx_audio] {comp}: no producer", file=sys.stderr)
            continue
        load, names, run = COMPONENTS[comp]
        model = load((folder / "checkpoint").resolve())
        layers = [n for n, t in info["tensors"].items() if t["kind"] == "layer"]
        record = {}
        undo = tap(model, names(layers), record)
        try:
            outs = run(model, load_file(str(folder / "inputs.safetensors")))
        finally:
            undo()
        for k, v in outs.items():
            record[f"output:{k}"] = np.array(v)
        (a.out / comp).mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in record.items()}, str(a.out / comp / "dump.safetensors"))
        done.append(comp)
        print(f"[dump_mlx_audio] {comp}: {len(record)} tensors")
    (a.out / "dump.json").write_text(json.dumps({"protocol": PROTOCOL, "producer": "mlx-audio 0.6.2 "
                                                 "(tools/dump_mlx_audio.py)", "components": done}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
