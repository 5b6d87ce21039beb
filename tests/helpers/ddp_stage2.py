"""Run under torchrun: the replay stage 2 on this rank, then dump the rank's weights and writes.

    torchrun --nproc-per-node 2 ... tests/helpers/ddp_stage2.py STORE OUT_DIR KEY=VALUE...
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401 - toy encoders, in case a store needs them

import cineneuron.train.stage2 as s2  # noqa: E402
import cineneuron.train.distributed as dist_mod  # noqa: E402
from cineneuron.config import load_config  # noqa: E402
from cineneuron.store import Store  # noqa: E402


def main() -> None:
    import torch
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    store, out = sys.argv[1], Path(sys.argv[2])
    over = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    rank = dist_mod.from_env()
    torch.set_num_threads(1)
    seen, saves = {}, []
    wrap = s2._objective
    s2._objective = lambda obj, r: (seen.setdefault("obj", obj), seen.setdefault("w", wrap(obj, r)))[1]
    import cineneuron.brain.model as bm

    real_save = bm.save_checkpoint
    bm.save_checkpoint = lambda *a, **k: (saves.append(1), real_save(*a, **k))[1]
    s2.train_stage2(Store.open(store), load_config(None, {"store.uri": store, **over}), "1")
    obj = seen["obj"]
    weights = {f"model.{k}": v for k, v in obj.model.state_dict().items()}
    weights.update({f"router.{k}": v for k, v in obj.router.state_dict().items()})
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(out / f"rank{rank.rank}.safetensors"))
    info = {"saves": len(saves), "world": rank.world, "ddp": isinstance(seen["w"][0], DistributedDataParallel)}
    (out / f"rank{rank.rank}.json").write_text(json.dumps(info))
    dist_mod.shutdown()


if __name__ == "__main__":
    main()
