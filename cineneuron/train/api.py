"""Stage 2 for either decoder behind one call (what `cn train --stage 2` runs)."""

from __future__ import annotations

from cineneuron.config import RootConfig


def train_stage2(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, progress=None) -> dict:
    """The router (replay decoder) or router + fusion + LoRA (`decode.decoder = "wan"`), from the
    subject's stage-1 run. Returns {"run_dir", "seconds", "steps", "last"[, "latents", "notice"]}."""
    if cfg.decode.decoder == "wan":
        from cineneuron.train.stage2_wan import train_stage2_wan

        return train_stage2_wan(store, cfg, subject, dataset=dataset, progress=progress)
    from cineneuron.train.stage2 import train_stage2 as replay

    r = replay(store, cfg, subject, dataset=dataset, progress=progress)
    return {"run_dir": r.run_dir, "seconds": round(r.seconds, 1), "steps": r.steps, "last": r.last}
