"""`cn doctor`: are the weights there, how big is every model, will stage 2 fit, which device is here.

Every model is built through the project's own code on the **meta device** (shapes only, no
memory), from the configs the loaders read: the weights folder's own config.json files when
they are there, else (`--full-size`) the published configs kept as data in
`schemas/presets/models/`. Weight folders are checked file by file with the encoders' own
`check_weights()` and the Wan loader's checks, so a missing file is named exactly as a real
load would name it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cineneuron.errors import CNError

GiB = 2**30
# The Brain Model's input layer depends on the subject; doctor sizes it for this many voxels x TRs.
DOCTOR_VOXELS, DOCTOR_TRS = 13_824, 1


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _row(name: str, params: int, source: str, **extra) -> dict:
    return {"model": name, "params": int(params), "bf16_gib": round(params * 2 / GiB, 2),
            "fp32_gib": round(params * 4 / GiB, 2), "built_from": source, **extra}


def _weights_check(preset, runtime: dict) -> dict[str, str | None]:
    """{modality: None when every file is there, else the one-line reason}."""
    from cineneuron.encoders import create_encoders

    out = {}
    encs = create_encoders(preset, runtime=runtime)
    for m, enc in encs.items():
        try:
            enc.check_weights()
            out[m] = None
        except CNError as e:
            out[m] = str(e)
    return out


def _wan_check(model_dir: Path | None) -> str | None:
    from cineneuron.decode.wan import _check_weights, _require

    if model_dir is None:
        return "no Wan folder: set decode.wan_model_dir"
    try:
        _require(Path(model_dir))
        for sub in ("transformer", "vae"):
            _check_weights(Path(model_dir) / sub)
        _require(Path(model_dir) / "scheduler" / "scheduler_config.json")
    except CNError as e:
        return str(e)
    return None


def _encoder_models(preset, runtime: dict, missing: dict, full_size: bool) -> list[dict]:
    import torch

    from cineneuron.encoders.paper._common import hf_config, resolve_path
    from cineneuron.schemas.models import load_model_config

    rows, wd = [], runtime.get("weights_dir")
    img = preset.encoders["image"]
    if img.name.startswith("openclip") and (full_size or not missing["image"]):
        import open_clip

        name = img.config["model"]
        if name.startswith("local-dir:"):
            cfg = json.loads((resolve_path(name[len("local-dir:"):], wd) / "open_clip_config.json").read_text())
            with torch.device("meta"):
                m = open_clip.model.CLIP(**cfg.get("model_cfg", cfg))
        else:
            m = open_clip.create_model(name, device="meta")
        rows.append(_row(f"OpenCLIP {name} (image + text)", _count(m), "open_clip config", dim=int(m.visual.output_dim)))
    act = preset.encoders["action"]
    if act.name == "viclip" and (full_size or not missing["action"]):
        from cineneuron.encoders.paper.viclip import ARCHS, ViCLIPArch
        from cineneuron.encoders.paper.viclip_model import ViCLIP

        a = act.config.get("arch", "ViT-L/14")
        arch = ARCHS[a] if isinstance(a, str) else ViCLIPArch(**a)
        with torch.device("meta"):
            m = ViCLIP(**arch.model_dump())
        rows.append(_row(f"ViCLIP {a if isinstance(a, str) else 'custom'}", _count(m), "ViCLIP arch", dim=arch.embed_dim))
    cond = preset.encoders["cond"]
    if cond.name == "umt5" and (full_size or not missing["cond"]):
        from transformers import UMT5Config, UMT5EncoderModel

        path = resolve_path(cond.config["model_dir"], wd) / "text_encoder" / "config.json"
        cfg, src = (hf_config(path), str(path)) if not missing["cond"] else (load_model_config("umt5-xxl", "umt5")["config"], "umt5-xxl.json")
        with torch.device("meta"):
            m = UMT5EncoderModel(UMT5Config(**cfg))
        rows.append(_row("UMT5-XXL encoder", _count(m), src, dim=int(m.config.d_model)))
    return rows


def _wan_models(model_dir: Path | None, wan_missing: str | None, full_size: bool, text_dim: int) -> tuple[list[dict], object]:
    """Rows for the DiT and the VAE, and the decoder config the stage-2 estimate uses (None: not built)."""
    from cineneuron.decode.wan import WanDecoderConfig
    from cineneuron.train.memory import wan_sizes

    if wan_missing is None:
        wcfg, src = WanDecoderConfig(model_dir=model_dir, device="cpu", dtype="bf16"), str(model_dir)
    elif full_size:
        wcfg, src = WanDecoderConfig(random_init="wan2.1-t2v-1.3b", toy_text_dim=text_dim, device="cpu", dtype="bf16"), "wan2.1-t2v-1.3b.json"
    else:
        return [], None
    t, dit, vae = wan_sizes(wcfg)
    return [_row("Wan2.1 DiT", dit, src, layers=int(t["num_layers"])), _row("Wan2.1 VAE", vae, src)], wcfg


def _brain_and_fusion(preset, brain_preset: str) -> tuple[list[dict], int]:
    import torch

    from cineneuron.brain.model import BrainModel, BrainModelConfig, SubjectSpec, TargetDims
    from cineneuron.brain.transformer import TransformerConfig
    from cineneuron.decode.router import Router  # noqa: F401  (the router is counted with the Brain Model)
    from cineneuron.decode.wan_decoder import fusion_config
    from cineneuron.decode.fusion import MoMFusion

    t = TransformerConfig.preset(brain_preset)
    cfg = BrainModelConfig(backbone="transformer", transformer=t, targets=TargetDims.from_preset(preset),
                           subjects={"1": SubjectSpec(n_tr=DOCTOR_TRS, n_voxels=DOCTOR_VOXELS)})
    with torch.device("meta"):
        brain = BrainModel(cfg)
        fusion = MoMFusion(fusion_config(t.token_dim, preset.dims()))
    n_brain = _count(brain)
    tokens = t.n_patches + 1
    return [_row(f"Brain Model ({t.n_layers} x {t.hidden}, {tokens} tokens)", n_brain, f"brain-{brain_preset}.json",
                 subject=f"{DOCTOR_VOXELS} voxels x {DOCTOR_TRS} TR"),
            _row(f"MoM fusion (D_f {t.token_dim}, D_c {preset.dims()['cond']})", _count(fusion), "fusion_config")], n_brain


def doctor(cfg, *, preset_name: str | None = None, full_size: bool = False) -> dict:
    """The report `cn doctor` prints; `ok` is false when a weight file is missing (without --full-size)."""
    from cineneuron.runtime import device_report, encoder_runtime
    from cineneuron.schemas.presets import load_preset
    from cineneuron.train.memory import estimate_stage2, wan_sizes

    preset = load_preset(preset_name or cfg.encoders.preset)
    runtime = encoder_runtime(cfg.encoders)
    missing = _weights_check(preset, runtime)
    wan_dir = cfg.decode.wan_model_dir
    if wan_dir is None and preset.encoders["cond"].name == "umt5":  # the UMT5 folder is the Wan folder
        from cineneuron.encoders.paper._common import resolve_path

        wan_dir = str(resolve_path(preset.encoders["cond"].config["model_dir"], runtime.get("weights_dir")))
    wan_missing = _wan_check(Path(wan_dir) if wan_dir else None)
    rows = _encoder_models(preset, runtime, missing, full_size)
    wan_rows, wcfg = _wan_models(Path(wan_dir) if wan_dir else None, wan_missing, full_size, preset.dims()["cond"])
    brain_rows, n_brain = _brain_and_fusion(preset, cfg.brain.preset or "paper")
    report = {"preset": preset.name, "full_size": full_size, "device": device_report(), "runtime": runtime,
              "weights": {**missing, "wan": wan_missing}, "models": rows + wan_rows + brain_rows}
    if wcfg is not None:
        d = cfg.decode
        t, dit, vae = wan_sizes(wcfg)
        est = {}
        for ck in (True, False):
            e = estimate_stage2(transformer=t, dit_params=dit, vae_params=vae, num_frames=d.num_frames, height=d.height,
                                width=d.width, grad_ckpt=ck, lora_fp32=cfg.train.lora_fp32, lora_r=d.wan_lora_rank,
                                micro_batch=cfg.train.micro_batch or 1, batch_size=cfg.train.batch_size,
                                trained_params=n_brain)
            est["grad_ckpt" if ck else "no_ckpt"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in e.to_dict().items()}
        report["stage2"] = {"frames": d.num_frames, "height": d.height, "width": d.width, **est}
    report["ok"] = full_size or all(v is None for v in report["weights"].values())
    return report


def format_report(r: dict) -> str:
    lines = [f"preset {r['preset']}{' (full size, random configs where weights are absent)' if r['full_size'] else ''}",
             f"device: {json.dumps(r['device'])}; encoders run on {r['runtime']['device']} at {r['runtime']['precision']}"]
    for k, v in r["weights"].items():
        lines.append(f"  weights {k:<7} {'ok' if v is None else v}")
    for m in r["models"]:
        lines.append(f"  {m['model']:<46} {m['params']:>15,} params  bf16 {m['bf16_gib']:>6.2f} GiB  fp32 {m['fp32_gib']:>6.2f} GiB")
    s = r.get("stage2")
    if s:
        for k in ("grad_ckpt", "no_ckpt"):
            e = s[k]
            lines.append(f"  stage 2 at {s['frames']}x{s['height']}x{s['width']} ({k}): {e['video_tokens']:,} tokens, "
                         f"{e['activations_per_clip_gib']:.1f} GiB activations per clip, about {e['total_gib']:.1f} GiB in all "
                         f"(micro-batch {e['micro_batch']})")
    return "\n".join(lines)
