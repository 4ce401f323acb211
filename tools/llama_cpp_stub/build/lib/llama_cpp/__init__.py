"""Stub of llama-cpp-python for voiceport's reference environment.

`import outetts` imports `llama_cpp` for its GGUF backend, which voiceport never uses. Building the real
package costs ~75 s of C++ per fresh environment, so the bootstrap installs this stub instead; any real use
raises at once.
"""

__version__ = "0.3.9"

_MSG = "llama.cpp backend is not installed in the voiceport environment (stub package, see tools/llama_cpp_stub)"


class Llama:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(_MSG)


def llama_token_is_eog(*args, **kwargs):
    raise RuntimeError(_MSG)
