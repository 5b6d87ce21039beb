"""A 2-node local Ray cluster runs `cn ingest ... --ray ADDRESS` jobs, then stops.

    unshare -n sh -c 'ip link set lo up; exec python tests/helpers/ray_ingest_job.py TMP OUT.json JOB...'
    JOB = "SOURCE|ROOT|STORE"   (each is run as `cn ingest SOURCE --root ROOT --store STORE --ray ADDR`)

Run it inside its own loopback-only network namespace: Ray binds its servers to every interface.
Ray's temp folder and HOME (Ray writes ~/.ray) are under TMP. OUT.json gets each job's exit code
seconds, the store's version and rows after it, and the cluster's live node count.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401 - the toy encoders (shipped to the actors by value)


def main() -> None:
    tmp, out, jobs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    os.environ["RAY_TMPDIR"] = str(tmp)  # Ray's files go to TMP/ray, not /tmp/ray
    (tmp / "ray").mkdir(parents=True, exist_ok=True)
    import ray
    from ray.cluster_utils import Cluster

    from cineneuron.cli import main as cn

    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "temp_dir": str(tmp / "ray"), "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    results = {"nodes": 0, "jobs": [], "start_s": 0.0}
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        results["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        results["start_s"] = round(time.perf_counter() - t0, 1)
        for job in jobs:
            source, root, store = job.split("|")
            t = time.perf_counter()
            sys.argv = ["cn", "ingest", source, "--root", root, "--store", store, "--ray", cluster.address, "--quiet"]
            try:
                cn()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            from cineneuron.store import Store

            s = Store.open(store)
            results["jobs"].append({"job": job, "exit": code, "seconds": round(time.perf_counter() - t, 1),
                                    "version": s.version, "rows": s.count()})
    finally:
        ray.shutdown()
        cluster.shutdown()
        out.write_text(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main()
