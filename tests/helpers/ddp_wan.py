"""Run under torchrun: the Wan stage 2 on this rank, then dump the rank's trainable weights (at the
start, right after DDP's broadcast, and at the end), its VAE encodes and its run writes.

    torchrun --nproc-per-node 2 ... tests/helpers/ddp_wan.py STORE OUT_DIR KEY=VALUE...
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401 - toy encoders, in case a store needs them

import cineneuron.train.distributed as dist_mod  # noqa: E402
import cineneuron.train.stage2_wan as ws  # noqa: E402
import cineneuron.train.wan_objective as wo  # noqa: E402
from cineneuron.config import load_config  # noqa: E402
from cineneuron.store import Store  # noqa: E402


def trainable_state(parts) -> dict:
    """Brain Model, router, fusion and LoRA weights of a WanStage2, by prefixed name (CPU copies)."""
    out = {}
    for name, m in (("model", parts.model), ("router", parts.router), ("fusion", parts.fusion)):
        out.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
    out.update({f"lora.{n}": p for n, p in parts.transformer.named_parameters() if "lora_" in n})
    return {k: v.detach().cpu().clone().contiguous() for k, v in out.items()}


def main() -> None:
    import torch
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    store, out = sys.argv[1], Path(sys.argv[2])
    over = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    rank = dist_mod.from_env()
    torch.set_num_threads(1)
    seen, saves, encodes = {}, [], [0]
    real_wrap, real_save, real_encode = wo.wrap, ws.save_run, AutoencoderKLWan.encode

    def wrap(objective, r, device):
        wrapped = real_wrap(objective, r, device)
        seen.update(parts=objective.parts, ddp=isinstance(wrapped[0], DistributedDataParallel))
        save_file(trainable_state(objective.parts), str(out / f"rank{rank.rank}_init.safetensors"))
        return wrapped

    def encode(self, *a, **k):
        encodes[0] += 1
        return real_encode(self, *a, **k)

    wo.wrap = wrap
    ws.save_run = lambda *a, **k: (saves.append(1), real_save(*a, **k))[1]
    AutoencoderKLWan.encode = encode
    summary = ws.train_stage2_wan(Store.open(store), load_config(None, {"store.uri": store, **over}), "1")
    save_file(trainable_state(seen["parts"]), str(out / f"rank{rank.rank}.safetensors"))
    info = {"saves": len(saves), "world": rank.world, "ddp": seen["ddp"], "encodes": encodes[0],
            "steps": summary["steps"], "latents": summary["latents"], "last": summary["last"]}
    (out / f"rank{rank.rank}.json").write_text(json.dumps(info))
    dist_mod.shutdown()


if __name__ == "__main__":
    main()
