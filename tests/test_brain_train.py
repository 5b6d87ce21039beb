"""Stage-1 trainer core at toy size: overfit, determinism, resume, hooks, embed."""

import pytest
import torch
from pydantic import ValidationError

from cineneuron.brain.mlp import MLPConfig
from cineneuron.brain.model import BrainModelConfig, TargetDims, create_brain_model, load_checkpoint, save_checkpoint
from cineneuron.config import TrainConfig
from cineneuron.train.loop import Schedule, Stage1Trainer, embed
from cineneuron.brain.transformer import TransformerConfig
from cineneuron.errors import CNError

N_TR, V = 2, 37
D_IMG, D_TXT, D_ACT, T = 24, 20, 28, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_cfg(backbone="mlp", dropout=0.1) -> BrainModelConfig:
    return BrainModelConfig(
        backbone=backbone,
        subjects={"sub-01": {"n_tr": N_TR, "n_voxels": V}},
        targets=TargetDims(img=D_IMG, txt=D_TXT, act=D_ACT, n_frames=T),
        mlp=MLPConfig(hidden=32, n_blocks=2, n_tokens=5, token_dim=12),
        transformer=TransformerConfig(n_layers=2, hidden=32, n_heads=4, n_patches=6, token_dim=12, mlp_ratio=2.0),
        head_hidden=18,
        dropout=dropout,
    )


def make_batch(seed: int, B: int = 8) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "voxels": torch.randn(B, N_TR, V, generator=g),  # (B, n_tr, V)
        "subject": "sub-01",
        "img_frames": torch.randn(B, T, D_IMG, generator=g),  # (B, T, d_img)
        "txt": torch.randn(B, D_TXT, generator=g),
        "act": torch.randn(B, D_ACT, generator=g),
        "label_vec": (torch.rand(B, 15, generator=g) > 0.7).float(),
    }


def source(n_batches: int = 3, B: int = 6):
    """A data source whose batches depend on the epoch only, reshuffled every epoch."""
    pool = [make_batch(100 + i, B) for i in range(n_batches)]

    def batches(epoch: int):
        order = torch.randperm(n_batches, generator=torch.Generator().manual_seed(epoch))
        torch.rand(3)  # a source that touches the global RNG must not change the training run
        return (pool[i] for i in order.tolist())

    return batches


def make_trainer(model, steps: int, val_every: int = 0, checkpoint_every: int = 0, **train) -> Stage1Trainer:
    """The trainer with the root config's train section (the loop's old defaults where they differ)."""
    cfg = TrainConfig(**{"device": "cpu", "weight_decay": 0.01, "pct_start": 0.3, "focal_alpha": None, **train})
    return Stage1Trainer(model, cfg, Schedule(steps, val_every, checkpoint_every))


def params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_overfits_a_batch_of_8(backbone):
    batch = make_batch(0)
    model = create_brain_model(toy_cfg(backbone, dropout=0.0), seed=0)
    trainer = make_trainer(model, 150, lr=1e-2)
    first = trainer.train_step(batch)["loss"]
    result = trainer.fit(lambda epoch: [batch])
    last = result["train"]
    assert result["step"] == 150
    assert last["loss"] < 0.05 and last["loss"] < 0.01 * first, (first, last)
    assert max(last["img"], last["txt"], last["act"]) < 0.01 and last["cls"] < 0.005


def test_same_seed_same_run_and_global_rng_untouched():
    calls = []
    data = source()

    def counted(epoch):
        calls.append(epoch)
        return data(epoch)

    def run(seed):
        torch.manual_seed(7)
        model = create_brain_model(toy_cfg("transformer"), seed=0)
        make_trainer(model, 6, seed=seed).fit(counted)
        return params(model), torch.rand(1)

    (a, ra), (b, rb), (c, _) = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # dropout draws from the trainer's seed
    assert calls[:2] == [0, 1] and len(calls) == 6  # 6 steps = 2 epochs of 3 batches, 3 runs
    torch.manual_seed(7)
    torch.rand(2 * 3)  # what the source drew from the global RNG in 2 epochs... and nothing else
    assert torch.equal(ra, torch.rand(1)) and torch.equal(ra, rb)


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_resume_equals_uninterrupted(tmp_path, backbone):
    N, k = 11, 4  # k=4 stops inside epoch 1 (3 batches per epoch): resume re-opens it mid-way
    data = source()

    full = create_brain_model(toy_cfg(backbone), seed=0)
    make_trainer(full, N, lr=3e-3, seed=3).fit(data)

    first = create_brain_model(toy_cfg(backbone), seed=0)
    t1 = make_trainer(first, N, lr=3e-3, seed=3)
    t1.fit(data, max_steps=k)
    assert (t1.step, t1.epoch, t1.batch_in_epoch) == (4, 1, 1)
    save_checkpoint(tmp_path / "ck", first, first.cfg, {"step": t1.step})
    t1.save_state(tmp_path / "ck")
    saved_cfg = t1.cfg.model_dump_json()  # what a run_config.json holds
    del first, t1

    model, _, extra = load_checkpoint(tmp_path / "ck")
    t2 = Stage1Trainer(model, TrainConfig.model_validate_json(saved_cfg), Schedule(N))
    t2.load_state(tmp_path / "ck")
    assert extra["step"] == t2.step == k
    result = t2.fit(data)
    assert result["step"] == N

    want, got = params(full), params(model)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_another_schedule(tmp_path):
    model = create_brain_model(toy_cfg(), seed=0)
    t = make_trainer(model, 5)
    t.fit(source(), max_steps=2)
    t.save_state(tmp_path)
    with pytest.raises(CNError, match="same steps"):
        make_trainer(model, 9).load_state(tmp_path)
    with pytest.raises(CNError, match="without --resume"):
        make_trainer(model, 5).load_state(tmp_path / "none")


def test_hooks_progress_val_checkpoint():
    model = create_brain_model(toy_cfg(), seed=0)
    seen, vals, cks = [], [], []

    def val_fn(m):
        assert not m.training and not torch.is_grad_enabled()
        vals.append(len(seen))
        return {"top1": 0.5}

    result = make_trainer(model, 7, val_every=3, checkpoint_every=2).fit(source(), val_fn, seen.append, checkpoint=lambda tr: cks.append(tr.step))
    assert [m["step"] for m in seen] == list(range(1, 8))
    assert {"loss", "img", "txt", "act", "cls", "lr", "epoch"} <= set(seen[0])
    assert vals == [3, 6, 7] and cks == [2, 4, 6, 7]
    assert result["val"] == {"top1": 0.5} and result["epoch"] == 2
    assert model.training  # val_fn's eval mode is undone


def test_ablation_needs_no_action_or_labels():
    batch = make_batch(1)
    del batch["act"], batch["label_vec"]
    model = create_brain_model(toy_cfg(), seed=0)
    m = make_trainer(model, 2, use_action=False, use_cls=False).train_step(batch)
    assert "act" not in m and "cls" not in m
    with pytest.raises(CNError, match="act, label_vec|label_vec"):
        make_trainer(model, 2).train_step(batch)


def test_empty_source_is_a_user_error():
    model = create_brain_model(toy_cfg(), seed=0)
    with pytest.raises(CNError, match="no batches"):
        make_trainer(model, 2).fit(lambda epoch: iter(()))


def test_train_config():
    cfg = TrainConfig()
    assert (cfg.lambda_act, cfg.lambda_cls, cfg.temperature, cfg.router_lr_mult) == (0.1, 10.0, 0.07, 10.0)
    s = Schedule.from_epochs(TrainConfig(epochs=3, val_every=2, checkpoint_every=1), steps_per_epoch=4)
    assert (s.total_steps, s.val_every, s.checkpoint_every) == (12, 8, 4)
    with pytest.raises(CNError, match="no full batch"):
        Schedule.from_epochs(cfg, steps_per_epoch=0)
    with pytest.raises(ValidationError):
        TrainConfig(lamda_cls=1.0)  # typos are refused


def test_embed_gives_unit_predictions():
    model = create_brain_model(toy_cfg("transformer"), seed=0).train()
    x = torch.randn(11, N_TR, V).numpy()
    out = embed(model, x, "sub-01", batch_size=4)
    assert out["img"].shape == (11, D_IMG) and out["txt"].shape == (11, D_TXT) and out["act"].shape == (11, D_ACT)
    assert out["g"].shape == (11, 32) and out["cls_probs"].shape == (11, 15)
    for key in ("img", "txt", "act", "g"):
        torch.testing.assert_close(out[key].norm(dim=-1), torch.ones(11))
    assert ((out["cls_probs"] >= 0) & (out["cls_probs"] <= 1)).all()
    assert model.training
    again = embed(model, x, "sub-01", batch_size=11)  # eval mode: no dropout, batching does not matter
    torch.testing.assert_close(again["img"], out["img"])
