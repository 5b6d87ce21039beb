"""The ventral stream's object-attribute space: a property of the simulated brain.

Ventral temporal cortex codes objects as distributed, overlapping patterns (Haxby et al. 2001;
Kriegeskorte et al. 2008), and unseen concepts can be decoded through a shared semantic space
(Mitchell et al. 2008; Pereira et al. 2018). Here every kind, seen in training or held out, has
its own vector on a few attribute dimensions (animacy, real-world size, elongation, wheels,
legs, indoor): the prototype in world.json plus a small jitter drawn once per world. The
renderer paints each object's vector over its pixels; object-tuned voxels respond to a linear
mix of those maps. Nothing here reads the project's encoders.
"""

from __future__ import annotations

import numpy as np

from cineneuron.sources.synth.data import world


def attribute_names() -> list[str]:
    return list(world()["object_attributes"]["names"])


def prototypes() -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float32) for k, v in world()["object_attributes"]["kinds"].items()}


def draw_attributes(seed: int) -> dict[str, np.ndarray]:
    """Each kind's attribute vector in this world: prototype + jitter, clipped to 0..1.

    Keyed on the world seed alone (rng([seed, 4])), so every kind has the same vector in every
    split and subject of a world, whichever kinds that world renders."""
    sd = float(world()["object_attributes"]["jitter_sd"])
    rng = np.random.default_rng([seed, 4])
    protos = prototypes()
    jitter = rng.normal(0.0, sd, (len(protos), len(attribute_names())))
    return {k: np.clip(p + j, 0.0, 1.0).astype(np.float32) for (k, p), j in zip(protos.items(), jitter)}
