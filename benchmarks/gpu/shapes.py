"""Real shapes, random weights, nothing downloaded: the models and SAEs the CUDA benchmarks time.

Models are built from `transformers` configs with the published sizes (Gemma-2-2B, Gemma-3-270M,
Gemma-3-1B, and Llama-3-8B's layer shape with a few layers), initialised on the device in the
benchmark's dtype, and booted as a TransformerLens `TransformerBridge` (what `mechvalue.load_model`
returns) with a small word-level tokenizer written to a temporary folder: the benchmarks feed
token ids, so only the special tokens matter. SAEs are JumpReLU with Gemma Scope's widths.

`smoke=True` gives the same code tiny shapes (a 64-wide model, 3 layers), so a CPU dry run
executes every line the GPU run will.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch

from mechvalue.interp.sae import SAE, SAEConfig

# (d_in, d_sae, what it stands for): the JumpReLU SAEs of the fused-edit benchmark
SAE_SHAPES = [
    (2304, 16384, "Gemma Scope, Gemma-2-2B residual"),
    (640, 16384, "Gemma Scope 2, Gemma-3-270M"),
    (4096, 65536, "Llama-3-8B width, 64k features"),
    (2560, 262144, "Gemma Scope 2, Gemma-3-4B, 262k features"),
]
SMOKE_SAE = {2304: (64, 96), 640: (32, 64), 4096: (96, 64), 2560: (80, 128)}  # interpreter-sized


@dataclass(frozen=True)
class ModelShape:
    """A published model's shape: its config class, the sizes that differ from the defaults, the
    layer whose residual stream is steered and the SAE width used there."""

    name: str
    config: str  # a transformers config class
    arch: str  # the HF class TransformerLens knows it by
    sizes: dict = field(default_factory=dict)
    layer: int = 0
    d_sae: int = 16384


MODELS = {
    m.name: m
    for m in [
        ModelShape("gemma-2-2b", "Gemma2Config", "Gemma2ForCausalLM", {}, 12, 16384),  # the defaults
        ModelShape(
            "gemma-3-270m",
            "Gemma3TextConfig",
            "Gemma3ForCausalLM",
            dict(
                vocab_size=262144,
                hidden_size=640,
                intermediate_size=2048,
                num_hidden_layers=18,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=256,
                sliding_window=512,
            ),
            9,
            16384,
        ),
        ModelShape(
            "gemma-3-1b",
            "Gemma3TextConfig",
            "Gemma3ForCausalLM",
            dict(
                vocab_size=262144,
                hidden_size=1152,
                intermediate_size=6912,
                num_hidden_layers=26,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=256,
                sliding_window=512,
            ),
            13,
            16384,
        ),
        ModelShape(
            "llama-3-8b-4-layers",
            "LlamaConfig",
            "LlamaForCausalLM",
            dict(
                vocab_size=128256,
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=4,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                max_position_embeddings=8192,
                rope_theta=500000.0,
                tie_word_embeddings=False,
            ),
            2,
            65536,
        ),
    ]
}
SMOKE_SIZES = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=16,
    sliding_window=8,
)
PAD, EOS, BOS = 0, 1, 2


def config(shape: ModelShape, smoke: bool = False):
    """The transformers config of `shape` (tiny sizes under `smoke`)."""
    import transformers

    sizes = {**shape.sizes, **SMOKE_SIZES} if smoke else dict(shape.sizes)
    if shape.config == "LlamaConfig":
        sizes.pop("sliding_window", None)
    cfg = getattr(transformers, shape.config)(**sizes, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS)
    cfg.architectures = [shape.arch]  # TransformerLens picks its adapter by this
    return cfg


def steer_layer(shape: ModelShape, smoke: bool = False) -> int:
    return 1 if smoke else shape.layer


def hf_model(shape: ModelShape, device: str, dtype: torch.dtype, smoke: bool = False):
    """A random-weight HF causal LM of `shape`, built directly on `device` in `dtype`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config(shape, smoke), dtype=dtype)
    return model.eval()


@cache
def tokenizer_folder() -> Path:
    """A 256-token word-level tokenizer (pad 0, eos 1, bos 2), saved once per process."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD, "<eos>": EOS, "<bos>": BOS, "<unk>": 3} | {f"t{i}": i for i in range(4, 256)}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
    folder = Path(tempfile.mkdtemp(prefix="mechvalue-tok-"))
    tok.save_pretrained(folder)
    return folder


def bridge(model, shape: ModelShape, device: str, dtype: torch.dtype):
    """`model` booted as a TransformerBridge, as `mechvalue.load_model` would boot its folder."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_folder())
    name = f"random-weights-{shape.name}"  # not a hub name: TransformerLens would map an alias to one
    b = TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=tok, device=device, dtype=dtype)
    return b.eval()


def jumprelu_sae(d_in: int, d_sae: int, device: str, hook_name: str = "") -> SAE:
    """A JumpReLU SAE made on `device`: unit decoder rows, encoder their transpose, threshold 0.5
    (about a third of the features fire on unit-variance inputs), float32 parameters."""
    torch.manual_seed(0)
    with torch.device(device):
        sae = SAE(SAEConfig(d_in, d_sae, "jumprelu", hook_name=hook_name))
    with torch.no_grad():
        sae.b_enc.fill_(-0.1)
        sae.threshold.fill_(0.5)
    return sae
