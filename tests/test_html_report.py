"""The HTML report opens offline in headless Chromium: every image and video loads."""

from __future__ import annotations

import numpy as np
import pytest

from browser import chromium, loaded_media, screenshot

needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")


def _page(tmp_path, broken: bool = False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cineneuron.frames import write_mp4
    from cineneuron.eval.html import Section, video_codec, write_html

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    (tmp_path / "plots").mkdir()
    fig.savefig(tmp_path / "plots" / "p.png")
    plt.close(fig)
    frames = (np.random.default_rng(0).random((8, 32, 48, 3)) * 255).astype(np.uint8)
    vid = write_mp4(frames, tmp_path / "v.mp4")
    assert video_codec(vid) == ("h264", "yuv420p")
    page = write_html(tmp_path, "t", [Section("s", ["p"], [(["a", "b"], [["1", "2"]])],
                                              images=[(str(tmp_path / "plots" / "p.png"), "plot")], videos=[(str(vid), "v")])])
    if broken:
        (tmp_path / "v.mp4").write_bytes(b"not a video")
        (tmp_path / "plots" / "p.png").unlink()
    return page


def test_html_refuses_links_outside_the_report(tmp_path):
    from cineneuron.eval.html import Section, write_html

    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="inside the report"):
        write_html(tmp_path / "r", "t", [Section("s", images=[(str(tmp_path / "x.png"), "x")])])


@needs_chromium
def test_chromium_sees_every_image_and_video_and_catches_broken_ones(tmp_path):
    good = loaded_media(_page(tmp_path / "good" if (tmp_path / "good").mkdir() is None else None))
    assert [i["ok"] for i in good["imgs"]] == [True] and good["imgs"][0]["w"] > 0
    assert [v["ok"] for v in good["vids"]] == [True] and (good["vids"][0]["w"], good["vids"][0]["h"]) == (48, 32)
    (tmp_path / "bad").mkdir()
    bad = loaded_media(_page(tmp_path / "bad", broken=True))
    assert not bad["imgs"][0]["ok"] and not bad["vids"][0]["ok"]
    shot = screenshot(tmp_path / "good" / "index.html", tmp_path / "shot.png", "400,300")
    assert shot.stat().st_size > 1000
