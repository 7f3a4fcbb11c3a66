"""The fluency and speed costs of a steering: perplexity of steered generations on fixed neutral
prompts, KL(unsteered || steered) next-token on fixed neutral text, and steered forwards/s.

The neutral material never mentions values, so these costs measure damage, not the effect.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechvalue.analysis.steering.spec import CompareSpec
from mechvalue.analysis.steering.stats import bootstrap_ci
from mechvalue.lm.batching import left_pad
from mechvalue.lm.generation import Edits, greedy_generate
from mechvalue.lm.hooks import installed, per_call
from mechvalue.lm.models import as_bridge, model_device

# Fixed neutral material for the fluency cost: never mentions values.
NEUTRAL_PROMPTS = [
    "Explain how to boil an egg.",
    "Describe the water cycle in a few sentences.",
    "Write a short paragraph about a train journey through the mountains.",
    "What is a prime number? Give an example.",
    "Give three tips for keeping a houseplant alive.",
    "Describe how a bicycle works.",
    "Summarise the rules of chess in a few sentences.",
    "Write a short note about the weather in autumn.",
]
NEUTRAL_TEXT = [
    "The train left the station at seven in the morning. Outside the window, fields of wheat gave way "
    "to low hills, and a river followed the tracks for most of the journey.",
    "To make bread, mix flour, water, salt and yeast into a dough. Knead it for ten minutes, let it "
    "rise for an hour, shape it into a loaf and bake it in a hot oven until the crust is brown.",
    "A prime number has exactly two divisors: one and itself. The first few primes are two, three, "
    "five, seven and eleven, and there are infinitely many of them.",
    "The museum opens at nine and closes at five. Tickets can be bought at the entrance, and the "
    "guided tour of the main hall takes about forty minutes.",
    "Water boils at one hundred degrees Celsius at sea level. At higher altitudes the air pressure "
    "is lower, so water boils at a lower temperature.",
    "The bicycle has two wheels, a frame, pedals and a chain. Turning the pedals moves the chain, "
    "which turns the rear wheel and pushes the bicycle forward.",
]


def perplexity(logits: Float[Tensor, "n vocab"], targets: Int[Tensor, " n"]) -> float:
    """exp(mean negative log-likelihood of `targets` under `logits`)."""
    nll = -torch.log_softmax(logits.double(), -1).gather(-1, targets[:, None].long())[:, 0]
    return float(nll.mean().exp())


def mean_kl(p_logits: Float[Tensor, "n vocab"], q_logits: Float[Tensor, "n vocab"]) -> float:
    """Mean over rows of KL(P || Q) in nats, P = softmax(p_logits), Q = softmax(q_logits)."""
    lp, lq = torch.log_softmax(p_logits.double(), -1), torch.log_softmax(q_logits.double(), -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def _geomean(x: np.ndarray) -> float:
    return np.exp(np.log(x).mean())


def _chat(tok, text: str) -> list[int]:
    if getattr(tok, "chat_template", None):
        s = tok.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return tok.encode(s, add_special_tokens=False)
    return tok.encode(f"Question: {text}\nAnswer:")


@torch.no_grad()
def _logits(model, seqs: list[list[int]], hooks: list) -> Float[Tensor, "batch pos vocab"]:
    """Full next-token logits (left-padded) with positioned `hooks` editing every real token."""
    bridge = as_bridge(model)
    toks, attn = left_pad(seqs, bridge.tokenizer.pad_token_id or 0, model_device(bridge))
    kw = {"attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1).clamp(min=0), "use_cache": False}
    with installed(bridge, per_call(hooks, attn.bool())):
        return bridge(toks, **kw).float().cpu()


def neutral_kl(model, hooks: list, hint: str | None, spec: CompareSpec) -> tuple[np.ndarray, list, list]:
    """KL(unsteered || steered) next-token per neutral text (the first `spec.neutral_texts`), and
    the unsteered and steered token lists; prompting = the hint's tokens before the text."""
    tok = as_bridge(model).tokenizer
    texts = [tok.encode(t, add_special_tokens=False) for t in NEUTRAL_TEXT[: spec.neutral_texts]]
    base = _logits(model, texts, [])
    pre = tok.encode(hint, add_special_tokens=False) if hint else []
    seqs = [pre + t for t in texts]
    steered = _logits(model, seqs, hooks)
    w, ws = base.shape[1], steered.shape[1]
    kls = np.array([mean_kl(base[i, w - len(t) :], steered[i, ws - len(t) :]) for i, t in enumerate(texts)])
    return kls, texts, seqs


def fluency(
    model, hooks: list, hint: str | None, spec: CompareSpec, rng: np.random.Generator, timed: bool = True
) -> dict:
    """Perplexity (under the unsteered model, given the plain prompt) of greedy steered
    generations of the neutral prompts, and mean KL(unsteered || steered) next-token on neutral
    text; prompting = the hint before the prompt / text. If `timed`, also steered forwards/s
    relative to unsteered (median of 3 interleaved timings; else NaN, speed_n 0)."""
    tok = as_bridge(model).tokenizer
    prompts = NEUTRAL_PROMPTS[: spec.neutral_prompts]
    plain = [_chat(tok, p) for p in prompts]
    steer_in = [_chat(tok, hint + p) for p in prompts] if hint else plain
    masks = left_pad(steer_in, 0)[1].bool()
    new = greedy_generate(model, steer_in, spec.gen_tokens, {tok.eos_token_id}, Edits(hooks, masks, True))
    ppl = []
    for p, g in zip(plain, new):
        if not g:
            continue
        lg = _logits(model, [p + g], [])[0, len(p) - 1 : -1]
        ppl.append(perplexity(lg, torch.tensor(g)))
    kls, texts, seqs = neutral_kl(model, hooks, hint, spec)
    times = {"a": [], "b": []}
    for _ in range(3 if timed else 0):  # A, B, A, B, ...: unsteered then steered forward on the same text
        for k, (ss, hk) in (("a", (texts, [])), ("b", (seqs, hooks))):
            t0 = time.perf_counter()
            _logits(model, ss, hk)
            times[k].append(time.perf_counter() - t0)
    ppl = np.array(ppl)
    return {
        "ppl": float(_geomean(ppl)) if len(ppl) else float("nan"),
        "ppl_ci": bootstrap_ci(ppl, rng, spec.n_boot, _geomean),
        "ppl_n": len(ppl),
        "kl": float(kls.mean()),
        "kl_ci": bootstrap_ci(kls, rng, spec.n_boot),
        "kl_n": len(kls),
        "speed": float(np.median(times["a"]) / np.median(times["b"])) if timed else float("nan"),
        "speed_n": 3 if timed else 0,
        "generations": tok.batch_decode(new, skip_special_tokens=True),
    }
