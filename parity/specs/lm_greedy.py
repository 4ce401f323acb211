"""Contract: 64 greedy tokens of impl.llama (its KV cache, `generate_greedy`) equal transformers' `generate`
(do_sample=False, its own cache), on the seeded LM: the real 1B architecture in the full report, the small config
(same structure) with --quick and in fixtures."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.contracts import Contract, Section, ids_case, section

STEPS = 64
PROMPTS = (100, 101)  # seeds of the 12-id prompts


def _config(quick: bool) -> str:
    return "small" if quick else "1b"


def _prompt(seed: int, vocab: int):
    return np.random.default_rng(seed).integers(0, vocab, (12,)).tolist()


def record(quick: bool) -> Dict[str, Any]:
    from parity.specs.llama import checkpoint, config_dict
    from reference import llama as ref

    cfg = _config(quick)
    model = ref.load(checkpoint(cfg, 0), "float32")
    vocab = config_dict(cfg)["vocab_size"]
    return {"config": cfg, "runs": [{"seed": s, "ids": np.asarray(ref.generate_greedy(model, _prompt(s, vocab), STEPS))}
                                    for s in PROMPTS]}


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl import llama
    from impl.outetts.generate import generate_greedy
    from parity.specs.llama import checkpoint, config_dict

    cfg = rec["config"]
    model = llama.load(checkpoint(cfg, 0))
    vocab = config_dict(cfg)["vocab_size"]
    cases, notes = [], []
    for r in rec["runs"]:
        want = [int(t) for t in r["ids"]]
        cases.append(ids_case(f"{cfg} prompt seed {r['seed']}: {STEPS} greedy ids",
                              generate_greedy(model, _prompt(r["seed"], vocab), STEPS), want))
        notes.append(f"prompt seed {r['seed']}: the official decode has {len(set(want))} distinct ids of {STEPS}")
    return section(f"LM greedy-{STEPS} ({cfg})", f"impl.llama greedy decode through its KV cache vs transformers "
                   f"generate(do_sample=False), {cfg} seeded LM, {STEPS} steps", cases,
                   "exact: token ids", "differing ids", notes)


CONTRACT = Contract("lm-greedy", record, check)
