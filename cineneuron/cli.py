"""`cn`: the command line. Thin: it parses, builds a config and calls the library.

Start-up stays light (no torch, diffusers or transformers); each command imports what it needs.
Every user error is one line on stderr and a non-zero exit (`cineneuron.errors.CNError`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from cineneuron.config import RootConfig, describe, load_config
from cineneuron.errors import CNError

# Lance logs a warning per empty IVF partition while building an index on a large pool; the
# CLI prints its own one-line outcomes, so Lance's log is kept to errors (LANCEDB_LOG=warn shows it).
os.environ.setdefault("LANCEDB_LOG", "error")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="CineNeuron: reconstruct watched video from fMRI, around one embedding store.")
pool_app = typer.Typer(no_args_is_help=True, help="Inspect and manage the memory pool (the clips table).")
app.add_typer(pool_app, name="pool")

StoreOpt = typer.Option(None, "--store", help="store URI (default: $CN_STORE, else ./cn-store)")
ConfigOpt = typer.Option(None, "--config", help="YAML, TOML or JSON config file")
SetOpt = typer.Option(None, "--set", help="config override section.key=value (repeatable)")


def _cfg(store: str | None, config: Path | None = None, sets: list[str] | None = None, **over) -> RootConfig:
    items = dict(s.split("=", 1) for s in (sets or []) if "=" in s)
    bad = [s for s in (sets or []) if "=" not in s]
    if bad:
        raise CNError(f"--set {bad[0]!r} must look like section.key=value, e.g. train.lr=3e-4")
    import yaml

    from cineneuron.config import NULL

    overrides = {k: NULL if (v := yaml.safe_load(val)) is None else v for k, val in items.items()}
    overrides.update({k: v for k, v in over.items() if v is not None})
    if store:
        overrides["store.uri"] = store
    return load_config(config, overrides)


def _open(cfg: RootConfig):
    from cineneuron.store import Store

    return Store.from_config(cfg.store)


def _check_cfg_preset(cfg: RootConfig, s) -> None:
    """A preset named in the config (`--set encoders.preset=…`) must be the store's: never silently ignored."""
    if cfg.encoders.preset:
        from cineneuron.schemas.presets import load_preset

        name = cfg.encoders.preset
        s.check_preset(load_preset(name).name if name.endswith(".json") else name)


def _check_ingest_args(source: str, subject: list[str] | None, limit: int | None, clips_only: bool) -> None:
    """Everything that can be refused before a single clip is written."""
    from cineneuron.ingest.fmri import FMRI_SOURCES

    if limit is not None and limit < 0:
        raise CNError(f"--limit must be 0 or more (got {limit}); leave it out to ingest every clip")
    if subject and not clips_only:
        if source not in FMRI_SOURCES:
            raise CNError(f"--subject: source {source!r} has no fMRI (fMRI sources: {', '.join(FMRI_SOURCES)}); "
                          "drop --subject to ingest its clips only")
        bad = [s for s in subject if not s.strip().isdigit()]
        if bad:
            raise CNError(f"--subject must be a number for {source} (got {bad[0]!r})")


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


@app.command()
def init(store: Optional[str] = StoreOpt,
         preset: str = typer.Option("classic", "--preset", help="encoder preset: classic | paper | a .json file"),
         config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt):
    """Create a store for one encoder preset (or check an existing one matches)."""
    from cineneuron.store import Store

    cfg = _cfg(store, config, set_, **{"encoders.preset": preset})
    runtime = {"weights_dir": cfg.encoders.weights_dir} if cfg.encoders.weights_dir else None
    s = Store.from_config(cfg.store, create_preset=cfg.encoders.preset, runtime=runtime)
    typer.echo(f"store {s.uri}: preset {s.preset.name}, dims {s.dims}, {s.count()} clips")


@app.command()
def doctor(preset: Optional[str] = typer.Option(None, "--preset", help="preset to check (default: encoders.preset)"),
           weights_dir: Optional[str] = typer.Option(None, "--weights-dir", help="folder the preset's relative weight paths are under"),
           full_size: bool = typer.Option(False, "--full-size", help="build every model at its published size even with no weights"),
           as_json: bool = typer.Option(False, "--json"), config: Optional[Path] = ConfigOpt,
           set_: Optional[list[str]] = SetOpt):
    """Check weights file by file, size every model on the meta device (no memory), estimate stage 2, report the device."""
    from cineneuron.doctor import doctor as run_doctor, format_report

    cfg = _cfg(None, config, set_, **{"encoders.weights_dir": weights_dir})
    report = run_doctor(cfg, preset_name=preset, full_size=full_size)
    if as_json:
        _print_json(report)
    else:
        typer.echo(format_report(report))
    if not report["ok"]:
        raise typer.Exit(2)


@app.command("config")
def config_cmd(config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
               resolved: bool = typer.Option(False, "--resolved", help="print the resolved config as JSON")):
    """Show every config field with its default and meaning (or the resolved config)."""
    if resolved or config or set_:
        typer.echo(_cfg(None, config, set_).model_dump_json(indent=2))
    else:
        typer.echo(describe())


@pool_app.command("stats")
def pool_stats(store: Optional[str] = StoreOpt, as_json: bool = typer.Option(False, "--json")):
    """Preset, dims, clip counts by source and split, fMRI subjects."""
    st = _open(_cfg(store)).stats()
    if as_json:
        _print_json(st)
        return
    typer.echo(f"store {st['uri']}  preset {st['preset']}  version {st['version']}  ann_index {st['ann_index']}")
    typer.echo("dims " + ", ".join(f"{k}={v}" for k, v in st["dims"].items()) + f", mix={st['mix_dim']}")
    typer.echo(f"clips {st['clips']}  by source {st['by_source']}  by split {st['by_split']}")
    for k, v in st["fmri"].items():
        dup = f"  DUPLICATE of {', '.join(v['duplicate_of'])} (same voxel data)" if v.get("duplicate_of") else ""
        typer.echo(f"fmri {k}: {v['samples']} samples, {v['n_voxels']} voxels x {v['n_tr']} TRs, mask {v['mask_hash']}{dup}")


@pool_app.command("versions")
def pool_versions(store: Optional[str] = StoreOpt, as_json: bool = typer.Option(False, "--json")):
    """Versions of the clips table (each ingest makes one)."""
    vs = _open(_cfg(store)).versions()
    if as_json:
        _print_json(vs)
    else:
        for v in vs:
            typer.echo(f"{v['version']:>5}  {v['timestamp']}")


@pool_app.command("rollback")
def pool_rollback(version: int, store: Optional[str] = StoreOpt):
    """Restore the clips table as it was at VERSION (as a new version; history is kept)."""
    s = _open(_cfg(store))
    new = s.rollback(version)
    typer.echo(f"restored version {version} as version {new}: {s.count()} clips")


@pool_app.command("drop")
def pool_drop(source: str, store: Optional[str] = StoreOpt):
    """Delete every clip of SOURCE from the pool."""
    n = _open(_cfg(store)).drop_source(source)
    typer.echo(f"dropped {n} clips of {source}")


@pool_app.command("jobs")
def pool_jobs(store: Optional[str] = StoreOpt, job: Optional[int] = typer.Option(None, "--job", help="show one job's per-item errors"),
              as_json: bool = typer.Option(False, "--json")):
    """Ingest jobs with their counts; --job N lists that job's per-clip failure reasons."""
    cat = _open(_cfg(store)).catalog
    jobs = [cat.job(job)] if job is not None else cat.jobs()
    if job is not None and jobs[0] is None:
        raise CNError(f"no ingest job {job}; `cn pool jobs` lists them")
    rows = [{**j.model_dump(exclude={"errors_json", "notes_json"}), "errors": json.loads(j.errors_json),
             "notes": json.loads(j.notes_json or "{}")} for j in jobs]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        after = f"  (resumed by job {r['resumed_by']})" if r.get("resumed_by") else ""
        typer.echo(f"job {r['id']:>3} {r['kind']:<5} {r['source']:<14} {r['status']:<11} ok {r['n_ok']} failed {r['n_failed']} skipped {r['n_skipped']}  {r['root']}{after}")
        if job is not None:
            for e in r["errors"]:
                typer.echo(f"    {e['item']}: {e['reason']}")
            notes = json.loads(jobs[0].notes_json or "{}")
            if notes.get("unlabelled"):
                typer.echo(f"    {len(notes['unlabelled'])} clips got no superclass labels (first: {notes['unlabelled'][0]})")
            if notes.get("too_short"):
                typer.echo(f"    {len(notes['too_short'])} video(s) shorter than one clip window: "
                           + ", ".join(f"{v} ({d:.2f} s)" for v, d in notes["too_short"][:5]))
            if notes.get("captioner"):
                typer.echo(f"    {notes['uncaptioned']} clips had no caption: {notes['captioner']}")


@app.command()
def synth(out: Path = typer.Option(..., "--out", help="folder to write the simulated dataset (cc2017 layout)"),
          size: Optional[str] = typer.Option(None, "--size", help="named size: demo | small | paper-like"),
          clips: Optional[int] = typer.Option(None, "--clips", help="number of 2 s clips (train + test)"),
          subjects: int = typer.Option(1, "--subjects", help="simulated subjects (0: clips only)"),
          voxels: Optional[int] = typer.Option(None, "--voxels", help="voxels per subject"),
          tr: float = typer.Option(2.0, "--tr", help="repetition time, s (0.8 for a CineBrain-like mode)"),
          snr: Optional[float] = typer.Option(None, "--snr", help="signal-to-noise ratio of the responses"),
          kinds: Optional[str] = typer.Option(None, "--kinds", help="comma-separated object kinds to use"),
          holdout: Optional[str] = typer.Option(None, "--holdout", help="comma-separated kinds kept out of the training segments (present in test)"),
          seed: int = typer.Option(0, "--seed"),
          quiet: bool = typer.Option(False, "--quiet")):
    """Write a simulated world and simulated subjects with a known ground truth."""
    from cineneuron.progress import bar
    from cineneuron.sources.synth import generate

    split = lambda v: [k.strip() for k in v.split(",") if k.strip()] if v else None  # noqa: E731
    extra = {"holdout_kinds": split(holdout)} if holdout else {}
    with bar("synth", unit="items", enabled=not quiet) as progress:
        summary = generate(str(out), size=size, clips=clips, subjects=subjects, voxels=voxels, tr=tr, snr=snr,
                           kinds=split(kinds), seed=seed, progress=lambda adv, total, what="": progress(adv, total, what),
                           **extra)
    typer.echo(json.dumps(summary, sort_keys=True, default=str))


@app.command()
def ingest(source: str = typer.Argument(..., help="folder | synth | cc2017 | cinebrain | animal-kingdom | dream-1k | boldmoments"),
           root: Path = typer.Option(..., "--root", help="the dataset's root folder"),
           store: Optional[str] = StoreOpt,
           subject: Optional[list[str]] = typer.Option(None, "--subject", help="also ingest this subject's fMRI (cc2017, cinebrain); repeatable"),
           limit: Optional[int] = typer.Option(None, "--limit", help="ingest at most N clips"),
           batch_size: Optional[int] = typer.Option(None, "--batch-size", help="clips per encode/write batch"),
           preset: Optional[str] = typer.Option(None, "--preset", help="refuse unless the store was made with this preset"),
           source_name: Optional[str] = typer.Option(None, "--source-name", help="store the clips under another source name"),
           clips_only: bool = typer.Option(False, "--clips-only", help="skip fMRI even when --subject is given"),
           force: bool = typer.Option(False, "--force", help="re-encode clips already in the store"),
           ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="decode and encode the clips over a Ray cluster: local | auto | HOST:PORT | ray://HOST:PORT (pip install 'cineneuron[ray]')"),
           config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
           quiet: bool = typer.Option(False, "--quiet", help="no progress bar")):
    """Fill the memory pool from a dataset (and, with --subject, that subject's fMRI).

    Exit codes: 0 all clips stored; 3 some clips failed (reasons: cn pool jobs --job N); 2 bad input.
    """
    from cineneuron.ingest.api import ingest as run_ingest
    from cineneuron.progress import bar

    _check_ingest_args(source, subject, limit, clips_only)
    cfg = _cfg(store, config, set_, **{"encoders.batch_size": batch_size})
    s = _open(cfg)
    if preset:
        s.check_preset(preset)
    _check_cfg_preset(cfg, s)
    with bar(f"ingest {source_name or source}", enabled=not quiet) as progress:
        res = run_ingest(s, source, str(root), cfg, subjects=[] if clips_only else list(subject or []),
                         source_name=source_name, limit=limit, force=force, ray=ray, progress=lambda adv, total: progress(adv, total))
    typer.echo(res.summary())
    for rep in res.fmri:
        if rep.warning:
            typer.echo(rep.warning, err=True)
    if res.exit_code:
        raise typer.Exit(res.exit_code)


@app.command()
def train(stage: int = typer.Option(1, "--stage", min=1, max=2, help="1: semantic enrichment; 2: router (and fusion/LoRA with --decoder wan)"),
          subject: str = typer.Option(..., "--subject", help="subject id, e.g. 1"),
          dataset: Optional[str] = typer.Option(None, "--dataset", help="needed when the subject id exists in several datasets"),
          store: Optional[str] = StoreOpt, config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
          resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint (stage 1)"),
          decoder: Optional[str] = typer.Option(None, "--decoder", help="replay | wan (stage 2)"),
          no_action: bool = typer.Option(False, "--no-action", help="ablation: drop the action-alignment task"),
          no_cls: bool = typer.Option(False, "--no-cls", help="ablation: drop category learning"),
          epochs: Optional[int] = typer.Option(None, "--epochs", help="override train.epochs"),
          nproc: Optional[int] = typer.Option(None, "--nproc", help="data-parallel on N ranks of this machine (launches torchrun): stage 1 and both stage 2s"),
          as_json: bool = typer.Option(False, "--json"), quiet: bool = typer.Option(False, "--quiet")):
    """Train the Brain Model from the store (stage 1), then the router (stage 2)."""
    from cineneuron.progress import bar
    from cineneuron.train import distributed

    over = {"train.use_action": False if no_action else None, "train.use_cls": False if no_cls else None,
            "train.epochs" if stage == 1 else "train.stage2_epochs": epochs, "decode.decoder": decoder}
    cfg = _cfg(store, config, set_, **over)
    rank = distributed.from_env()
    if nproc is not None:
        raise typer.Exit(distributed.launch(nproc, _without_nproc(sys.argv[1:])))
    quiet = quiet or not rank.is_main
    s = _open(cfg)
    _check_cfg_preset(cfg, s)
    with bar(f"train stage {stage}", unit="steps", enabled=not quiet) as progress:
        if stage == 1:
            from cineneuron.train.stage1 import train_stage1

            r = train_stage1(s, cfg, subject, dataset=dataset, resume=resume, progress=progress)
            summary = {"run_dir": r.run_dir, "seconds": round(r.seconds, 1), "steps": r.steps,
                       "samples_per_s": round(r.samples_per_s, 1), "model": r.metrics, "ridge": r.ridge}
        else:
            from cineneuron.train.api import train_stage2

            summary = train_stage2(s, cfg, subject, dataset=dataset, progress=progress)
    if rank.active:
        distributed.shutdown()
        if not rank.is_main:
            return
    if as_json:
        _print_json(summary)
    else:
        typer.echo(_train_table(stage, summary))


def _without_nproc(argv: list[str]) -> list[str]:
    """The `cn train` arguments torchrun's ranks get: everything but --nproc (and the command)."""
    out, skip = [], False
    for a in argv[argv.index("train") + 1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _train_table(stage: int, s: dict) -> str:
    lines = [f"stage {stage}: {s['steps']} steps in {s['seconds']} s -> {s['run_dir']}"]
    if stage == 1 and s.get("model"):
        m, r = s["model"], s.get("ridge") or {}
        lines.append(f"test retrieval top-1 of {m.get('pool_size')} (chance {m.get('chance', 0):.3f}):   model    ridge")
        for sp in ("img", "txt", "act"):
            for d in ("fmri_to_clip", "clip_to_fmri"):
                k = f"{sp}_{d}"
                if k in m:
                    lines.append(f"  {k:<18} {m[k]:>22.3f} {r.get(k, float('nan')):>8.3f}")
        if "superclass_balanced_acc" in m:
            lines.append(f"  superclass balanced accuracy {m['superclass_balanced_acc']:.3f}")
    elif s.get("last"):
        lines.append("last step: " + ", ".join(f"{k} {v:.3f}" for k, v in s["last"].items()))
    return "\n".join(lines)


@app.command()
def query(fmri: Path = typer.Option(..., "--fmri", help=".npy, .npz, .h5 or .nii/.nii.gz with one or more samples"),
          subject: str = typer.Option(..., "--subject"), dataset: Optional[str] = typer.Option(None, "--dataset"),
          top_k: Optional[int] = typer.Option(None, "--top-k", help="memories per query"),
          decoder: Optional[str] = typer.Option(None, "--decoder", help="replay | wan"),
          out: Optional[Path] = typer.Option(None, "--out", help="write the reconstruction here (.mp4)"),
          where: Optional[str] = typer.Option(None, "--where", help="SQL filter on the pool, e.g. \"source = 'cc2017'\""),
          store: Optional[str] = StoreOpt, config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
          as_json: bool = typer.Option(False, "--json", help="stable JSON output (see README)")):
    """Reconstruct from fMRI: retrieve memories with MoM and decode them to video."""
    from cineneuron.decode.reconstruct import run_query

    if out is not None and out.suffix.lower() != ".mp4":
        raise CNError(f"--out {out}: only .mp4 videos are written; give a path ending in .mp4")
    cfg = _cfg(store, config, set_, **{"decode.top_k": top_k, "decode.decoder": decoder})
    s = _open(cfg)
    _check_cfg_preset(cfg, s)
    res = run_query(s, cfg, str(fmri), subject, dataset=dataset, out=str(out) if out else None, where=where)
    if as_json:
        _print_json(res)
        return
    for q in res["queries"]:
        w = q["weights"]
        typer.echo(f"{q['sample']}: router txt {w['txt']:.2f} img {w['img']:.2f} act {w['act']:.2f}" + (f" -> {q['video']}" if q["video"] else ""))
        for m in q["memories"]:
            typer.echo(f"  {m['score']:.3f}  {m['source']:<10} {m['caption']}")


@app.command("eval")
def eval_cmd(subject: str = typer.Option(..., "--subject"), dataset: Optional[str] = typer.Option(None, "--dataset"),
             split: str = typer.Option("test", "--split"),
             out: Path = typer.Option(Path("cn-eval"), "--out", help="report folder"),
             decoder: Optional[str] = typer.Option(None, "--decoder", help="replay | wan"),
             metrics: Optional[str] = typer.Option(None, "--metrics", help="comma-separated groups: retrieval,mom,pixel,motion,clip_pcc,dtc,semantic (default: all it can)"),
             clip: Optional[str] = typer.Option(None, "--clip", help="OpenCLIP weights file or local-dir: folder, for CLIP-pcc"),
             dinov2: Optional[str] = typer.Option(None, "--dinov2", help="DINOv2 folder, for DTC"),
             videomae: Optional[str] = typer.Option(None, "--videomae", help="VideoMAE Kinetics-400 folder, for video n-way accuracy"),
             vit: Optional[str] = typer.Option(None, "--vit", help="ImageNet ViT folder, for frame n-way accuracy"),
             protocol: str = typer.Option("neuroclips", "--retrieval-protocol", help="retrieval subsets of 300: neuroclips (contiguous blocks in time order, the paper's) | mindeye2 (30 random)"),
             store: Optional[str] = StoreOpt, config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
             as_json: bool = typer.Option(False, "--json"), quiet: bool = typer.Option(False, "--quiet")):
    """Evaluate a trained subject: retrieval, MoM semantics, pixel and motion metrics, a report folder."""
    from cineneuron.eval.run import EvalModels, evaluate_subject
    from cineneuron.progress import bar

    from cineneuron.eval.run import METRIC_GROUPS

    cfg = _cfg(store, config, set_, **{"decode.decoder": decoder})
    groups = [m.strip() for m in metrics.split(",")] if metrics else None
    bad = [m for m in groups or [] if m not in METRIC_GROUPS]
    if bad:
        raise CNError(f"unknown metric group {bad[0]!r}; choose from {', '.join(METRIC_GROUPS)}")
    models = EvalModels(videomae=videomae, vit=vit, clip=clip, dinov2=dinov2)
    with bar("eval", unit="stages", enabled=not quiet) as progress:
        res = evaluate_subject(_open(cfg), cfg, subject, dataset=dataset, split=split, out_dir=str(out),
                               models=models, metrics=groups, progress=progress, protocol=protocol)
    if as_json:
        _print_json({"files": res["files"], "n_test": res["n_test"]})
    else:
        typer.echo(Path(res["files"]["markdown"]).read_text())
        typer.echo(f"report: {out}/ (metrics.json, metrics.md, plots/, grid.mp4, index.html)")


@app.command()
def demo(dir: Optional[Path] = typer.Option(None, "--dir", help="work folder (default: ./cn-demo); holds the worlds, the store and the report"),
         decoder: str = typer.Option("replay", "--decoder", help="replay | wan (toy Wan weights: noise, says so)"),
         quiet: bool = typer.Option(False, "--quiet", help="no progress bars")):
    """The whole method on the simulated world, end to end (about 3 minutes on 2 cores)."""
    import shutil

    from cineneuron.experiments.demo import run_demo
    from cineneuron.progress import bar

    work = dir or Path("cn-demo")
    if work.exists() and any(work.iterdir()):
        if not (work / "world").exists() and not (work / "store").exists():
            raise CNError(f"{work} exists and is not a CineNeuron demo folder; choose another --dir")
        shutil.rmtree(work)  # a demo always starts fresh
    run_demo(work, log=typer.echo, decoder=decoder,
             progress_factory=lambda name, unit: bar(name, unit=unit, enabled=not quiet))


@app.command()
def experiment(dir: Optional[Path] = typer.Option(None, "--dir", help="work folder (default: ./cn-experiment); holds each seed's worlds, store, runs and the report"),
               seeds: Optional[str] = typer.Option(None, "--seeds", help="comma-separated seeds; cells are mean ± std over them (default 0,1,2; with --quick 0)"),
               only: Optional[str] = typer.Option(None, "--only", help="comma-separated: components,semantics,memory,pool,ood,noise (default: all)"),
               quick: bool = typer.Option(False, "--quick", help="one seed (unless --seeds) and a smaller world: the test's size"),
               as_json: bool = typer.Option(False, "--json")):
    """The paper's ablation tables on the simulated brain, with error bars over seeds and an HTML report."""
    from cineneuron.experiments.run import parse_only, parse_seeds, run_experiments

    names, seed_list = parse_only(only), parse_seeds(seeds or ("0" if quick else "0,1,2"))
    from cineneuron.eval.report import to_jsonable

    log = (lambda m: typer.echo(m, err=True)) if as_json else typer.echo
    summary = run_experiments(dir or Path("cn-experiment"), seeds=seed_list, only=names, quick=quick, log=log)
    if as_json:
        _print_json(to_jsonable(summary))
    else:
        typer.echo(Path(summary["files"]["markdown"]).read_text())


def _quiet_warnings() -> None:
    import warnings

    # ffmpeg (imageio) and subprocesses fork+exec at once, which is safe; lance warns anyway.
    warnings.filterwarnings("ignore", message=".*fork.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message="lance is not fork-safe.*")


def main() -> None:
    _quiet_warnings()
    try:
        app()
    except CNError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("CN_DEBUG"):
            raise
        typer.echo(f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (set CN_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
