"""GPU set-up for MLX on CUDA: `use_kernel_cache()` keeps MLX's run-time compiled kernels across processes;
`KernelWarmup` compiles a first run's kernels in parallel processes (VOICEPORT_KERNEL_WARMUP=0: off).

Nothing here runs on import: the CLI calls `use_kernel_cache()` before the first GPU operation; a library user
calls it the same way, or leaves MLX's default.

Why: mlx-cuda compiles some kernels at run time with NVRTC (gathers, scatters, `mx.compile`d fusions: seconds
each) and stores the result in `$MLX_PTX_CACHE_DIR`, by default
`<tmp>/mlx/<version>/ptx`: a reboot or a cleaned /tmp makes the next run pay every compilation again. Here the
default becomes `$VOICEPORT_CACHE/mlx-kernels/<mlx version>` (default ~/.cache/voiceport/...), so a machine
compiles each kernel once. MLX reads the variable at its first compilation; setting it later has no effect.
Metal (Apple Silicon) ships precompiled kernels and keeps its own cache: nothing to do there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Union

from impl._cache import cache_root

ENV = "MLX_PTX_CACHE_DIR"


def _cuda(mx) -> bool:
    try:
        return bool(hasattr(mx, "cuda") and mx.cuda.is_available())
    except RuntimeError:
        return False


def use_kernel_cache(path: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """Point MLX's CUDA kernel cache at `path` (None: $VOICEPORT_CACHE/mlx-kernels/<mlx version>), unless the
    user set MLX_PTX_CACHE_DIR. Returns the folder in effect, or None where nothing was set (no CUDA, or the
    folder cannot be created: MLX then keeps its default). Idempotent; never raises."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    try:
        import mlx.core as mx

        if not _cuda(mx):
            return None
        folder = Path(path) if path is not None else cache_root() / "mlx-kernels" / mx.__version__
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, AttributeError, RuntimeError):
        return None
    os.environ[ENV] = str(folder)
    return folder


# ------------------------------------------------------------------------------------------------- warm-up

# The run-time kernels a first `voiceport tts` compiles on mlx-cuda 0.32.4 (`python -m bench.gpu_loop --part jit`
# lists them in order, timed; stored runs: bench/gpu_runs/): seconds of NVRTC each, one at a time within a process
# (get_jit_module holds one lock around every compilation: mlx/backend/cuda/jit_module.cpp). Child processes compile
# the same kernels in parallel into the shared cache folder; the main process then reads them from there. A kernel a
# child misses (another MLX version names it differently) is only compiled by the main process as before: the warm-up
# can make a first run faster, never different. Each entry builds one kernel from the smallest inputs of the same
# dtypes and layout.
def _kernel_builders(dtype: str, quantize: Optional[str], model: str = "outetts"):
    import mlx.core as mx

    from impl import ops

    dt = getattr(mx, dtype)
    ids = mx.array([[1, 2]], mx.uint32)  # token ids stay uint32 from the prompt on (impl.outetts.generate)
    row = mx.arange(8, dtype=mx.float32)[None]
    builders = {
        "embedding": lambda: mx.zeros((8, 4), dt)[ids],  # impl.llama: embed_tokens(ids)
        "swiglu": lambda: ops.swiglu(mx.ones((1, 1, 8), dt), mx.ones((1, 1, 8), dt)),
        # impl.outetts.sampler: repetition penalty (take/put along the vocabulary), top-k ids, top-p mask
        "sampler_take": lambda: mx.take_along_axis(row, ids, axis=-1),
        "sampler_put": lambda: mx.put_along_axis(row, ids, mx.zeros((1, 2)), axis=-1),
        "sampler_put_mask": lambda: mx.put_along_axis(mx.zeros((1, 8), mx.bool_), ids, mx.ones((1, 2), mx.bool_),
                                                      axis=-1),
        "sampler_take_ids": lambda: mx.take_along_axis(mx.arange(8, dtype=mx.uint32)[None], ids, axis=-1),
        # impl.dac: codebook rows of the int32 codes, Snake (fp32)
        "dac_codebook": lambda: mx.zeros((8, 4))[mx.array([[1, 2]], mx.int32)],
        "dac_snake": lambda: ops.snake(mx.ones((1, 4, 3)), mx.ones((3,))),
    }
    if model == "spark":
        import mlx.nn as nn

        from impl.spark import mel, vocos

        # Spark-TTS' BiCodec + wav2vec2 (`python -m bench.gpu_loop --part jit --model spark`): the mel frames' gather
        # (two index arrays), ECAPA-TDNN's ReLU and GELU (both mx.compile'd in mlx.nn), the VQ's codebook rows of
        # argmax's uint32 ids; its wave generator's Snake and the decoder's int32 codebook rows are DAC's (above).
        # The ConvNeXt blocks' depthwise conv (MLX's grouped conv1d) adds no run-time kernel there (jit run at 661699d).
        builders.update({
            "spark_mel_frames": lambda: mel.MelSpectrogram(n_fft=64, win_length=32, hop_length=16, num_mels=8)(
                mx.ones((1, 128))),
            "spark_relu": lambda: nn.relu(mx.ones((1, 4, 3))),
            "spark_gelu": lambda: vocos.gelu(mx.ones((1, 4, 3))),
            "spark_vq_rows": lambda: mx.zeros((8, 4))[mx.argmax(mx.ones((1, 2, 8)), axis=-1)],
        })
    if quantize:
        bits = {"q8": 8, "q4": 4}[quantize]

        def qmm():  # the prompt's prefill: a quantized matrix product over many rows (decode takes another kernel)
            w, scales, biases = mx.quantize(mx.ones((128, 128), dt), group_size=64, bits=bits)
            return mx.quantized_matmul(mx.ones((512, 128), dt), w, scales, biases, transpose=True, group_size=64,
                                       bits=bits)

        builders.update({"qmm": qmm, "embedding_packed": lambda: mx.zeros((8, 4), mx.uint32)[ids]})
    return builders


MODELS = ("outetts", "spark")  # whose first run's kernels: the LM's and the codec's
_STARTED: dict = {}  # marker path -> the child processes started for it in this process


class KernelWarmup:
    """Compile the first run's kernels in parallel child processes (mlx-cuda only; elsewhere nothing happens).

    `start()` launches them (call it before loading weights, which then overlap the compilations); `wait()` joins
    them and records the set as done in the cache folder, so later processes skip it. A second `start()` for the
    same set in one process joins the children of the first. Never raises."""

    def __init__(self, dtype: str = "bfloat16", quantize: Optional[str] = None, timeout: float = 180.0,
                 model: str = "outetts"):
        if model not in MODELS:
            raise ValueError(f"KernelWarmup: model {model!r} is not one of {', '.join(MODELS)}")
        self.dtype, self.quantize, self.timeout, self.model = dtype, quantize, timeout, model
        self.procs: List = []
        self.marker: Optional[Path] = None

    def start(self) -> "KernelWarmup":
        import subprocess
        import sys

        import mlx.core as mx

        if os.environ.get("VOICEPORT_KERNEL_WARMUP", "1") == "0" or not _cuda(mx):
            return self  # Metal and the CPU ship precompiled kernels
        folder = use_kernel_cache()
        if folder is None:
            return self

        self.marker = folder / f"voiceport-warm-{mx.__version__}-{self.model}-{self.dtype}-{self.quantize or 'none'}"
        if self.marker.exists():
            return self
        if str(self.marker) in _STARTED:  # started earlier in this process (the CLI starts it first): join those
            self.procs = _STARTED[str(self.marker)]
            return self
        self.procs = _STARTED.setdefault(str(self.marker), [])
        names = list(_kernel_builders(self.dtype, self.quantize, self.model))
        for name in names:
            try:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "impl.accel.cuda", name, self.dtype, self.quantize or "none", self.model],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)))
            except OSError:
                break
        return self

    def wait(self) -> int:
        """Join the children; the number that finished without error."""
        import time

        ok, deadline = 0, time.monotonic() + self.timeout
        for p in self.procs:
            try:
                ok += p.wait(timeout=max(0.0, deadline - time.monotonic())) == 0
            except Exception:  # a child past the deadline: the main process compiles what it lacks
                p.kill()
        if self.procs and ok == len(self.procs) and self.marker is not None and not self.marker.exists():
            try:
                self.marker.write_text("\n".join(_kernel_builders(self.dtype, self.quantize, self.model)) + "\n")
            except OSError:
                pass
        self.procs = []
        return ok


def _warm_one(name: str, dtype: str, quantize: str, model: str = "outetts") -> None:
    import mlx.core as mx

    mx.eval(_kernel_builders(dtype, None if quantize == "none" else quantize, model)[name]())


if __name__ == "__main__":  # a KernelWarmup child: python -m impl.accel.cuda NAME DTYPE QUANTIZE [MODEL]
    import sys

    _warm_one(*sys.argv[1:5])
