"""generate(): render a toy world, simulate subjects watching it, write it in the cc2017 layout.

Randomness is keyed, not sequential: clip t of segment i of a split is drawn from
rng([seed, 1, split, i, t]); subject k from rng([seed, 2, k]); the noise of one repeat from
rng([seed, 3, k, split, i, repeat]). So a world with more subjects has the same first subject, and
the same seed always gives the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cineneuron.errors import CNError
from cineneuron.sources.synth import hrf, writer
from cineneuron.sources.synth.data import category_names, kind_names, sizes, superclass_of, world
from cineneuron.sources.synth.features import GRID, channel_names, clip_features
from cineneuron.sources.synth.render import render_clip
from cineneuron.sources.synth.scenes import ClipScene, sample_scene
from cineneuron.sources.synth.subjects import (TYPES, W_OBJECT, WEIGHTS, Subject, channel_norms, clean_run,
                                                make_subject, noisy_run)
from cineneuron.sources.synth.ventral import attribute_names, draw_attributes

CLIP_S = 2.0
TRAIN_REPEATS, TEST_REPEATS = 2, 10
SPLIT_CODE = {"train": 0, "test": 1}
TRUTH_MAX_ELEMENTS = 30_000_000  # noise-free runs go into truth/ only below this size

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class WorldConfig:
    size: str
    clips_per_segment: int
    n_train_segments: int
    n_test_segments: int
    subjects: int
    voxels: int
    tr: float
    snr: float
    kinds: tuple[str, ...]
    seed: int
    frame_size: int
    fps: int
    clip_s: float = CLIP_S
    holdout_kinds: tuple[str, ...] = ()  # kinds kept out of the training segments (memory-expansion test)

    def kinds_for(self, split: str) -> list[str]:
        return [k for k in self.kinds if split != "train" or k not in self.holdout_kinds]

    @property
    def frames_per_clip(self) -> int:
        return int(round(self.clip_s * self.fps))

    @property
    def volumes_per_run(self) -> int:
        return hrf.n_volumes(self.clips_per_segment * self.clip_s, self.tr)

    def segments(self) -> list[tuple[str, str, int]]:
        """(name, split, index within split): seg1..N for training, test1..M for testing."""
        return ([(f"seg{i + 1}", "train", i) for i in range(self.n_train_segments)]
                + [(f"test{i + 1}", "test", i) for i in range(self.n_test_segments)])


def resolve_config(size, clips, subjects, voxels, tr, snr, kinds, seed, frame_size, fps) -> WorldConfig:
    """Named size + overrides -> a validated config. The clip count rounds down to whole segments
    of equal length, since every run has the same number of volumes (as in cc2017)."""
    table = sizes()
    name = size or "demo"
    if name not in table:
        raise CNError(f"unknown world size {name!r}; choose one of {', '.join(table)}")
    base = table[name]
    total = base["clips"] if clips is None else int(clips)
    if total < 2:
        raise CNError(f"--clips must be at least 2 (one train and one test clip), got {total}")
    frac = float(base["test_fraction"])
    # Whole segments of equal length; enough of them that the test share is about `frac`.
    n_segs = min(total, max(2, int(round(total / base["clips_per_segment"])), int(round(1 / frac))))
    per = total // n_segs
    n_test_segs = min(n_segs - 1, max(1, int(round(n_segs * frac))))
    n_train_segs = n_segs - n_test_segs
    frame_size = int(frame_size or base["frame_size"])
    fps = int(fps or base["fps"])
    snr = float(base["snr"] if snr is None else snr)
    voxels = int(base["voxels"] if voxels is None else voxels)
    _check(subjects, voxels, tr, snr, frame_size, fps)
    cfg = WorldConfig(name, per, n_train_segs, n_test_segs, int(subjects), voxels, float(tr), snr,
                      _check_kinds(kinds), int(seed), frame_size, fps)
    if cfg.volumes_per_run < 1:
        raise CNError(f"runs of {per} clips ({per * CLIP_S:g} s) hold no volume at TR {tr:g} s; ask for more --clips")
    return cfg


def _check(subjects, voxels, tr, snr, frame_size, fps) -> None:
    if subjects < 0:
        raise CNError(f"--subjects must be 0 or more, got {subjects}")
    if voxels < 1:
        raise CNError(f"--voxels must be at least 1, got {voxels}")
    if not (0 < tr <= 10):
        raise CNError(f"--tr must be in (0, 10] seconds, got {tr}")
    if not snr > 0:
        raise CNError(f"--snr must be positive, got {snr}")
    if frame_size < 16 or frame_size % 2:
        raise CNError(f"frame size must be an even number of pixels >= 16 (H.264 needs even sides), got {frame_size}")
    if fps < 1 or abs(CLIP_S * fps - round(CLIP_S * fps)) > 1e-9:
        raise CNError(f"fps must be a positive integer, got {fps}")


def _check_kinds(kinds) -> tuple[str, ...]:
    if kinds is None:
        return tuple(kind_names())
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in world()["kinds"]]
    if unknown or not kinds:
        raise CNError(f"unknown object kind(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                      f"choose from {', '.join(kind_names())}")
    return tuple(dict.fromkeys(kinds))


def generate(out_dir, *, size: str | None = None, clips: int | None = None, subjects: int = 1,
             voxels: int | None = None, tr: float = 2.0, snr: float | None = None,
             kinds: list[str] | None = None, seed: int = 0, frame_size: int | None = None,
             fps: int | None = None, progress: Progress | None = None,
             holdout_kinds: list[str] | None = None) -> dict:
    """Write a synthetic world with `subjects` simulated subjects (0: clips and sidecar only).

    holdout_kinds: kinds that never appear in the training segments but do in the test ones,
    so a category can be absent from training and from the training memories.

    Returns a summary: clip, segment, subject and voxel counts, volumes per run, wall seconds.
    """
    t0 = time.perf_counter()
    cfg = resolve_config(size, clips, subjects, voxels, tr, snr, kinds, seed, frame_size, fps)
    if holdout_kinds:
        held = _check_kinds(holdout_kinds)
        if not [k for k in cfg.kinds if k not in held]:
            raise CNError("--holdout would leave no kind for the training segments")
        cfg = replace(cfg, holdout_kinds=held)
    root = Path(out_dir)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    (root / "truth").mkdir(exist_ok=True)
    writer.clear_outputs(root)
    segments = cfg.segments()
    total = len(segments) * cfg.clips_per_segment + cfg.subjects * len(segments) + 1
    tick = (lambda what: progress(1, total, what)) if progress else (lambda what: None)

    clips, feats, flags = [], {}, {}
    attrs = draw_attributes(cfg.seed)  # the ventral attribute space of this world, drawn once
    for name, split, index in segments:
        seg_clips, feats[name], flags[name] = _render_segment(cfg, root, name, split, index, tick, attrs)
        clips += seg_clips
    _write_stimulus_truth(root, cfg, clips, feats)
    writer.write_json(root / "truth" / "attributes.json", attributes_truth(attrs, cfg))
    if cfg.subjects:
        norms = channel_norms(list(feats.values()))
        for k in range(1, cfg.subjects + 1):
            _simulate_subject(cfg, k, root, feats, flags, norms, tick)
    writer.write_json(root / "annotations.json", {"world": _world_params(cfg), "clips": clips})
    tick("annotations")
    return _summary(cfg, root, time.perf_counter() - t0)


def attributes_truth(attrs: dict, cfg: WorldConfig) -> dict:
    """truth/attributes.json: the ventral object-attribute vector of every kind in this world."""
    return {"_about": "Object-attribute space of the simulated ventral stream (sources/synth/ventral.py): each "
                      "kind's vector, drawn once per world (prototype + jitter). Object-tuned voxels (type "
                      "'object') respond to coverage times a linear mix of these; their weights are "
                      "attribute_tuning in truth/subject*.npz.",
            "names": attribute_names(), "seed": cfg.seed,
            "held_out_of_training": list(cfg.holdout_kinds),
            "kinds": {k: [round(float(x), 6) for x in v] for k, v in attrs.items()}}


def _render_segment(cfg: WorldConfig, root: Path, name: str, split: str, index: int, tick, attrs: dict):
    """Render one segment's clips into stimuli/{name}.mp4; returns clip records, features
    (T, C, G, G) and indoor/outdoor flags (T, 2) at frame rate."""
    video = writer.VideoWriter(root / "stimuli" / f"{name}.mp4", cfg.fps)
    records, feats, flags, prev = [], [], [], None
    try:
        for t in range(cfg.clips_per_segment):
            rng = np.random.default_rng([cfg.seed, 1, SPLIT_CODE[split], index, t])
            scene = sample_scene(rng, cfg.kinds_for(split))
            clip = render_clip(scene, cfg.frame_size, cfg.fps, cfg.clip_s, attrs)
            video.append(clip.frames)
            f, prev = clip_features(clip, prev)
            feats.append(f)
            indoor = scene.scene == "indoor"
            flags.append(np.tile(np.array([indoor, not indoor], np.float32), (len(f), 1)))
            records.append(_record(scene, name, split, t, cfg.clip_s))
            tick(f"render {name}")
    finally:
        video.close()
    return records, np.concatenate(feats), np.concatenate(flags)


def _record(scene: ClipScene, segment: str, split: str, t: int, clip_s: float) -> dict:
    return {
        "video": f"stimuli/{segment}.mp4", "start_s": round(t * clip_s, 3), "end_s": round((t + 1) * clip_s, 3),
        "split": split, "caption": scene.caption, "labels": scene.labels, "factors": scene.factors(),
        "segment": segment, "index": t,
    }


def _simulate_subject(cfg: WorldConfig, k: int, root: Path, feats, flags, norms, tick) -> None:
    subject = make_subject(np.random.default_rng([cfg.seed, 2, k]), cfg.voxels, cfg.snr, cfg.tr)
    n_vol = cfg.volumes_per_run
    clean = {}
    for name, _, _ in cfg.segments():
        clean[name] = clean_run(subject, feats[name], flags[name], norms, cfg.fps, cfg.tr, n_vol)
        tick(f"subject{k} {name}")
    train = [s for s in cfg.segments() if s[1] == "train"]
    test = [s for s in cfg.segments() if s[1] == "test"]
    stacked = np.concatenate([clean[name][0] for name, _, _ in train])  # (n_train * n_vol, V)
    mu, sd = stacked.mean(0), stacked.std(0)
    live = subject.responsive & (sd > 1e-7)  # a voxel tuned only to an absent category is silent
    signal = {name: np.where(live, (bold - mu) / np.where(live, sd, 1.0), 0.0).astype(np.float32)
              for name, (bold, _) in clean.items()}  # (n_vol, V), unit sd over training runs

    data = [np.empty((cfg.voxels, n_vol, len(train)), np.float32) for _ in range(TRAIN_REPEATS)]
    for name, split, i in train:
        for rep in range(TRAIN_REPEATS):
            rng = np.random.default_rng([cfg.seed, 3, k, SPLIT_CODE[split], i, rep])
            data[rep][:, :, i] = noisy_run(subject, signal[name], rng, cfg.tr).T
    tests = {}
    for name, split, i in test:
        runs = np.empty((TEST_REPEATS, n_vol, cfg.voxels), np.float32)  # HDF5 order, see writer
        for rep in range(TEST_REPEATS):
            rng = np.random.default_rng([cfg.seed, 3, k, SPLIT_CODE[split], i, rep])
            runs[rep] = noisy_run(subject, signal[name], rng, cfg.tr)
        tests[name] = runs
    fmri = root / f"subject{k}" / "fmri"
    fmri.mkdir(parents=True, exist_ok=True)
    writer.write_training_mat(fmri / "training_fmri.mat", data[0], data[1])
    writer.write_testing_mat(fmri / "testing_fmri.mat", tests)
    _write_subject_truth(root / "truth" / f"subject{k}.npz", subject, live, signal, clean, train, test, mu, sd)


def _write_subject_truth(path, subject: Subject, live, signal, clean, train, test, mu, sd) -> None:
    arrays = {k: v for k, v in subject.arrays().items()}
    arrays.update(
        responsive=live, type_names=np.array(TYPES), weight_names=np.array(WEIGHTS),
        category_names=np.array(category_names()),
        motion_dir_deg=subject.motion_dir.astype(np.float32) * 45.0,
        category_tuning=subject.weights[:, 3:6], scene_tuning=subject.weights[:, 6:8],
        object_tuning=subject.weights[:, W_OBJECT], attribute_tuning=subject.weights[:, W_OBJECT + 1:],
        attribute_names=np.array(attribute_names()),
        signal_mean=mu, signal_sd=sd,
    )
    n = subject.n_voxels * next(iter(signal.values())).shape[0] * (len(train) + len(test))
    if n <= TRUTH_MAX_ELEMENTS:  # (V, n_vol, n_segments), like data1 of training_fmri.mat
        for split, segs in (("train", train), ("test", test)):
            arrays[f"clean_{split}"] = np.stack([signal[name].T for name, _, _ in segs], axis=-1)
            arrays[f"neural_{split}"] = np.stack([clean[name][1].T for name, _, _ in segs], axis=-1)
    writer.write_npz(path, arrays)


def _write_stimulus_truth(root: Path, cfg: WorldConfig, clips: list[dict], feats: dict) -> None:
    """Per-clip mean stimulus features (n_clips, C, G, G), in annotation order."""
    per_clip = [f.reshape(cfg.clips_per_segment, cfg.frames_per_clip, *f.shape[1:]).mean(1)
                for f in feats.values()]
    writer.write_npz(root / "truth" / "stimulus.npz", {
        "features": np.concatenate(per_clip).astype(np.float32),
        "channels": np.array(channel_names()),
        "video": np.array([c["video"] for c in clips]),
        "index": np.array([c["index"] for c in clips]),
    })


def _world_params(cfg: WorldConfig) -> dict:
    params = asdict(cfg)
    params["kinds"] = list(cfg.kinds)
    params["holdout_kinds"] = list(cfg.holdout_kinds)
    params.update(
        generator="cineneuron.sources.synth", format_version=1, layout="cc2017",
        volumes_per_run=cfg.volumes_per_run, frames_per_clip=cfg.frames_per_clip,
        train_segments=[n for n, s, _ in cfg.segments() if s == "train"],
        test_segments=[n for n, s, _ in cfg.segments() if s == "test"],
        train_repeats=TRAIN_REPEATS, test_repeats=TEST_REPEATS,
        kind_superclass={k: superclass_of()[k] for k in kind_names()},
        hrf={"model": "double-gamma", "peak_s": 5.0, "peak_sd_s": 0.35, "undershoot_peak_s": hrf.UNDERSHOOT_PEAK_S,
             "undershoot_ratio": round(hrf.UNDERSHOOT_RATIO, 6)},
        sampling="volume j is the mean BOLD over [j*tr, (j+1)*tr); clip t covers [t*clip_s, (t+1)*clip_s)",
        fmri_units="z-scored per run and voxel",
        feature_channels=channel_names(), feature_grid=GRID,
        object_attributes={"names": attribute_names(), "file": "truth/attributes.json"},
    )
    return params


def _summary(cfg: WorldConfig, root: Path, seconds: float) -> dict:
    n_train = cfg.n_train_segments * cfg.clips_per_segment
    n_test = cfg.n_test_segments * cfg.clips_per_segment
    return {
        "out_dir": str(root), "size": cfg.size, "seed": cfg.seed,
        "n_clips": n_train + n_test, "n_train_clips": n_train, "n_test_clips": n_test,
        "train_segments": cfg.n_train_segments, "test_segments": cfg.n_test_segments,
        "clips_per_segment": cfg.clips_per_segment, "volumes_per_run": cfg.volumes_per_run,
        "subjects": cfg.subjects, "voxels": cfg.voxels if cfg.subjects else 0, "tr": cfg.tr,
        "frame_size": cfg.frame_size, "fps": cfg.fps, "seconds": round(seconds, 2),
    }
