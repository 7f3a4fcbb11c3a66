"""Sparse autoencoders: one type for ReLU, JumpReLU and TopK; SAELens folders; training on the
activation cache; metrics (L0, variance explained, next-token loss when spliced in)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechvalue.errors import MechValueError
from mechvalue.io import atomic_dir


@dataclass
class SAEConfig:
    d_in: int
    d_sae: int
    activation: str = "relu"  # relu | jumprelu | topk
    k: int = 32  # topk only
    hook_name: str = ""
    apply_b_dec_to_input: bool = True
    input_scale: float = 1.0  # activations are multiplied by this before encoding


class SAE(nn.Module):
    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if cfg.activation not in ("relu", "jumprelu", "topk"):
            raise MechValueError(f"unknown SAE activation {cfg.activation!r}")
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae), requires_grad=False)
        nn.init.kaiming_uniform_(self.W_dec)
        with torch.no_grad():
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)
            self.W_enc.copy_(self.W_dec.T)

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        x = x * self.cfg.input_scale
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        pre = self.pre_acts(x)
        if self.cfg.activation == "jumprelu":
            return torch.where(pre > self.threshold, pre, torch.zeros_like(pre))
        if self.cfg.activation == "topk":
            vals, idx = pre.relu().topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, idx, vals)
        return pre.relu()

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        return (f @ self.W_dec + self.b_dec) / self.cfg.input_scale

    def forward(self, x):
        return self.decode(self.encode(x))

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            save_file(
                {k: v.detach().contiguous() for k, v in self.state_dict().items()}, tmp / "sae.safetensors"
            )
            (tmp / "mechvalue_sae.json").write_text(json.dumps(asdict(self.cfg), indent=1))


def load_sae(path: str | Path, device: str = "cpu") -> SAE:
    """Our own format (mechvalue_sae.json), a SAELens folder (cfg.json + safetensors), or, on a
    machine that can reach the hub, a SAELens pretrained release as "release:sae_id"."""
    if not Path(path).exists() and ":" in str(path):
        release, sae_id = str(path).split(":", 1)
        from sae_lens import SAE as LensSAE

        try:
            return from_saelens(LensSAE.from_pretrained(release, sae_id, device=device))
        except Exception as e:  # offline, or an unknown release / id
            raise MechValueError(
                f"SAELens release {release!r} / {sae_id!r} not loadable here ({str(e).splitlines()[0][:160]})"
            ) from None
    path = Path(path)
    if (path / "mechvalue_sae.json").exists():
        from safetensors.torch import load_file

        sae = SAE(SAEConfig(**json.loads((path / "mechvalue_sae.json").read_text())))
        sae.load_state_dict(load_file(path / "sae.safetensors"))
        return sae.to(device)
    if (path / "cfg.json").exists():
        from sae_lens import SAE as LensSAE

        return from_saelens(LensSAE.load_from_disk(str(path), device=device))
    raise MechValueError(f"{path}: no mechvalue_sae.json or SAELens cfg.json")


def from_saelens(lens) -> SAE:
    """Convert a loaded SAELens SAE (standard, jumprelu or topk) to ours."""
    arch = lens.cfg.architecture()
    act = {"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}.get(arch)
    if act is None:
        raise MechValueError(f"SAELens architecture {arch!r} is not supported")
    cfg = SAEConfig(lens.cfg.d_in, lens.cfg.d_sae, act, getattr(lens.cfg, "k", 32),
                    lens.cfg.metadata.hook_name or "", lens.cfg.apply_b_dec_to_input)  # fmt: skip
    sae = SAE(cfg)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(sae, name).copy_(getattr(lens, name).float())
        if act == "jumprelu":
            sae.threshold.copy_(lens.threshold.float())
    return sae


@dataclass
class TrainConfig:
    d_sae: int = 2048
    activation: str = "topk"  # topk | relu (ReLU + L1)
    k: int = 32
    l1: float = 5.0
    lr: float = 4e-4
    batch_size: int = 512
    epochs: int = 4
    dead_after: int = 400  # steps without firing before a feature is resampled
    seed: int = 0


def train_sae(
    store, hook: str, cfg: TrainConfig, device: str = "cpu", progress: bool = True
) -> tuple[SAE, dict]:
    """Train on an `ActivationStore`'s rows for `hook`, streaming shuffled minibatches.

    Inputs are scaled so their mean squared norm is d_in (SAELens's convention). Dead
    features are resampled: their encoder/decoder rows are reset towards the inputs the SAE
    currently reconstructs worst, which keeps the dictionary in use.
    """
    torch.manual_seed(cfg.seed)
    sample = next(store.minibatches(hook, 4096, seed=cfg.seed))
    d_in = sample.shape[1]
    scale = float((d_in / sample.pow(2).sum(-1).mean()).sqrt())
    sae = SAE(SAEConfig(d_in, cfg.d_sae, cfg.activation, cfg.k, hook, True, scale)).to(device)
    with torch.no_grad():
        sae.b_dec.copy_((sample * scale).median(0).values.to(device))
    opt = torch.optim.Adam([p for p in sae.parameters() if p.requires_grad], lr=cfg.lr)
    since_fired = torch.zeros(cfg.d_sae, device=device)
    step, history = 0, []
    for epoch in range(cfg.epochs):
        batches = store.minibatches(hook, cfg.batch_size, seed=cfg.seed + epoch, device=device)
        for x in tqdm(batches, desc=f"sae epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False):
            f = sae.encode(x)
            recon = sae.decode(f)
            mse = (recon - x).pow(2).sum(-1).mean() * scale**2 / d_in
            loss = mse
            if cfg.activation == "relu":
                loss = loss + cfg.l1 * (f * sae.W_dec.norm(dim=1)).sum(-1).mean() / d_in
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
                since_fired += 1
                since_fired[(f > 0).any(0)] = 0
                dead = since_fired > cfg.dead_after
                if dead.any():
                    _resample(sae, x, recon, dead)
                    since_fired[dead] = 0
            step += 1
            history.append(mse.item())
    return sae.eval(), {"steps": step, "final_mse": sum(history[-20:]) / max(1, len(history[-20:]))}


def _resample(sae: SAE, x, recon, dead) -> None:
    err = (x - recon).pow(2).sum(-1)
    idx = torch.multinomial(err / err.sum(), int(dead.sum()), replacement=True)
    v = (x[idx] * sae.cfg.input_scale) - sae.b_dec
    v = v / v.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = v
    sae.W_enc.data[:, dead] = v.T * 0.2
    sae.b_enc.data[dead] = 0.0


@torch.no_grad()
def sae_metrics(sae: SAE, x: Float[Tensor, "n d_in"]) -> dict:
    """L0 (mean active features per token), fraction of variance explained, dead fraction."""
    f = sae.encode(x)
    r = sae.decode(f)
    fve = 1 - (x - r).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    return {"l0": float((f > 0).float().sum(-1).mean()), "fve": float(fve),
            "dead_frac": float(((f > 0).sum(0) == 0).float().mean())}  # fmt: skip


@torch.no_grad()
def spliced_loss(model, sae: SAE, prompts: list[list[int]]) -> dict:
    """Next-token loss on held-out prompts, clean vs with the SAE's output replacing the hook
    (at every position but the first, the attention sink the SAE is not trained on)."""

    def splice(act, hook):
        return torch.cat([act[:, :1], sae.decode(sae.encode(act[:, 1:]))], 1)

    clean, spliced = [], []
    for p in prompts:
        t = torch.tensor([p], device=model.cfg.device)
        clean.append(float(model(t, return_type="loss")))
        spliced.append(
            float(model.run_with_hooks(t, return_type="loss", fwd_hooks=[(sae.cfg.hook_name, splice)]))
        )
    c, s = sum(clean) / len(clean), sum(spliced) / len(spliced)
    return {"loss_clean": c, "loss_spliced": s, "delta_loss": s - c}
