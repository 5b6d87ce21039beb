"""The cc2017 adapter on a simulated world: the reliability mask against the simulator's truth."""

from __future__ import annotations

import numpy as np


def test_reliability_mask_keeps_mostly_responsive_voxels(tmp_path):
    from cineneuron.fmri import CC2017Config, load_cc2017
    from cineneuron.sources.synth import generate

    generate(str(tmp_path), size="small", clips=300, seed=2)
    data = load_cc2017(str(tmp_path), 1, CC2017Config(source="synth"))
    truth = np.load(tmp_path / "truth" / "subject1.npz")["responsive"].astype(bool)
    kept = data.mask
    precision = (kept & truth).sum() / max(kept.sum(), 1)
    recall = (kept & truth).sum() / truth.sum()
    print(f"reliability mask: {kept.sum()} of {kept.size} voxels kept; {truth.sum()} responsive in the simulator; "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert kept.sum() > 0.1 * truth.sum()
    assert precision > 0.9
