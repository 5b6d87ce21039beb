"""Captions -> superclass labels (a data table), and the optional captioner's wiring."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from cineneuron.errors import MissingWeightsError
from cineneuron.labels import captioner_notice, get_captioner, labels_from_caption, match_caption
from cineneuron.labels.coco import LabelTable, coco_from_caption
from cineneuron.schemas.superclasses import SUPERCLASSES, label_vec


@pytest.fixture(scope="module")
def table_json() -> dict:
    return json.loads((resources.files("cineneuron.labels") / "coco_superclass.json").read_text())


@pytest.mark.parametrize("caption, labels", [
    # "kitchen" is a room (indoor) that shows kitchenware (kitchen): both, by decision
    ("a small dog jumps in a kitchen", ["animal", "indoor", "kitchen"]),
    ("A red car drives left along a road.", ["outdoor", "vehicle"]),
    ("a man eats a hot dog", ["food", "man"]),  # bigram first: not an animal
    ("a child hugs a teddy bear", ["indoor", "others"]),  # person of unstated gender -> others
    ("She holds a cell phone near the traffic light", ["electronic", "outdoor"]),
    ("a lion and a monkey by the river", ["animal", "outdoor"]),  # animals outside COCO
    ("a crowd watches a soccer game in a stadium", ["crowd", "outdoor", "sports"]),
    ("a girl and her grandmother bake a cake in the oven", ["appliance", "food", "woman"]),
    ("a computer mouse on a desk", ["electronic", "furniture"]),
    ("a mouse runs across the field", ["animal", "outdoor"]),
])
def test_captions_to_superclasses(caption, labels):
    assert labels_from_caption(caption) == labels


@pytest.mark.parametrize("caption, labels", [
    ("two puppies", ["animal"]), ("three dogs", ["animal"]), ("mice and geese", ["animal"]),
    ("knives", ["kitchen"]), ("hot dogs", ["food"]), ("teddy bears", ["indoor"]), ("benches", ["outdoor"]),
    ("two men", ["man"]), ("women", ["woman"]), ("boys and girls", ["man", "woman"]),
    ("kids", ["crowd"]), ("children", ["crowd"]), ("people", ["crowd"]), ("players", ["crowd"]),
    ("a player", ["others"]), ("skiers", ["crowd", "sports"]), ("buses", ["vehicle"]),
])
def test_plurals(caption, labels):
    assert labels_from_caption(caption) == labels


def test_unknown_empty_and_noise():
    assert labels_from_caption("zxq blorp fnord") == []
    assert labels_from_caption("") == [] and labels_from_caption(None) == []
    assert labels_from_caption("The DOG's bowl!!!") == ["animal", "kitchen"]  # case, possessive, punctuation
    assert labels_from_caption("hot-dog") == ["food"]
    assert labels_from_caption("the camera pans to the left of the screen") == []  # viewpoint words


def test_colour_words_need_no_following_noun():
    assert labels_from_caption("an orange cat") == ["animal"]
    assert labels_from_caption("she peels an orange.") == ["food"]
    assert labels_from_caption("an orange and an apple") == ["food"]


def test_matches_report_phrases_and_coco_categories():
    ms = match_caption("Two puppies chase a teddy bear past a fire hydrant")
    assert [(m.text, m.key, m.coco, m.plural) for m in ms] == [
        ("puppies", "puppy", "dog", True), ("teddy bear", "teddy bear", "teddy bear", False),
        ("fire hydrant", "fire hydrant", "fire hydrant", False)]
    assert coco_from_caption("a man on a bike with a dog") == ["bicycle", "dog"]  # "man" is not COCO's person
    assert coco_from_caption("a person on a bike with a dog") == ["bicycle", "dog", "person"]


def test_labels_are_valid_superclasses_and_sorted():
    labels = labels_from_caption("a woman, a man and a crowd with a dog, a car, a pizza, a cup, a laptop, "
                                 "a fridge, a chair, a clock, a bag and a ball in the street")
    assert labels == sorted(labels) and len(labels) == len(set(labels)) == 14
    assert set(SUPERCLASSES) - set(labels) == {"others"}
    assert sum(label_vec(labels)) == 14


def test_the_table_is_data(table_json):
    cats = table_json["categories"]
    assert len(cats) == 80 and len({c["id"] for c in cats}) == 80 and len({c["name"] for c in cats}) == 80
    assert set(table_json["superclasses"]) == set(SUPERCLASSES)
    assert {c["superclass"] for c in cats} <= set(SUPERCLASSES)
    assert set(table_json["coco_synonyms"]) == {c["name"] for c in cats}  # every category has its words
    for cat in cats:
        assert labels_from_caption(table_json["coco_synonyms"][cat["name"]][0]) == [cat["superclass"]]
    reachable = {s for sups in table_json["words"].values() for s in sups} | {c["superclass"] for c in cats}
    assert reachable == set(SUPERCLASSES)

    edited = copy.deepcopy(table_json)
    edited["words"]["wug"] = ["animal"]
    table = LabelTable.from_json(edited)
    assert labels_from_caption("two wugs") == []  # the packaged table does not know it
    assert [m.superclasses for m in match_caption("two wugs", table)] == [("animal",)]
    edited["words"]["wug"] = ["animals"]
    with pytest.raises(ValueError, match="unknown superclasses"):
        LabelTable.from_json(edited)


def test_captioner_is_optional(tmp_path):
    notes: list[str] = []
    assert get_captioner(None, notify=notes.append) is None
    assert get_captioner({"captioner": {"name": "none"}}, notify=notes.append) is None
    assert len(notes) == 2 and "captioner" in notes[0]
    assert "unknown captioner" in captioner_notice({"name": "blip", "model_dir": str(tmp_path)})
    with pytest.raises(MissingWeightsError, match="config.json"):
        get_captioner({"captioner": {"name": "qwen2.5-vl", "model_dir": str(tmp_path / "nope")}})


def _toy_qwen(folder) -> None:
    """A tiny random Qwen2.5-VL with a word-level tokenizer, saved like a real model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor, Qwen2VLImageProcessor)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    vocab = {w: i for i, w in enumerate(specials + "user assistant describe this video a dog runs [UNK]".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=specials[1:])
    fast.image_token, fast.video_token = "<|image_pad|>", "<|video_pad|>"
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
                "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=fast,
                        video_processor=Qwen2VLVideoProcessor(), chat_template=template).save_pretrained(folder)
    ids = {s: fast.convert_tokens_to_ids(s) for s in specials}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<|im_end|>"],
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=56, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(folder)


def test_qwen_captioner_runs_on_a_toy_model(tmp_path):
    pytest.importorskip("transformers")
    import numpy as np

    _toy_qwen(tmp_path / "qwen")
    cap = get_captioner({"captioner": {"name": "qwen2.5-vl", "model_dir": str(tmp_path / "qwen"), "max_new_tokens": 4,
                                       "prompt": "describe this video"}})
    frames = np.random.default_rng(0).integers(0, 255, (3, 56, 72, 3), dtype=np.uint8)  # odd T, unequal H/W
    text = cap.caption(frames)
    assert isinstance(text, str) and len(text.split()) <= 4
