"""Source adapters on small fixtures written in each dataset's real layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cineneuron.errors import CNError
from cineneuron.schemas.records import clip_id
from cineneuron.sources import get_source, open_source, source_names
from cineneuron.sources.xlsx import read_xlsx, write_xlsx

FPS = 10


def write_video(path: Path, seconds: float, fps: int = FPS, size: tuple[int, int] = (40, 24), seed: int = 0) -> Path:
    """A tiny H.264 mp4 (w x h, unequal on purpose) whose brightness ramps frame by frame."""
    import imageio.v2 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    writer = iio.get_writer(path, fps=fps, macro_block_size=1, codec="libx264", ffmpeg_log_level="error")
    for i in range(int(round(seconds * fps))):
        writer.append_data(base + np.uint8(i % 150))
    writer.close()
    return path


def spans(clips) -> list[tuple[str, float, float]]:
    return [(c.video, c.start_s, c.end_s) for c in clips]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ------------------------------------------------------------------ registry and contract


def test_registry_names_aliases_and_errors(tmp_path):
    assert source_names() == ["folder", "synth", "cc2017", "cinebrain", "animal-kingdom", "dream-1k", "boldmoments"]
    assert get_source("Animal_Kingdom").name == "animal-kingdom" and get_source("dream1k").name == "dream-1k"
    with pytest.raises(CNError, match="unknown source"):
        get_source("imagenet")
    with pytest.raises(CNError, match="unknown option"):
        open_source("folder", tmp_path, windw_s=3)
    src = open_source("cc2017", tmp_path / "missing")  # stores only: no error yet
    with pytest.raises(CNError, match="not a folder"):
        list(src.clips())


# ------------------------------------------------------------------ folder


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_video(root / "a.mp4", 5.0)  # windows [0,2) [2,4); the 1 s tail is dropped
    write_video(root / "sub" / "b.mp4", 2.0, seed=1)  # exactly one window
    write_video(root / "c.mp4", 1.0, seed=2)  # shorter than a window: no clip
    write_video(root / ".hidden" / "x.mp4", 4.0)
    (root / "broken.mp4").write_text("not a video")
    (root / "notes.txt").write_text("ignored")
    write_csv(root / "captions.csv", ["video", "start_s", "end_s", "caption"],
              [["a.mp4", 0, 3, "a dog runs"], ["a.mp4", 3, 5, "a cat sits"], ["sub/b.mp4", "", "", "a red car"]])
    return root


def test_folder_windows_captions_and_skips(folder_root):
    src = open_source("folder", folder_root)
    clips = list(src.clips())
    assert spans(clips) == [("a.mp4", 0.0, 2.0), ("a.mp4", 2.0, 4.0), ("sub/b.mp4", 0.0, 2.0)]
    # [2,4) overlaps both timed captions by 1 s: the earlier one wins
    assert [c.caption for c in clips] == ["a dog runs", "a dog runs", "a red car"]
    assert {c.split for c in clips} == {"pool"} and {c.source for c in clips} == {"folder"}
    assert clips[2].video_uri == str(folder_root / "sub" / "b.mp4") and all(c.labels is None for c in clips)
    assert [v for v, _ in src.skipped] == ["broken.mp4"]
    assert clips[0].clip_id == clip_id("folder", "a.mp4", 0.0, 2.0)
    assert [c.clip_id for c in open_source("folder", folder_root).clips()] == [c.clip_id for c in clips]  # stable
    desc = src.describe()
    assert desc["clips"] == 3 and desc["splits"] == {"pool": 3} and desc["skipped"][0][0] == "broken.mp4"


def test_folder_options_and_json_captions(folder_root, tmp_path):
    (tmp_path / "caps.json").write_text(json.dumps({"a.mp4": "a whole video caption"}))
    src = open_source("folder", folder_root, window_s=1.0, stride_s=1.0, split="train",
                      captions=str(tmp_path / "caps.json"), source_name="my-clips")
    clips = list(src.clips())
    assert len(clips) == 5 + 2 + 1  # a: 5 windows of 1 s, b: 2, c: 1
    assert {c.caption for c in clips if c.video == "a.mp4"} == {"a whole video caption"}
    assert {c.caption for c in clips if c.video != "a.mp4"} == {None}
    assert {c.source for c in clips} == {"my-clips"} and {c.split for c in clips} == {"train"}
    assert clips[0].clip_id != clip_id("folder", "a.mp4", 0.0, 1.0)  # the source name is part of the id


def test_folder_without_videos(tmp_path):
    with pytest.raises(CNError, match="no video files"):
        list(open_source("folder", tmp_path).clips())


# ------------------------------------------------------------------ cc2017 / synth


@pytest.fixture(scope="module")
def cc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc2017")
    write_video(root / "stimuli" / "seg1.mp4", 6.0)
    write_video(root / "stimuli" / "seg2.mp4", 4.0, seed=1)
    write_video(root / "stimuli" / "seg10.mp4", 2.0, seed=2)
    write_video(root / "stimuli" / "test1.mp4", 4.5, seed=3)
    (root / "stimuli" / "notes.mp4.txt").write_text("ignored")
    side = {"world": {"kinds": ["dog", "car"], "seed": 7},
            "clips": [{"video": "stimuli/seg1.mp4", "start_s": 0.0, "end_s": 2.0, "split": "train",
                       "caption": "a dog jumps", "labels": ["animal"], "factors": {"kind": "dog", "colour": "red"}},
                      {"video": "./stimuli/test1.mp4", "start_s": 2.0, "end_s": 4.0, "caption": "a car drives"}]}
    (root / "annotations.json").write_text(json.dumps(side))
    return root


def test_cc2017_clips_follow_trs(cc_root):
    src = open_source("cc2017", cc_root)
    clips = list(src.clips())
    assert spans(clips) == [("stimuli/seg1.mp4", 0.0, 2.0), ("stimuli/seg1.mp4", 2.0, 4.0), ("stimuli/seg1.mp4", 4.0, 6.0),
                            ("stimuli/seg2.mp4", 0.0, 2.0), ("stimuli/seg2.mp4", 2.0, 4.0),
                            ("stimuli/seg10.mp4", 0.0, 2.0),
                            ("stimuli/test1.mp4", 0.0, 2.0), ("stimuli/test1.mp4", 2.0, 4.0)]
    assert [c.split for c in clips] == ["train"] * 6 + ["test"] * 2
    first, last = clips[0], clips[-1]
    assert (first.caption, first.labels, first.factors) == ("a dog jumps", ["animal"], {"kind": "dog", "colour": "red"})
    assert (last.caption, last.labels) == ("a car drives", None)
    assert clips[1].caption is None and clips[1].factors == {}
    # The fMRI side builds these ids on its own: clip t of segK is [2t, 2t + 2)
    assert clips[4].clip_id == clip_id("cc2017", "stimuli/seg2.mp4", 2.0, 4.0)
    desc = src.describe()
    assert desc["world"] == {"kinds": ["dog", "car"], "seed": 7} and desc["splits"] == {"test": 2, "train": 6}


def test_synth_is_cc2017_under_its_own_name(cc_root):
    a = list(open_source("synth", cc_root).clips())
    b = list(open_source("synth", cc_root, source_name="synth-b").clips())
    assert {c.source for c in a} == {"synth"} and {c.source for c in b} == {"synth-b"}
    assert spans(a) == spans(b) and not set(c.clip_id for c in a) & set(c.clip_id for c in b)


def test_synth_clip_length_from_the_world(tmp_path, cc_root):
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "stimuli" / "seg1.mp4").symlink_to(cc_root / "stimuli" / "seg1.mp4")  # 6 s
    (tmp_path / "annotations.json").write_text(json.dumps({"world": {"clip_s": 3.0}, "clips": []}))
    assert spans(open_source("synth", tmp_path).clips()) == [("stimuli/seg1.mp4", 0.0, 3.0), ("stimuli/seg1.mp4", 3.0, 6.0)]
    assert len(list(open_source("synth", tmp_path, clip_s=1.5).clips())) == 4


def test_cc2017_layout_errors(tmp_path, cc_root):
    with pytest.raises(CNError, match=r"stimuli/seg\*\.mp4"):
        list(open_source("cc2017", tmp_path).clips())
    with pytest.raises(CNError, match="annotations file"):
        list(open_source("cc2017", cc_root, annotations="nope.json").clips())


# ------------------------------------------------------------------ animal kingdom


@pytest.fixture(scope="module")
def ak_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ak")
    header = "original_vido_id video_id frame_id path labels type\n"

    def rows(vid: str, num: int, n_frames: int, labels: str, split: str) -> str:
        return "".join(f"{vid} {num} {i} {vid}/{vid}_f{i + 1:06d}.jpg {labels} {split}\n" for i in range(n_frames))

    (root / "annotation").mkdir()
    (root / "annotation" / "train.csv").write_text(header + rows("BBBBBBBB", 1, 30, "3,7", "train")
                                                   + rows("AAAAAAAA", 0, 25, "7", "train"))
    (root / "annotation" / "val.csv").write_text(header + rows("CCCCCCCC", 2, 20, "12", "val")
                                                 + rows("DDDDDDDD", 3, 10, "3", "val"))
    write_xlsx(root / "annotation" / "df_action.xlsx",
               [["", "category", "action", "index", "segment", "count"],
                [0, "Feeding", "Eating", 3, "head", 1000], [1, "Locomotion", "Walking", 7, "tail", 900],
                [2, "Locomotion", "Keeping still", 12, "tail", 800]])
    write_video(root / "dataset" / "video" / "AAAAAAAA.mp4", 2.5)
    write_video(root / "dataset" / "video" / "BBBBBBBB.mp4", 3.0, seed=1)
    write_video(root / "dataset" / "video" / "CCCCCCCC.mp4", 2.0, seed=2)  # DDDDDDDD.mp4 is missing
    return root


def test_xlsx_round_trip(tmp_path):
    write_xlsx(tmp_path / "t.xlsx", [["a", "b"], [1, "x & y"]])
    assert read_xlsx(tmp_path / "t.xlsx") == [["a", "b"], ["1", "x & y"]]


def test_animal_kingdom_actions_become_captions(ak_root):
    src = open_source("animal-kingdom", ak_root)
    clips = list(src.clips())
    assert spans(clips) == [("dataset/video/AAAAAAAA.mp4", 0.0, 2.5), ("dataset/video/BBBBBBBB.mp4", 0.0, 3.0),
                            ("dataset/video/CCCCCCCC.mp4", 0.0, 2.0)]
    assert [c.caption for c in clips] == ["an animal walking", "an animal eating and walking", "an animal keeping still"]
    assert [c.split for c in clips] == ["pool"] * 3
    assert clips[1].factors == {"actions": ["Eating", "Walking"], "action_ids": [3, 7], "dataset_split": "train"}
    assert src.skipped == [("dataset/video/DDDDDDDD.mp4", "video file not found")]
    dataset = list(open_source("animal-kingdom", ak_root, split="dataset", fps=FPS).clips())
    assert [c.split for c in dataset] == ["train", "train", "test"]
    assert [c.end_s for c in dataset] == [2.5, 3.0, 2.0]  # frame rows / fps, no probing


def test_animal_kingdom_needs_the_action_table(tmp_path):
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "train.csv").write_text("original_vido_id video_id frame_id path labels\n")
    with pytest.raises(CNError, match="df_action.xlsx"):
        list(open_source("animal-kingdom", tmp_path).clips())


# ------------------------------------------------------------------ DREAM-1K


def test_dream1k(tmp_path):
    write_video(tmp_path / "video" / "DREAM-1K_videos" / "1.mp4", 3.0)
    write_video(tmp_path / "video" / "DREAM-1K_videos" / "2.mp4", 2.2, seed=1)
    meta = [{"idx": 0, "video_file": "video/1.mp4", "description": "A man  walks a dog.\nThen he sits.", "source": "YouTube"},
            {"idx": 1, "video_file": "video/2.mp4", "description": "A woman drinks tea."},
            {"idx": 2, "video_file": "video/3.mp4", "description": "missing"}]
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "metadata.json").write_text(json.dumps(meta))
    src = open_source("dream-1k", tmp_path)
    clips = list(src.clips())
    assert spans(clips) == [("video/DREAM-1K_videos/1.mp4", 0.0, 3.0), ("video/DREAM-1K_videos/2.mp4", 0.0, 2.2)]
    assert clips[0].caption == "A man walks a dog. Then he sits." and clips[0].factors == {"idx": 0, "source": "YouTube"}
    assert [c.split for c in clips] == ["pool", "pool"] and src.skipped[0][0] == "video/3.mp4"
    with pytest.raises(CNError, match="json/metadata.json"):
        list(open_source("dream-1k", tmp_path / "video").clips())


# ------------------------------------------------------------------ BOLD Moments


def test_boldmoments(tmp_path):
    meta_dir = tmp_path / "derivatives" / "stimuli_metadata"
    write_video(meta_dir / "mp4_h264" / "0001.mp4", 3.0)
    write_video(meta_dir / "mp4_h264" / "1001.mp4", 3.0, seed=1)
    notes = {"1001": {"set": "test", "text_descriptions": ["A woman rides a bike.", "Someone cycles on a road."]},
             "0001": {"set": "train", "text_descriptions": ["A man knocks over a boy.", "A father and son wrestle on a mat."],
                      "objects": [["sword", "foam", "boy"]]},
             "0002": {"set": "train", "text_descriptions": ["no video for this one"]}}
    (meta_dir / "annotations.json").write_text(json.dumps(notes))
    src = open_source("boldmoments", tmp_path)
    clips = list(src.clips())
    prefix = "derivatives/stimuli_metadata/mp4_h264"
    assert spans(clips) == [(f"{prefix}/0001.mp4", 0.0, 3.0), (f"{prefix}/1001.mp4", 0.0, 3.0)]
    assert [c.split for c in clips] == ["train", "test"]
    assert clips[0].caption == "A man knocks over a boy." and clips[0].labels == ["man"]
    assert clips[1].labels == ["others", "outdoor", "vehicle", "woman"]  # union: "someone", "road" come from the 2nd
    assert clips[0].factors["captions"][1].startswith("A father") and src.skipped[0][0].endswith("0002.mp4")
    inner = list(open_source("boldmoments", meta_dir, caption_index=1).clips())  # root = stimuli_metadata
    assert [c.video for c in inner] == ["mp4_h264/0001.mp4", "mp4_h264/1001.mp4"]
    assert inner[1].caption == "Someone cycles on a road."


# ------------------------------------------------------------------ CineBrain


@pytest.fixture(scope="module")
def cb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinebrain")
    write_video(root / "stimuli" / "s01e01.mp4", 9.0)  # clips [0,4) [4,8)
    write_video(root / "stimuli" / "s01e02.mp4", 8.0, seed=1)
    write_csv(root / "captions.csv", ["video", "start_s", "end_s", "caption"],
              [["stimuli/s01e01.mp4", 0, 4, "two men talk in a living room"],
               ["s01e02.mp4", 4, 8, "a woman opens the fridge"]])
    (root / "splits.json").write_text(json.dumps({"test": ["stimuli/s01e02.mp4"]}))
    return root


def test_cinebrain_four_second_clips(cb_root):
    clips = list(open_source("cinebrain", cb_root).clips())
    assert spans(clips) == [("stimuli/s01e01.mp4", 0.0, 4.0), ("stimuli/s01e01.mp4", 4.0, 8.0),
                            ("stimuli/s01e02.mp4", 0.0, 4.0), ("stimuli/s01e02.mp4", 4.0, 8.0)]
    assert [c.caption for c in clips] == ["two men talk in a living room", None, None, "a woman opens the fridge"]
    assert [c.split for c in clips] == ["train", "train", "test", "test"]


def test_cinebrain_clips_from_behaviour_files_match_the_fmri_ids(cb_root, tmp_path):
    root = tmp_path / "cb"
    (root / "stimuli").mkdir(parents=True)
    for name in ("s01e01.mp4", "s01e02.mp4"):
        (root / "stimuli" / name).symlink_to(cb_root / "stimuli" / name)
    write_csv(root / "sub-01" / "behavior" / "run-1.csv", ["video", "start_s", "stop_s", "video_offset_s", "split"],
              [["stimuli/s01e01.mp4", 10.0, 18.5, 0, "train"], ["stimuli/s01e02.mp4", 20.0, 24.0, 4.0, "test"]])
    write_csv(root / "sub-02" / "behavior" / "run-1.csv", ["video", "start_s", "stop_s"],
              [["stimuli/s01e01.mp4", 0.0, 4.0], ["stimuli/missing.mp4", 4.0, 8.0]])
    src = open_source("cinebrain", root)
    clips = list(src.clips())
    assert spans(clips) == [("stimuli/s01e01.mp4", 0.0, 4.0), ("stimuli/s01e01.mp4", 4.0, 8.0),
                            ("stimuli/s01e02.mp4", 4.0, 8.0)]
    assert [c.split for c in clips] == ["train", "train", "test"]
    fmri_ids = {clip_id("cinebrain", "stimuli/s01e01.mp4", 4.0 * i, 4.0 * i + 4.0) for i in range(2)}
    fmri_ids.add(clip_id("cinebrain", "stimuli/s01e02.mp4", 4.0, 8.0))
    assert {c.clip_id for c in clips} == fmri_ids
    assert src.skipped[0][0] == "stimuli/missing.mp4"
