"""Full-size GPU run of stage 2 on Wan2.1-T2V-1.3B: a few LoRA + fusion training steps, one generation.

    python bench/gpu_wan.py /models/Wan2.1-T2V-1.3B-Diffusers --dataset cc2017 --steps 5
    python bench/gpu_wan.py --random-init --dataset cinebrain     # real architecture, random weights
    python bench/gpu_wan.py --toy --frames 9 --height 32 --width 48 --infer-steps 2   # CPU smoke run

Prints peak GPU memory, seconds per training step and seconds per generated clip. Not run in CI;
`--help` needs no GPU (heavy imports happen inside main).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Wan2.1-T2V-1.3B as published in diffusers format (used only with --random-init).
REAL_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
)  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", nargs="?", type=Path, help="local diffusers-format Wan2.1-T2V-1.3B folder")
    ap.add_argument("--random-init", action="store_true", help="no weights: build the 1.3B architecture at random")
    ap.add_argument("--toy", action="store_true", help="toy-size generator; runs on CPU (checks this script)")
    ap.add_argument("--dataset", choices=["cc2017", "cinebrain"], default="cc2017")
    ap.add_argument("--frames", type=int, help="4k+1; default from --dataset")
    ap.add_argument("--height", type=int, help="multiple of 16; default from --dataset")
    ap.add_argument("--width", type=int, help="multiple of 16; default from --dataset")
    ap.add_argument("--steps", type=int, default=5, help="LoRA training steps (the first is warm-up)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing in the DiT")
    ap.add_argument("--infer-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=Path("gpu_wan.mp4"))
    ap.add_argument("--fps", type=float, default=16.0)
    args = ap.parse_args(argv)
    if (args.model_dir is not None) + args.random_init + args.toy != 1:
        ap.error("give exactly one of model_dir, --random-init, --toy")
    return args


def build(args, cfg):
    """A pipeline from the folder, or the real architecture with random weights."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    from cineneuron.decode.wan import cast_transformer, build_pipeline

    if not args.random_init:
        return build_pipeline(cfg)
    with torch.device(cfg.device):
        transformer = WanTransformer3DModel(**REAL_TRANSFORMER)
        vae = AutoencoderKLWan()  # the defaults are Wan2.1's VAE
    cast_transformer(transformer, torch.bfloat16)
    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=sched, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _timer(device: str):
    """perf_counter after the device has finished its queued work."""
    import torch

    def now() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    return now


def _peak_gib(device: str, reset: bool = False) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(torch.cuda.max_memory_allocated() / 1024**3, 2)


def _generate(args, cfg, pipe, fusion, inputs, d_c: int, device: str) -> dict:
    """One generation from the fused conditioning; the negative is a zero stand-in for the empty prompt."""
    import torch

    from cineneuron.decode.wan import WanDecoder
    from cineneuron.frames import write_mp4

    fmri, img, act, t_star, mask = inputs
    dec = WanDecoder(cfg, pipeline=pipe)
    with torch.no_grad():
        cond = fusion(fmri[:1], img[:1], act[:1], t_star[:1, :20], mask[:1, :20])  # (1, 20, D_c)
    _peak_gib(device, reset=True)
    t0 = _timer(device)()
    clips = dec.generate(cond, negative=torch.zeros(1, 1, d_c))
    out = {"generate_s_per_clip": round(_timer(device)() - t0, 1), "generate_peak_gib": _peak_gib(device)}
    out["mp4"] = str(write_mp4(clips[0], args.out, fps=args.fps))
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from cineneuron.train import wan_lora as wt
    from cineneuron.decode.fusion import FusionConfig, MoMFusion, pad_tokens
    from cineneuron.decode.wan import WanDecoderConfig, check_inputs, pad_text
    from cineneuron.errors import CNError

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.toy:
        raise SystemExit("error: the full-size run needs a CUDA GPU (use --toy for a CPU smoke run)")
    # with --random-init the path is a placeholder that satisfies check_inputs; build() never reads it
    src = dict(toy=True) if args.toy else dict(model_dir=args.model_dir or Path("random-init"))
    cfg = WanDecoderConfig(
        **src, dataset=args.dataset, num_frames=args.frames, height=args.height, width=args.width,
        num_inference_steps=args.infer_steps, guidance_scale=args.guidance, device=device,
    )  # fmt: skip
    try:
        check_inputs(cfg)
    except CNError as e:
        raise SystemExit(f"error: {e}")
    now = _timer(device)
    report: dict = {"dataset": args.dataset, "frames": cfg.num_frames, "height": cfg.height, "width": cfg.width}

    t0 = now()
    pipe = build(args, cfg)
    tr, vae = pipe.transformer, pipe.vae
    report["load_s"] = round(now() - t0, 1)
    d_c = tr.config.text_dim  # 4096 for UMT5-XXL

    # latents of one random clip, through the float16 cache format
    gen = torch.Generator(device).manual_seed(0)
    video = torch.rand(args.batch, 3, cfg.num_frames, cfg.height, cfg.width, device=device, generator=gen) * 2 - 1
    t0 = now()
    lat = torch.from_numpy(wt.encode_latents(vae, video, gen)).to(device).float()  # (B, 16, F', H/8, W/8)
    report["encode_s"] = round(now() - t0, 2)
    report["latent_shape"] = list(lat.shape)
    del video

    # stage-2 modules: LoRA on the DiT + fusion (fMRI 16 tokens x 1024, k=8 memories)
    wt.add_lora(tr, r=16, alpha=16)
    wt.freeze(vae)
    if args.grad_ckpt:
        tr.enable_gradient_checkpointing()
    fusion = MoMFusion(FusionConfig(d_f=1024, d_img=1024, d_act=768, d_c=d_c, heads=8)).to(device)
    b = args.batch
    fmri = torch.randn(b, 16, 1024, device=device)  # (B, L_f, D_f)
    img, act = torch.randn(b, 8, 1024, device=device), torch.randn(b, 8, 768, device=device)  # (B, k, d)
    t_star, mask = pad_tokens([torch.randn(20 + 5 * i, d_c) * 0.1 for i in range(b)])  # (B, L_t, D_c)
    t_star, mask = t_star.to(device), mask.to(device)
    params = wt.stage2_parameters(tr, fusion)
    report["trainable_params_M"] = round(sum(p.numel() for p in params) / 1e6, 2)
    opt = torch.optim.AdamW(params, lr=args.lr)
    sched = wt.train_scheduler(source=pipe.scheduler)

    _peak_gib(device, reset=True)
    times, losses = [], []
    for _ in range(args.steps):
        t0 = now()
        cond = pad_text(fusion(fmri, img, act, t_star, mask), cfg.text_len)  # (B, 512, D_c)
        loss = wt.flow_matching_loss(tr, sched, lat, cond, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(now() - t0)
        losses.append(round(loss.item(), 4))
    report["train_first_step_s"] = round(times[0], 2)  # includes kernel selection / allocation
    report["train_step_s"] = round(sum(times[1:]) / max(1, len(times) - 1), 3)
    report["train_losses"] = losses
    report["train_peak_gib"] = _peak_gib(device)
    del opt
    if device == "cuda":
        torch.cuda.empty_cache()

    report.update(_generate(args, cfg, pipe, fusion, (fmri, img, act, t_star, mask), d_c, device))
    report["device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
