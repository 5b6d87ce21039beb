"""Sampling of toy-world scenes (objects, actions, background), their captions and motion paths.

A clip is one scene: a background and one or two objects, each with a kind, colour, size and
action. `trajectory` gives an object's pose at any time, so renderer and velocity field agree.
All words come from world.json; all randomness from the numpy Generator passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cineneuron.schemas.superclasses import SUPERCLASSES
from cineneuron.sources.synth.data import world

ACTIONS = ("move_left", "move_right", "move_up", "jump", "rotate", "approach", "still")


@dataclass(frozen=True)
class ObjectSpec:
    kind: str
    colour: str
    size: str  # small | medium | large
    action: str
    x0: float  # start centre, fraction of frame width
    y0: float  # start centre, fraction of frame height (y grows downward)
    scale: float  # side of the object's box, fraction of frame
    travel: float  # distance moved (move_*), jump height (jump), turns (rotate), growth (approach)
    flip: bool  # faces left


@dataclass
class ClipScene:
    background: str
    bg_seed: int
    objects: list[ObjectSpec]
    caption: str = ""
    labels: list[str] = field(default_factory=list)

    @property
    def scene(self) -> str:
        return world()["backgrounds"][self.background]["scene"]

    def factors(self) -> dict:
        first = self.objects[0]
        return {
            "kinds": [o.kind for o in self.objects],
            "action": first.action,
            "colour": first.colour,
            "size": first.size,
            "background": self.background,
            "scene": self.scene,
            "n_objects": len(self.objects),
            "objects": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(o).items()}
                        for o in self.objects],
        }


def allowed_actions(kind: str) -> list[str]:
    return list(world()["kinds"][kind].get("actions", ACTIONS))


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _background_for(rng, kind: str) -> str:
    """Kinds prefer their habitat (a realistic kind-scene correlation), but appear anywhere."""
    bgs = world()["backgrounds"]
    habitat = world()["kinds"][kind]["habitat"]
    if habitat != "any" and rng.random() < world()["habitat_bias"]:
        names = [b for b, v in bgs.items() if v["scene"] == habitat]
    else:
        names = list(bgs)
    return _pick(rng, names)


def _object(rng, kind: str, ground: float, slot: float | None, max_size: str | None = None) -> ObjectSpec:
    """One object; slot (0..1) is a preferred horizontal position when two objects share a clip."""
    spec = world()["kinds"][kind]
    size = _pick(rng, ["small", "medium"] if max_size == "medium" else ["small", "medium", "large"])
    scale = world()["sizes"][size]["scale"] * rng.uniform(0.9, 1.1)
    action = _pick(rng, allowed_actions(kind))
    x0 = slot if slot is not None else rng.uniform(0.35, 0.65)
    if action == "move_left":
        x0, travel = rng.uniform(0.62, 0.78), rng.uniform(0.35, 0.5)
    elif action == "move_right":
        x0, travel = rng.uniform(0.22, 0.38), rng.uniform(0.35, 0.5)
    elif action == "move_up":
        travel = rng.uniform(0.25, 0.4)
    elif action == "jump":
        travel = rng.uniform(0.12, 0.22)
    elif action == "rotate":
        travel = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
    elif action == "approach":
        travel = rng.uniform(0.8, 1.2)
        scale *= 0.7
    else:
        travel = 0.0
    y0 = ground - scale / 2 + rng.uniform(-0.04, 0.02)
    if spec["mover"] == "bird" and action != "move_up":
        y0 = rng.uniform(0.3, 0.5)
    if action == "move_up":
        y0 = max(y0, 0.3 + travel)
    flip = action == "move_left" or (action not in ("move_right",) and rng.random() < 0.5)
    return ObjectSpec(kind, _pick(rng, spec["colours"]), size, action, float(x0), float(y0),
                      float(scale), float(travel), bool(flip))


def sample_scene(rng: np.random.Generator, kinds: list[str]) -> ClipScene:
    """A random scene over the given kinds, with its caption and superclass labels."""
    w = world()
    kind = _pick(rng, kinds)
    bg = _background_for(rng, kind)
    ground = w["backgrounds"][bg]["ground"]
    others = [k for k in kinds if k != kind]
    if others and rng.random() < w["two_object_rate"]:
        left = rng.random() < 0.5
        objs = [_object(rng, kind, ground, 0.3 if left else 0.7, "medium"),
                _object(rng, _pick(rng, others), ground, 0.7 if left else 0.3, "medium")]
    else:
        objs = [_object(rng, kind, ground, None)]
    scene = ClipScene(bg, int(rng.integers(2**31)), objs)
    scene.caption = caption(rng, scene)
    scene.labels = labels_of(scene)
    return scene


def labels_of(scene: ClipScene) -> list[str]:
    """Superclasses of the objects, in SUPERCLASSES order."""
    present = {world()["kinds"][o.kind]["superclass"] for o in scene.objects}
    return [s for s in SUPERCLASSES if s in present]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _noun_phrase(rng, obj: ObjectSpec) -> tuple[str, str]:
    """('a small red car', 'car') with a synonym, size word and colour in the kind's style."""
    spec = world()["kinds"][obj.kind]
    noun = _pick(rng, spec["nouns"])
    size_word = _pick(rng, world()["sizes"][obj.size]["words"])
    pattern = _pick(rng, world()["noun_phrases"][spec["colour_style"]])
    colour = obj.colour + " " if spec["colour_style"] == "adj" else obj.colour
    phrase = pattern.format(size=size_word + " " if size_word else "", colour=colour, noun=noun)
    return _article(" ".join(phrase.split())), noun


def _verb(rng, obj: ObjectSpec) -> tuple[str, str]:
    """(present, gerund), e.g. ('drives left', 'driving left'); mover-specific verbs preferred."""
    verbs = world()["actions"][obj.action]
    mover = world()["kinds"][obj.kind]["mover"]
    pool = verbs.get(mover, []) * 2 + verbs["generic"]
    present, gerund = _pick(rng, pool)
    return present, gerund


def caption(rng: np.random.Generator, scene: ClipScene) -> str:
    w = world()
    pp = _pick(rng, w["backgrounds"][scene.background]["phrases"])
    np1, _ = _noun_phrase(rng, scene.objects[0])
    vp, vpg = _verb(rng, scene.objects[0])
    slots = {"np": np1, "vp": vp, "vpg": vpg, "pp": pp, "Pp": pp}
    if len(scene.objects) == 2:
        slots["np2"], _ = _noun_phrase(rng, scene.objects[1])
        slots["vp2"], _ = _verb(rng, scene.objects[1])
        template = _pick(rng, w["templates"]["two"])
    else:
        template = _pick(rng, w["templates"]["one"])
    return " ".join(template.format(**slots).split())


def trajectory(obj: ObjectSpec, u: float) -> tuple[float, float, float, float]:
    """Pose at clip-time fraction u (0..1, may run past 1): centre x, y, box side (all fractions
    of the frame) and angle in degrees (counter-clockwise on screen)."""
    x, y, s, a = obj.x0, obj.y0, obj.scale, 0.0
    if obj.action == "move_left":
        x -= obj.travel * u
    elif obj.action == "move_right":
        x += obj.travel * u
    elif obj.action == "move_up":
        y -= obj.travel * u
    elif obj.action == "jump":
        y -= obj.travel * abs(np.sin(2 * np.pi * u))  # two hops per clip
    elif obj.action == "rotate":
        a = 360.0 * obj.travel * u
    elif obj.action == "approach":
        g = 1.0 + obj.travel * u
        s *= g
        y += (obj.scale * g - obj.scale) / 2 * 0.5  # grows toward the viewer, base sinks a little
    return x, y, s, a
