"""Ingest benchmark: end-to-end clips/s against decode-only and encode-only, and decord vs PyAV.

    python bench/ingest_bench.py [--clips 300]

The pipeline overlaps decoding (a background thread driving the guarded reader) with encoding
and writing, so end-to-end throughput should approach the slower stage alone (target >= 0.8).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args()
    from cineneuron.ingest.clips import Decoded, IngestOptions, _jpeg, encode_batch, ingest_clips, prepare_encoders
    from cineneuron.sources import get_source
    from cineneuron.sources.synth import generate
    from cineneuron.sources.video import read_clip_frames
    from cineneuron.store import Store

    work = Path(tempfile.mkdtemp(prefix="cn-ingest-bench-"))
    try:
        generate(str(work / "world"), size="demo", clips=a.clips, subjects=0, seed=0)
        src = get_source("synth")(str(work / "world"))
        specs = list(src.clips())
        store = Store.create(str(work / "store"), "classic")
        n, size = store.n_frames, store.preset.frames.size
        by_video: dict[str, list] = {}
        for s in specs:
            by_video.setdefault(s.video_uri, []).append(s)

        t = time.perf_counter()
        decoded = []
        for uri, ss in by_video.items():
            frames = read_clip_frames(uri, [(s.start_s, s.end_s) for s in ss], n, size)
            decoded += [Decoded(s, f, _jpeg(f, 8)) for s, f in zip(ss, frames)]  # the decode thread's work
        dec = len(specs) / (time.perf_counter() - t)

        encoders = prepare_encoders(store)
        encode_batch(encoders, decoded[:2])  # warm-up (model load)
        t = time.perf_counter()
        for i in range(0, len(decoded), a.batch_size):
            encode_batch(encoders, decoded[i:i + a.batch_size])
        enc = len(specs) / (time.perf_counter() - t)

        rep = ingest_clips(store, src, IngestOptions(batch_size=a.batch_size))
        e2e_all = rep.n_ok / rep.seconds
        e2e = rep.n_ok / (rep.seconds - rep.setup_s)  # the stages above exclude model loading too
        print(f"ingest of {len(specs)} synthetic 2 s clips ({n} frames at {size} px, classic preset, batch {a.batch_size}):")
        print(f"  decode only   {dec:7.1f} clips/s")
        print(f"  encode only   {enc:7.1f} clips/s")
        print(f"  end to end    {e2e:7.1f} clips/s (decode + encode + write + optimize; {e2e_all:.1f} clips/s with the "
              f"{rep.setup_s:.1f} s of model loading)")
        print(f"  end-to-end / slower stage = {e2e / min(dec, enc):.2f} (target >= 0.8)")

        print("\ndecord vs PyAV on the real videos (every 2 s window, 16 frames at 224 px, median of 3):")
        from cineneuron.sources.video import probe, windows

        for name in ("bikes.mp4", "bigbuckbunny.mp4"):
            path = VIDEOS / name
            spans = windows(probe(path).duration_s, 2.0, 2.0)
            row = []
            for backend in ("decord", "pyav"):
                ts = []
                for _ in range(3):
                    t = time.perf_counter()
                    read_clip_frames(str(path), spans, 16, 224, backend=backend)
                    ts.append(time.perf_counter() - t)
                row.append(len(spans) * 16 / np.median(ts))
            print(f"  {name:<18} decord {row[0]:7.1f} frames/s   pyav {row[1]:7.1f} frames/s   ratio {row[0] / row[1]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
