"""The report writer: every file written, the Markdown rows, the paper table's verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cineneuron.eval.frames import psnr, ssim
from cineneuron.eval.report import flatten_results, paper_table, write_report
from cineneuron.eval.retrieval import retrieval_both
from cineneuron.eval.semantic import n_way_suite

T, H, W = 6, 24, 40


def _results(seed: int, noise: float) -> dict:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(320, 16))
    pred = target + noise * rng.normal(size=target.shape)
    gt_p = rng.dirichlet(np.ones(60), size=8)
    rec_p = 0.5 * gt_p + 0.5 * rng.dirichlet(np.ones(60), size=8)
    gts = [rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8) for _ in range(2)]
    recons = [np.clip(g + rng.normal(0, 40 * noise, g.shape), 0, 255).astype(np.uint8) for g in gts]
    return {
        "retrieval": retrieval_both(pred, target, n_subsets=3, return_ranks=True),
        "semantic": {"video": n_way_suite(rec_p, gt_p, n_trials=10)},
        "clip_pcc": {"adjacent": {"value": 0.9, "std": 0.01, "variant": "clip-pcc adjacent pairs"}},
        "ssim": {"rgb": ssim(gts, recons)},
        "psnr": {"rgb": psnr(gts, recons), "gray": psnr(gts, gts, color="gray")},  # identical → inf
        "dtc": 0.8,
    }


@pytest.fixture(scope="module")
def videos():
    rng = np.random.default_rng(9)
    gt = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    return [
        (gt, gt[::-1], [gt[:3], gt[::2]], ["a red car drives left", "recon", "memory one"]),
        (gt[:4], np.zeros((9, 16, 16, 3), np.float32), None, "a ball jumps"),
    ]


def test_write_report_writes_every_file(tmp_path, videos):
    results = {**_results(0, 1.0), "notices": ["skipped DTC: DINOv2 weights not found (no path configured)"]}
    baselines = {"ridge": _results(1, 3.0), "text-only": _results(2, 6.0)}
    files = write_report(tmp_path, results, config={"dataset": "toy", "preset": "classic"}, store_version=7,
                         checkpoint="ckpt/brain.safetensors", baselines=baselines, videos=videos)

    doc = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: inf became null
    assert doc["store_version"] == 7 and doc["checkpoint"] == "ckpt/brain.safetensors"
    assert doc["config"]["preset"] == "classic" and doc["notices"][0].startswith("skipped DTC")
    assert doc["variants"]["retrieval.fmri_to_clip"].startswith("top1-of-300, fmri_to_clip")
    assert doc["retrieval_protocol"] == "neuroclips"
    assert doc["results"]["psnr"]["gray"]["value"] is None
    assert set(doc["baselines"]) == {"ridge", "text-only"}

    md = (tmp_path / "metrics.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    flat = flatten_results(results)
    assert set(flat) <= set(rows)  # one row per metric
    fwd = rows["retrieval.fmri_to_clip"].split(" | ")
    assert fwd[2] == f"{results['retrieval']['fmri_to_clip']['value']:.4f}" and fwd[5] == f"{1 / 300:.4f}"
    assert fwd[7] == f"{baselines['ridge']['retrieval']['fmri_to_clip']['value']:.4f}"
    assert "- retrieval protocol: neuroclips (contiguous blocks of 300" in md
    assert "| psnr.gray |" in md and " inf " in rows["psnr.gray"]
    assert "| metric | variant | ours | ± std | ± sem | chance | n | ridge | text-only |" in md
    paper_rows = [r for r in md.splitlines() if "simulated world" in r]
    assert len(paper_rows) == 8 - 0 and all("| no |" in r for r in paper_rows)
    assert "| retrieval top-1 of 300, peers' forward = ours clip_to_fmri | 0.283 | 0.222 |" in md

    for key in flat:
        png = tmp_path / "plots" / f"{key.replace('.', '_')}.png"
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "retrieval_fmri_to_clip_ranks.png").is_file()
    assert len(files["plots"]) == len(flat) + 2  # + two rank histograms

    import imageio.v3 as iio

    grid = iio.imread(tmp_path / "grid.mp4")  # (T, H, W, 3): header + 2 rows of 96 + captions, 4 columns
    assert grid.shape[0] == T and grid.shape[2] == 4 * 96
    assert grid.shape[1] == 14 + 2 * (96 + 14)  # exact size: H.264 yuv420p needs only even sides


def test_paper_table_comparable_only_when_everything_matches():
    results = _results(0, 1.0)
    results["dtc"] = {"value": 0.9, "variant": "dtc vbench: mean of cos to previous and to first, clamped at 0"}
    rows = {r["key"]: r for r in paper_table(results, "cc2017")}
    assert rows["retrieval.clip_to_fmri"]["comparable"] and rows["retrieval.fmri_to_clip"]["comparable"]
    assert rows["semantic.video.2way.peer"]["comparable"] and rows["semantic.video.50way.peer"]["comparable"]
    assert rows["clip_pcc.adjacent"]["comparable"] and rows["dtc"]["comparable"]
    assert not rows["ssim.rgb"]["comparable"] and "resolution" in rows["ssim.rgb"]["why_not"]

    small = {"retrieval": retrieval_both(np.eye(40), np.eye(40))}  # a pool of 40, not 300
    r = {x["key"]: x for x in paper_table(small, "cc2017")}
    assert not r["retrieval.clip_to_fmri"]["comparable"] and "variant" in r["retrieval.clip_to_fmri"]["why_not"]
    assert r["dtc"]["why_not"] == "not computed"
    other = {x["key"]: x for x in paper_table(results, "cinebrain")}
    assert "is not cc2017" in other["retrieval.clip_to_fmri"]["why_not"]
