"""The Wan decoder behind the one decoder interface: query results -> fused conditioning -> video.

For each query: T* = the top-1 memory's stored `cond`, the image and action sets = the top-k
memories' `img` and `act` vectors, F = the query's fMRI embedding. `MoMFusion` turns them into

    C = T* + Z_t(T*) + λ · Z_f(Norm(F'))

and C drives Wan2.1 through diffusers, with the store's encoded empty prompt as the negative.
The fusion and the DiT's LoRA come from the subject's stage-2 Wan run (`stage2-wan/`, written by
`cineneuron.train.stage2_wan`); without one, a fresh fusion gives C == T* exactly and the base
DiT renders the retrieved text conditioning.

Settings are checked before anything is loaded. Torch and diffusers are imported lazily, so the
CLI can import this module cheaply.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cineneuron.decode.wan import WanDecoderConfig, check_inputs
from cineneuron.errors import CNError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cineneuron.decode.fusion import FusionConfig, MoMFusion

WAN_RUN = "stage2-wan"  # sibling of the replay stage-2 run: runs/<dataset>-sub<subject>/stage2-wan
FUSION_FILE = "fusion.safetensors"
FUSION_CONFIG = "fusion_config.json"
LORA_DIR = "lora"
WAN_META = "wan.json"  # which generator (toy or folder), text_dim, sizes and LoRA settings a run used
TOY_NOTICE = ("Wan runs at toy size with random weights (decode.wan_toy=true): its videos are noise, "
              "not reconstructions; they only show that the pipeline runs end to end")


# ---------------------------------------------------------------- settings (torch-free)


def wan_config(decode_cfg, cond_dim: int, *, device: str | None = None, lora_dir: Path | None = None,
               precision: str | None = None) -> WanDecoderConfig:
    """The generator's settings from the root config's `decode` section; checked, nothing loaded.

    toy: random toy weights whose text_dim is the store's cond dim. A real folder must have a
    transformer whose text_dim equals the store's cond dim (read from its config.json).
    """
    toy, model_dir = bool(decode_cfg.wan_toy), decode_cfg.wan_model_dir
    rand = getattr(decode_cfg, "wan_random_init", None)
    if sum((toy, model_dir is not None, rand is not None)) != 1:
        raise CNError("set decode.wan_model_dir to a local diffusers-format Wan2.1 folder, or decode.wan_toy=true "
                      "for toy random weights (noise), or decode.wan_random_init=wan2.1-t2v-1.3b (random weights at "
                      "the real size), exactly one of them")
    if rand is not None:
        from cineneuron.schemas.models import load_model_config

        load_model_config(rand, "wan")  # an unknown name stops here
    cfg = WanDecoderConfig(
        model_dir=None if model_dir is None else Path(model_dir), toy=toy, random_init=rand,
        toy_text_dim=int(cond_dim), lora_dir=lora_dir, dtype=precision,
        num_frames=decode_cfg.num_frames, height=decode_cfg.height, width=decode_cfg.width,
        num_inference_steps=decode_cfg.steps, guidance_scale=decode_cfg.guidance_scale,
        device=device, seed=decode_cfg.wan_seed)
    check_inputs(cfg)
    check_text_dim(cfg, cond_dim)
    return cfg


def folder_text_dim(model_dir: Path) -> int | None:
    """text_dim of a Wan folder's transformer, from its config.json alone (None if unreadable)."""
    path = Path(model_dir) / "transformer" / "config.json"
    try:
        return int(json.loads(path.read_text())["text_dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a missing folder is reported by the loader, with the path to fix


def check_text_dim(cfg: WanDecoderConfig, cond_dim: int) -> None:
    if cfg.toy or cfg.model_dir is None:
        return
    text_dim = folder_text_dim(cfg.model_dir)
    if text_dim is not None and text_dim != cond_dim:
        raise CNError(f"the Wan transformer in {cfg.model_dir} takes text_dim={text_dim} but the store's cond dim is "
                      f"{cond_dim}; use a store whose cond encoder matches this generator (Wan2.1: UMT5, 4096)")


# ---------------------------------------------------------------- stage-2 Wan run files


def wan_run_dir(store, dataset: str, subject: str, base: str | None = None) -> Path:
    from cineneuron.store.runs import run_dir

    return run_dir(store, dataset, subject, 2, base).with_name(WAN_RUN)


def find_wan_run(store, dataset: str, subject: str, base: str | None = None, checkpoint: Path | None = None) -> Path | None:
    """The run holding the trained fusion: the checkpoint itself if it has one, else the subject's stage2-wan."""
    for d in (Path(checkpoint) if checkpoint else None, wan_run_dir(store, dataset, subject, base)):
        if d is not None and (d / FUSION_FILE).exists() and (d / FUSION_CONFIG).exists():
            return d
    return None


def fusion_heads(d_f: int, d_c: int) -> int:
    """Attention heads dividing both widths (the fusion's attention runs at D_f and at D_c)."""
    return next(h for h in (4, 2, 1) if d_f % h == 0 and d_c % h == 0)


def fusion_config(d_f: int, dims: dict[str, int]) -> "FusionConfig":
    from cineneuron.decode.fusion import FusionConfig

    return FusionConfig(d_f=d_f, d_img=dims["image"], d_act=dims["action"], d_c=dims["cond"],
                        heads=fusion_heads(d_f, dims["cond"]))


def save_fusion(directory: Path, fusion: "MoMFusion") -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    from cineneuron.atomic import atomic_write, atomic_write_text

    tensors = {k: v.detach().cpu().contiguous() for k, v in fusion.state_dict().items()}
    atomic_write(Path(directory) / FUSION_FILE, lambda p: save_file(tensors, str(p)))
    atomic_write_text(Path(directory) / FUSION_CONFIG, fusion.cfg.model_dump_json(indent=1))


def load_fusion(directory: Path) -> "MoMFusion":
    from safetensors.torch import load_file

    from cineneuron.decode.fusion import FusionConfig, MoMFusion

    cfg = FusionConfig.model_validate_json((Path(directory) / FUSION_CONFIG).read_text())
    fusion = MoMFusion(cfg)
    fusion.load_state_dict(load_file(str(Path(directory) / FUSION_FILE)))
    return fusion.eval()


def fresh_fusion(d_f: int, dims: dict[str, int], seed: int = 0) -> "MoMFusion":
    """An untrained fusion: its zero projections make C == T* exactly, whatever the seed."""
    import torch

    from cineneuron.decode.fusion import MoMFusion

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MoMFusion(fusion_config(d_f, dims)).eval()


# ---------------------------------------------------------------- memories -> C


def memory_inputs(store, results: list) -> dict:
    """T* of each query (top-1 `cond`, real tokens), and its top-k `img`/`act` sets with a validity mask.

    Returns {"t_star": list of (L_i, D_c) float16, "img": (B, k, d_img), "act": (B, k, d_act),
    "mem_mask": (B, k) bool} as numpy.
    """
    from cineneuron.store.rows import decode_cond, fixed_to_numpy

    for r in results:
        if not r.memories:
            raise CNError(f"query {r.sample} retrieved no memories; is the pool empty or decode.pool_filter too strict?")
    ids = list(dict.fromkeys(m.clip_id for r in results for m in r.memories))
    tbl = store.get_clips(ids, ["img", "act", "cond", "cond_len"])
    row = {c: i for i, c in enumerate(tbl.column("clip_id").to_pylist())}
    img, act = fixed_to_numpy(tbl.column("img")), fixed_to_numpy(tbl.column("act"))  # (n, d_img), (n, d_act)
    conds, lens = tbl.column("cond").to_pylist(), tbl.column("cond_len").to_pylist()
    k = max(len(r.memories) for r in results)
    out_img = np.zeros((len(results), k, img.shape[1]), np.float32)  # (B, k, d_img)
    out_act = np.zeros((len(results), k, act.shape[1]), np.float32)  # (B, k, d_act)
    mask = np.zeros((len(results), k), bool)  # (B, k)
    t_star = []
    for b, r in enumerate(results):
        rows = [row[m.clip_id] for m in r.memories]
        out_img[b, : len(rows)], out_act[b, : len(rows)], mask[b, : len(rows)] = img[rows], act[rows], True
        top = rows[0]
        t = decode_cond(conds[top], store.dims["cond"])  # (L, D_c) float16
        if len(t) != lens[top] or len(t) == 0:
            raise CNError(f"clip {r.memories[0].clip_id} has a damaged cond ({len(t)} tokens, cond_len {lens[top]}); re-ingest it")
        t_star.append(t)
    return {"t_star": t_star, "img": out_img, "act": out_act, "mem_mask": mask}


def fuse(fusion: "MoMFusion", F, t_star: list, img, act, mem_mask) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """C (B, L_t, D_c), T* (B, L_t, D_c) and its token mask (B, L_t), T* zero-padded to the longest.

    F (B, L_f, D_f); t_star: B arrays (L_i, D_c); img (B, k, d_img); act (B, k, d_act); mem_mask (B, k).
    Gradients flow when the caller is in grad mode (stage-2 training uses this too).
    """
    import torch

    from cineneuron.decode.fusion import pad_tokens

    dev = next(fusion.parameters()).device
    ts, t_mask = pad_tokens([np.array(t) for t in t_star])  # (B, L_t, D_c) float32 (float16 values: exact), (B, L_t)
    ts, t_mask = ts.to(dev), t_mask.to(dev)
    as_t = lambda x: torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dev)  # noqa: E731
    c = fusion(as_t(F).float(), as_t(img).float(), as_t(act).float(), ts, t_mask, as_t(mem_mask).bool())
    return c, ts, t_mask


def empty_negative(store, guidance_scale: float) -> "np.ndarray | None":
    """The store's encoded empty prompt (1, L0, D_c), the negative for classifier-free guidance."""
    from cineneuron.store.rows import decode_cond

    _, blob = store.get_meta("empty_cond")
    if not blob:
        if guidance_scale > 1:
            raise CNError(f"store {store.uri} has no encoded empty prompt (meta 'empty_cond') for guidance; "
                          "run `cn ingest` once to record it, or set decode.guidance_scale=1")
        return None
    return decode_cond(blob, store.dims["cond"])[None].astype(np.float32)  # (1, L0, D_c)


# The settings a Wan run was trained with that a query must repeat: the fusion learned from top_k
# memories, and the LoRA from latents of this many frames at this size.
RUN_SETTINGS = {"top_k": "top_k", "num_frames": "num_frames", "height": "height", "width": "width"}


def check_run_settings(run: Path, meta: dict, decode_cfg) -> None:
    """Refuse, in one line, decode settings other than the ones the stage-2 Wan run trained with."""
    for key, field in RUN_SETTINGS.items():
        if key in meta and getattr(decode_cfg, field) != meta[key]:
            raise CNError(f"the stage-2 Wan run {run} was trained with decode.{field}={meta[key]}; this query asks for "
                          f"{getattr(decode_cfg, field)}: use --set decode.{field}={meta[key]} or retrain with the new value")


# ---------------------------------------------------------------- the decoder


class WanMoMDecoder:
    """QueryResults (+ the queries' predictions, for F) -> one (F, H, W, 3) uint8 video each."""

    name = "wan"

    def __init__(self, decode_cfg, store=None, reconstructor=None, *, runs_dir: str | None = None, device: str | None = None):
        if store is None and reconstructor is None:
            raise ValueError("WanMoMDecoder needs the store (or a Reconstructor, which has one)")
        self.store = store if store is not None else reconstructor.store
        self.decode_cfg = decode_cfg
        self.rec = reconstructor
        cond_dim = self.store.dims["cond"]
        precision = None
        if device is None and reconstructor is not None:  # the query runs where train.device says
            from cineneuron.runtime import train_runtime

            rt = train_runtime(reconstructor.cfg.train)
            device, precision = rt["device"], rt["precision"]
        self.cfg = wan_config(decode_cfg, cond_dim, device=device, precision=precision)  # refuses bad settings; loads nothing
        self.run = None
        if reconstructor is not None:
            base = runs_dir if runs_dir is not None else reconstructor.cfg.train.runs_dir
            self.run = find_wan_run(self.store, reconstructor.dataset, reconstructor.subject, base, reconstructor.checkpoint)
        if self.run is not None:
            self._check_run(self.run, cond_dim)
            if (self.run / LORA_DIR).exists():
                self.cfg = self.cfg.model_copy(update={"lora_dir": self.run / LORA_DIR})
        self._fusion = None
        self._wan = None

    @property
    def notice(self) -> str | None:
        """A line a front end should show: toy (or random) weights make noise."""
        return TOY_NOTICE if (self.cfg.toy or self.cfg.random_init) else None

    def _check_run(self, run: Path, cond_dim: int) -> None:
        meta_path = run / WAN_META
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("toy") is not None and bool(meta["toy"]) != self.cfg.toy:
            kind = "toy random Wan weights" if meta["toy"] else f"the Wan folder {meta.get('model_dir')}"
            raise CNError(f"the stage-2 Wan run {run} was trained on {kind}; decode with the same generator "
                          f"(decode.wan_toy={str(bool(meta['toy'])).lower()}) or retrain: cn train --stage 2 --decoder wan")
        if meta.get("text_dim") not in (None, cond_dim):
            raise CNError(f"the stage-2 Wan run {run} has text_dim {meta['text_dim']}; this store's cond dim is {cond_dim}")
        check_run_settings(run, meta, self.decode_cfg)
        rec = self.rec
        if rec is not None and Path(rec.checkpoint).resolve() != run.resolve():
            # The fusion was trained on F from the run's own Brain Model; F from another checkpoint still
            # has the right shape, but is not what the fusion learned from.
            warnings.warn(f"F comes from checkpoint {rec.checkpoint}, the Wan fusion from {run}; "
                          f"query with the Brain Model of {run} for matching embeddings", stacklevel=2)

    def fusion(self, d_f: int) -> "MoMFusion":
        if self._fusion is None:
            self._fusion = load_fusion(self.run) if self.run is not None else fresh_fusion(d_f, self.store.dims)
        if self._fusion.cfg.d_f != d_f:
            raise CNError(f"the fMRI embedding has width {d_f}; the Wan fusion expects {self._fusion.cfg.d_f}")
        return self._fusion

    def generator(self):
        from cineneuron.decode.wan import WanDecoder

        if self._wan is None:
            self._wan = WanDecoder(self.cfg)
            if self._wan.text_dim != self.store.dims["cond"]:
                raise CNError(f"the Wan transformer takes text_dim={self._wan.text_dim} but the store's cond dim is {self.store.dims['cond']}")
        return self._wan

    def conditioning(self, store, results: list, preds: dict | None) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """(C, T*, T* mask) for the queries: C (B, L_t, D_c)."""
        import torch

        if preds is None or "F" not in preds:
            raise CNError("the wan decoder needs each query's fMRI embedding: call decode(store, results, preds=Reconstructor.predict(voxels))")
        F = np.asarray(preds["F"], dtype=np.float32)  # (B, L_f, D_f)
        if len(F) != len(results):
            raise ValueError(f"preds hold {len(F)} queries, results {len(results)}")
        mem = memory_inputs(store, results)
        fusion = self.fusion(F.shape[-1])
        with torch.no_grad():
            return fuse(fusion, F, mem["t_star"], mem["img"], mem["act"], mem["mem_mask"])

    def decode(self, store, results: list, preds: dict | None = None) -> list[np.ndarray]:
        """One (num_frames, height, width, 3) uint8 video per QueryResult; preds from Reconstructor.predict."""
        c, _, _ = self.conditioning(store, results, preds)  # (B, L_t, D_c)
        negative = empty_negative(store, self.cfg.guidance_scale)
        wan = self.generator()
        # One query at a time: a real-size video per query already fills a GPU.
        return [wan.generate(c[i : i + 1], negative)[0] for i in range(len(c))]
