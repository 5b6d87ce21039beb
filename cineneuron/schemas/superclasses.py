"""The 15 object superclasses of the method (DESIGN section 1), in their fixed order."""

from collections.abc import Iterable

SUPERCLASSES: tuple[str, ...] = (
    "accessory", "animal", "appliance", "electronic", "food", "furniture", "indoor",
    "kitchen", "man", "others", "outdoor", "crowd", "sports", "vehicle", "woman",
)
INDEX = {name: i for i, name in enumerate(SUPERCLASSES)}
N_SUPERCLASSES = len(SUPERCLASSES)


def label_vec(labels: Iterable[str]) -> list[float]:
    """Multi-hot vector of 15 floats; unknown names raise, so typos never pass silently."""
    vec = [0.0] * N_SUPERCLASSES
    for name in labels:
        if name not in INDEX:
            raise ValueError(f"unknown superclass {name!r}; expected one of {', '.join(SUPERCLASSES)}")
        vec[INDEX[name]] = 1.0
    return vec
