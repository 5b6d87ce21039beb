"""Superclass labels for clips: caption words -> 80 COCO categories -> the 15 superclasses.

    labels_from_caption("a small dog jumps in a kitchen")  # ['animal', 'indoor', 'kitchen']

The vocabulary is data (`coco_superclass.json`); see `cineneuron.labels.coco` for the rules.
Clips with no caption can be captioned first by an optional vision-language model
(`get_captioner`, Qwen2.5-VL from a local folder). Importing this package stays light: no torch.
"""

from cineneuron.labels.captioner import Captioner, QwenVLCaptioner, captioner_notice, get_captioner
from cineneuron.labels.coco import coco_from_caption, labels_from_caption, load_table, match_caption

__all__ = ["Captioner", "QwenVLCaptioner", "captioner_notice", "coco_from_caption", "get_captioner",
           "labels_from_caption", "load_table", "match_caption"]
