"""Training an SAE on the activation cache (with dead-feature resampling) and measuring it: L0,
variance explained, and the next-token loss when its reconstruction is spliced into the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue.interp.sae import SAE, SAEConfig

TrainActivation = Literal["topk", "relu"]


@dataclass
class TrainConfig:
    d_sae: int = 2048
    activation: TrainActivation = "topk"
    """topk, or relu (ReLU + L1)"""
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
    return {
        "l0": float((f > 0).float().sum(-1).mean()),
        "fve": float(fve),
        "dead_frac": float(((f > 0).sum(0) == 0).float().mean()),
    }


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
