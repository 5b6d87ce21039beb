"""Toy `paper` encoders with random weights, saved in the real on-disk formats.

Each builder returns what a test needs to load the toy model back through the encoder (a
preset-style config) and to run the toy model's own forward pass as the reference.
Sizes are unequal on purpose (B=2 clips, T=8 frames, 32 px, embeddings of 24) so that axis
mix-ups fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VIDEOS = Path("/work/shared/data/videos")
SIZE, FRAMES, EMBED = 32, 8, 24
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAPTIONS = [
    "a rabbit walks out of a burrow in a green meadow",
    "Cyclists   ride along a road &amp; a car passes",
    "",
]


# --- real frames ----------------------------------------------------------------------------
def decode_clips(size: int = SIZE, n: int = FRAMES, seconds: float = 2.0) -> np.ndarray:
    """`n` frames spread uniformly over the first `seconds` of each sample video, at size x size.

    Returns (n_videos, n, size, size, 3) uint8, decoded with PyAV.
    """
    import av

    clips = []
    for path in sorted(VIDEOS.glob("*.mp4")):
        with av.open(str(path)) as box:
            stream = box.streams.video[0]
            frames = [f for f in box.decode(stream) if f.time is not None and f.time < seconds]
        pick = np.linspace(0, len(frames) - 1, n).round().astype(int)
        clips.append(np.stack([frames[i].to_ndarray(format="rgb24", width=size, height=size) for i in pick]))
    return np.stack(clips)  # (V, n, size, size, 3)


def randomize_(module, seed: int, std: float = 0.2) -> None:
    """Fill every parameter with noise (LayerNorms around 1), so no weight is a no-op."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            is_norm_gain = p.ndim == 1 and name.endswith("weight") and ("norm" in name or ".ln_" in name)
            p.copy_(1.0 + noise if is_norm_gain else noise)


# --- OpenCLIP -----------------------------------------------------------------------------------
OPENCLIP_NAME = "cn-toy-clip"
OPENCLIP_CFG = {
    "embed_dim": EMBED,
    "vision_cfg": {"image_size": SIZE, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_openclip_toy(tmp: Path) -> str:
    import open_clip

    cfg_dir = tmp / "open_clip_configs"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / f"{OPENCLIP_NAME}.json").write_text(json.dumps(OPENCLIP_CFG))
    open_clip.add_model_config(cfg_dir)
    return OPENCLIP_NAME


def save_openclip(path: Path, seed: int = 0, quick_gelu: bool = False) -> Path:
    """A toy open_clip state dict as .safetensors (or .bin by suffix), as released checkpoints are."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(OPENCLIP_NAME, force_quick_gelu=quick_gelu)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save(sd, str(path))
    return path


def save_openclip_dir(folder: Path, seed: int = 0) -> Path:
    """The `local-dir:` layout: open_clip_config.json (model_cfg + preprocess_cfg) and weights."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": OPENCLIP_CFG, "preprocess_cfg": {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_openclip(folder / "open_clip_model.safetensors", seed)
    return folder


# --- ViCLIP -------------------------------------------------------------------------------------
VICLIP_TOY_ARCH = dict(
    image_size=SIZE, patch_size=8, vision_width=32, vision_layers=2, vision_heads=2, embed_dim=EMBED,
    num_frames=FRAMES, tubelet=1, text_width=16, text_layers=2, text_heads=2, context_length=32, vocab_size=49408,
)
VICLIP_L14_ARCH = dict(
    image_size=224, patch_size=14, vision_width=1024, vision_layers=24, vision_heads=16, embed_dim=768,
    num_frames=8, tubelet=1, text_width=768, text_layers=12, text_heads=12, context_length=32, vocab_size=49408,
)


def official_viclip_shapes(a: dict) -> dict[str, tuple]:
    """Key names and shapes of the official checkpoint's `model` entry, written out from the
    upstream module layout (viclip.py / viclip_vision.py / viclip_text.py), not from our module."""
    vw, tw, e = a["vision_width"], a["text_width"], a["embed_dim"]
    grid = a["image_size"] // a["patch_size"]
    shapes = {
        "temp": (),
        "vision_encoder.class_embedding": (vw,),
        "vision_encoder.positional_embedding": (grid * grid + 1, vw),
        "vision_encoder.temporal_positional_embedding": (1, a["num_frames"], vw),
        "vision_encoder.conv1.weight": (vw, 3, a["tubelet"], a["patch_size"], a["patch_size"]),
        "vision_encoder.ln_pre.weight": (vw,), "vision_encoder.ln_pre.bias": (vw,),
        "vision_encoder.ln_post.weight": (vw,), "vision_encoder.ln_post.bias": (vw,),
        "vision_encoder.proj": (vw, e),
        "text_encoder.token_embedding.weight": (a["vocab_size"], tw),
        "text_encoder.positional_embedding": (a["context_length"], tw),
        "text_encoder.ln_final.weight": (tw,), "text_encoder.ln_final.bias": (tw,),
        "text_encoder.text_projection": (tw, e),
    }
    for tower, w, layers in (("vision_encoder", vw, a["vision_layers"]), ("text_encoder", tw, a["text_layers"])):
        for i in range(layers):
            b = f"{tower}.transformer.resblocks.{i}."
            shapes.update({
                b + "attn.in_proj_weight": (3 * w, w), b + "attn.in_proj_bias": (3 * w,),
                b + "attn.out_proj.weight": (w, w), b + "attn.out_proj.bias": (w,),
                b + "ln_1.weight": (w,), b + "ln_1.bias": (w,), b + "ln_2.weight": (w,), b + "ln_2.bias": (w,),
                b + "mlp.c_fc.weight": (4 * w, w), b + "mlp.c_fc.bias": (4 * w,),
                b + "mlp.c_proj.weight": (w, 4 * w), b + "mlp.c_proj.bias": (w,),
            })
    return shapes


def official_viclip_state_dict(a: dict, seed: int = 0) -> dict:
    """Random tensors under the official key names (built from names and shapes only)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_viclip_shapes(a).items():
        t = torch.randn(shape, generator=g) * 0.2
        sd[k] = t + 1.0 if k.endswith(("ln_1.weight", "ln_2.weight")) else t
    sd["temp"] = torch.tensor(0.01)
    return sd


def save_viclip(path: Path, seed: int = 0) -> Path:
    """The official format: torch.save({"model": state_dict, ...}) with the official keys."""
    import torch

    torch.save({"model": official_viclip_state_dict(VICLIP_TOY_ARCH, seed), "epoch": 9}, str(path))
    return path


def viclip_upstream_video(sd: dict, video, heads: int):
    """Upstream's evaluation vision path restated step by step on a raw state dict.

    video: (B, T, 3, H, W) normalised -> (B, embed) raw; sequence-first attention, the
    '(b t) n m -> (b n) t m' temporal embedding and the CLS taken from x[:B], as upstream does.
    """
    import torch
    import torch.nn.functional as F

    p = lambda k: sd["vision_encoder." + k]  # noqa: E731
    x = video.permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
    w = p("conv1.weight")
    x = F.conv3d(x, w, stride=tuple(w.shape[2:]))  # (B, W, T, g, g)
    b, c, t, h, ww = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * ww, c)
    x = torch.cat([p("class_embedding") + torch.zeros(b * t, 1, c), x], dim=1) + p("positional_embedding")
    cls = x[:b, :1]
    x = x[:, 1:].reshape(b, t, h * ww, c).transpose(1, 2).reshape(b * h * ww, t, c)
    x = x + p("temporal_positional_embedding")
    x = torch.cat([cls, x.reshape(b, h * ww * t, c)], dim=1)
    x = F.layer_norm(x, (c,), p("ln_pre.weight"), p("ln_pre.bias")).permute(1, 0, 2)  # (N, B, C)
    layers = len({k.split(".")[3] for k in sd if k.startswith("vision_encoder.transformer.resblocks.")})
    for i in range(layers):
        q = lambda k: p(f"transformer.resblocks.{i}.{k}")  # noqa: E731
        y = F.layer_norm(x, (c,), q("ln_1.weight"), q("ln_1.bias"))
        y = F.multi_head_attention_forward(
            y, y, y, c, heads, q("attn.in_proj_weight"), q("attn.in_proj_bias"), None, None, False, 0.0,
            q("attn.out_proj.weight"), q("attn.out_proj.bias"), training=False, need_weights=False,
        )[0]
        x = x + y
        y = F.linear(F.layer_norm(x, (c,), q("ln_2.weight"), q("ln_2.bias")), q("mlp.c_fc.weight"), q("mlp.c_fc.bias"))
        x = x + F.linear(y * torch.sigmoid(1.702 * y), q("mlp.c_proj.weight"), q("mlp.c_proj.bias"))
    x = F.layer_norm(x, (c,), p("ln_post.weight"), p("ln_post.bias"))
    return x[0] @ p("proj")  # (B, embed)


def viclip_upstream_pixels(clips: np.ndarray):
    """Upstream demo's frames2tensor for frames already at size: float64 normalise, then float32."""
    import torch

    mean, std = np.array(IMAGENET_MEAN).reshape(1, 1, 3), np.array(IMAGENET_STD).reshape(1, 1, 3)
    x = (clips / 255.0 - mean) / std  # (B, T, H, W, 3) float64
    return torch.from_numpy(np.transpose(x, (0, 1, 4, 2, 3))).float()  # (B, T, 3, H, W)


# --- X-CLIP -------------------------------------------------------------------------------------
def _toy_clip_bpe_files(folder: Path) -> tuple[Path, Path]:
    """A tiny CLIP BPE vocabulary (single characters, no merges), enough to tokenise captions."""
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,&;'!"
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(chars) + [ch + "</w>" for ch in chars]
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges.write_text("#version: 0.2\n")
    return vocab, merges


def save_xclip(folder: Path, seed: int = 0) -> Path:
    """A toy XCLIPModel + processor (VideoMAE image processor, CLIP tokenizer) via save_pretrained."""
    import torch
    from transformers import CLIPTokenizer, VideoMAEImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    folder.mkdir(parents=True, exist_ok=True)
    cfg = XCLIPConfig(
        text_config=dict(vocab_size=90, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77),
        vision_config=dict(image_size=SIZE, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, num_frames=FRAMES, mit_hidden_size=EMBED, mit_intermediate_size=32,
                           mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=EMBED, prompt_layers=1, prompt_num_attention_heads=2,
    )
    torch.manual_seed(seed)
    model = XCLIPModel(cfg).eval()
    randomize_(model, seed, std=0.1)
    model.save_pretrained(str(folder))
    tmp = folder / "_bpe"
    tmp.mkdir(exist_ok=True)
    vocab, merges = _toy_clip_bpe_files(tmp)
    tok = CLIPTokenizer(str(vocab), str(merges))
    image_processor = VideoMAEImageProcessor(
        size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), resample=2,
    )
    XCLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(str(folder))
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return folder


# --- UMT5 (Wan2.1 text encoder) -----------------------------------------------------------------
def save_wan_text(folder: Path, seed: int = 0) -> Path:
    """A Wan2.1 diffusers folder's text half: text_encoder/ (toy UMT5) and tokenizer/ (WordLevel)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = sorted({w for c in CAPTIONS for w in c.lower().replace("&amp;", "&").split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(folder / "tokenizer"))

    torch.manual_seed(seed)
    cfg = UMT5Config(vocab_size=64, d_model=EMBED + 8, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
    model = UMT5EncoderModel(cfg).eval()
    model.save_pretrained(str(folder / "text_encoder"))
    return folder


def wan_reference(folder: Path, prompts: list[str], max_length: int = 512):
    """What WanPipeline itself computes for `prompts` (its _get_t5_prompt_embeds), (B, max_length, d)."""
    from types import SimpleNamespace

    import torch
    from diffusers import WanPipeline
    from transformers import AutoTokenizer, UMT5EncoderModel

    pipe = SimpleNamespace(
        tokenizer=AutoTokenizer.from_pretrained(str(folder / "tokenizer")),
        text_encoder=UMT5EncoderModel.from_pretrained(str(folder / "text_encoder")).eval(),
    )
    with torch.inference_mode():
        return WanPipeline._get_t5_prompt_embeds(
            pipe, prompt=prompts, max_sequence_length=max_length, device=torch.device("cpu"), dtype=torch.float32
        )


def toy_paper_preset(clip: Path, viclip: Path, wan: Path) -> dict:
    """The `paper` preset pointed at toy weights (OpenCLIP image+text, ViCLIP action, UMT5 cond).

    The OpenCLIP toy architecture must be registered first (`register_openclip_toy`)."""
    from cineneuron.schemas.presets import load_preset

    preset = json.loads(load_preset("paper").model_dump_json())
    preset["frames"] = {"n": FRAMES, "size": SIZE}
    enc = preset["encoders"]
    enc["image"].update(dim=EMBED, config=dict(model=OPENCLIP_NAME, weights=str(clip), mean=OPENAI_MEAN,
                                               std=OPENAI_STD, size=SIZE))
    enc["text"].update(dim=EMBED, config=dict(model=OPENCLIP_NAME, weights=str(clip)))
    enc["action"].update(dim=EMBED, config=dict(weights=str(viclip), arch=VICLIP_TOY_ARCH, mean=IMAGENET_MEAN,
                                                std=IMAGENET_STD, size=SIZE))
    enc["cond"].update(dim=EMBED + 8, config=dict(model_dir=str(wan)))
    return preset
