"""Run under torchrun: stage 1 on this rank, then dump the rank's weights and its checkpoint writes.

    torchrun --nproc-per-node 2 ... tests/helpers/ddp_stage1.py STORE OUT_DIR KEY=VALUE...
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401 - toy encoders, in case a store needs them

import cineneuron.brain.model as bm  # noqa: E402
import cineneuron.train.distributed as dist_mod  # noqa: E402
from cineneuron.config import load_config  # noqa: E402
from cineneuron.store import Store  # noqa: E402
from cineneuron.train.stage1 import train_stage1  # noqa: E402


def main() -> None:
    import torch
    from safetensors.torch import save_file

    store, out = sys.argv[1], Path(sys.argv[2])
    over = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    rank = dist_mod.from_env()
    torch.set_num_threads(1)
    seen, saves = {}, []
    wrap, save = dist_mod.wrap_trainer, bm.save_checkpoint
    dist_mod.wrap_trainer = lambda tr, r, *a: (seen.setdefault("trainer", tr), wrap(tr, r, *a))
    bm.save_checkpoint = lambda *a, **k: (saves.append(1), save(*a, **k))[1]
    train_stage1(Store.open(store), load_config(None, {"store.uri": store, **over}), "1", with_ridge=False)
    tr = seen["trainer"]
    from torch.nn.parallel import DistributedDataParallel

    seen_ddp = isinstance(tr.objective, DistributedDataParallel)
    save_file({k: v.detach().cpu().contiguous() for k, v in tr.model.state_dict().items()},
              str(out / f"rank{rank.rank}.safetensors"))
    (out / f"rank{rank.rank}.json").write_text(json.dumps({"saves": len(saves), "step": tr.step, "world": rank.world, "ddp": seen_ddp}))
    dist_mod.shutdown()


if __name__ == "__main__":
    main()
