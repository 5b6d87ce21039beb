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

    overrides = {k: yaml.safe_load(v) for k, v in items.items()}
    overrides.update({k: v for k, v in over.items() if v is not None})
    if store:
        overrides["store.uri"] = store
    return load_config(config, overrides)


def _open(cfg: RootConfig):
    from cineneuron.store import Store

    s = cfg.store
    return Store.open(s.uri, storage_options=s.storage_options or None, catalog_dir=s.catalog_dir,
                      ann_threshold=s.ann_threshold, nprobes=s.nprobes, refine_factor=s.refine_factor)


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


@app.command()
def init(store: Optional[str] = StoreOpt,
         preset: str = typer.Option("classic", "--preset", help="encoder preset: classic | paper | a .json file"),
         config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt):
    """Create a store for one encoder preset (or check an existing one matches)."""
    from cineneuron.store import Store

    cfg = _cfg(store, config, set_, **{"encoders.preset": preset})
    s = Store.create(cfg.store.uri, cfg.encoders.preset, storage_options=cfg.store.storage_options or None,
                     catalog_dir=cfg.store.catalog_dir)
    typer.echo(f"store {s.uri}: preset {s.preset.name}, dims {s.dims}, {s.count()} clips")


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
        typer.echo(f"fmri {k}: {v['samples']} samples, {v['n_voxels']} voxels x {v['n_tr']} TRs, mask {v['mask_hash']}")


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
    rows = [{**j.model_dump(exclude={"errors_json"}), "errors": json.loads(j.errors_json)} for j in jobs]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        typer.echo(f"job {r['id']:>3} {r['kind']:<5} {r['source']:<14} {r['status']:<8} ok {r['n_ok']} failed {r['n_failed']} skipped {r['n_skipped']}  {r['root']}")
        if job is not None:
            for e in r["errors"]:
                typer.echo(f"    {e['item']}: {e['reason']}")


def main() -> None:
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
