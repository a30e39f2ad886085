#!/usr/bin/env python
"""Train a profile's planned models on a cluster (SLURM) or in local processes, through submitit, into the cache.

    python scripts/train_zoo.py --profile book --executor local [--workers N]
    python scripts/train_zoo.py --profile paper --executor slurm --array-parallelism 16 --partition gpu \\
        --gpus-per-task 1 [--timeout-min 240] [--wait]
    make book PROFILE=...            # then: every notebook warm, nothing trained

The models are the run's plan (scripts/run_notebooks.py --plan: exactly what the chapters will ask for, with the same
profile and -p parameters) less those already in the cache. slurm: one task per model in one job array, at most K
running at once; local: N processes (default: one per core), each training its share of the models, the largest first.
Every task trains into the shared cache directory with the zoo's lock and atomic write, so two tasks never train one
model and a killed task leaves nothing half-written. A model that fails is reported by name with the path of its log;
running the command again trains only what is still missing, and does not submit again a model an earlier array from
the same --folder is still training (SLURM's state of its task). Ctrl-C cancels the submitted jobs.

Plan where the book will be built: a model's cache key includes its training precision, which follows the device
(a GPU plan trains in bfloat16 and needs GPU tasks; on a cluster, make the plan on a GPU node:
srun --gpus 1 .venv/bin/python scripts/run_notebooks.py --profile paper --plan --json > plan.json).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

INSTALL = "pip install 'submitit>=1.5'  (or: pip install -e '.[cluster]')"


def plan(profile: str, overrides: list[str], only: list[str] | None = None) -> list[dict]:
    """The run's plan (scripts/run_notebooks.py --plan --json): one entry per model, full configuration included."""
    cmd = [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", profile, "--plan", "--json"]
    for o in overrides:
        cmd += ["-p", o]
    if only:
        cmd += ["--only", *only]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.exit(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "the plan failed")
    return json.loads(proc.stdout)


def cost(config: dict) -> float:
    """A model's training FLOPs: images x epochs x forward and backward FLOPs per image (the order and balance of the
    shares; the same network at the same size is counted once)."""
    from shiftlab import zoo

    arch = json.dumps([config["model"], config["data"]["image_size"]], sort_keys=True)
    if arch not in _FLOPS:
        _FLOPS[arch] = zoo.flops_per_image(config)
    return config["data"]["n_train"] * config["train"]["epochs"] * _FLOPS[arch]


_FLOPS: dict[str, float] = {}


def shares(configs: list[dict], n: int) -> list[list[dict]]:
    """configs dealt into at most n lists of nearly equal cost: the largest first, each to the lightest list."""
    out: list[list[dict]] = [[] for _ in range(min(n, len(configs)))]
    load = [0.0] * len(out)
    for c in sorted(configs, key=cost, reverse=True):
        k = load.index(min(load))
        out[k].append(c)
        load[k] += cost(c)
    return out


def train_models(configs: list[dict], cache_dir: str, device: str) -> list[dict]:
    """Train each configuration into the cache (no-op when cached); per model: name, seed and training seconds, or
    the error it raised."""
    from shiftlab import zoo

    done = []
    for c in configs:
        label = {"name": c["name"], "seed": c["train"]["seed"]}
        try:
            seconds = zoo.train_into_cache(c, cache_dir, device)
            done.append({**label, "seconds": seconds})
        except Exception as err:     # reported by name; the other models of the share still train
            done.append({**label, "error": f"{type(err).__name__}: {err}"})
    return done


IN_FLIGHT = "in_flight.json"     # in the submitit folder: cache key -> SLURM job id of every model submitted
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "UNKNOWN"}


def job_active(folder: Path, job_id: str) -> bool:
    """Whether SLURM job job_id (an array task, "<array>_<k>") is still waiting or running (submitit's sacct view;
    a job SLURM no longer knows reads as UNKNOWN, which counts as active until sacct says otherwise)."""
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=job_id).state.split(" ")[0] in ACTIVE


def in_flight(folder: Path, keys: set[str]) -> dict[str, str]:
    """Of the cache keys, those a job array submitted from this folder is still training: key -> job id."""
    path = folder / IN_FLIGHT
    submitted = json.loads(path.read_text()) if path.is_file() else {}
    return {k: j for k, j in submitted.items() if k in keys and job_active(folder, j)}


def record_in_flight(folder: Path, submitted: dict[str, str], still: dict[str, str]) -> None:
    """Write the folder's record of submitted models: those still in flight and those just submitted."""
    from shiftlab.results import atomic_write_bytes

    atomic_write_bytes(folder / IN_FLIGHT, json.dumps({**still, **submitted}, indent=1).encode())


def executor(args: argparse.Namespace, folder: Path):
    """submitit's executor for args.executor, with the parameters the command line gives."""
    try:
        import submitit
    except ImportError:
        sys.exit(f"error: the executors need the submitit package: {INSTALL}")
    if args.executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=args.timeout_min)
        return ex
    try:
        ex = submitit.SlurmExecutor(folder=folder)
    except RuntimeError:
        sys.exit("error: no SLURM here (srun not found): --executor slurm runs on a cluster's login node; "
                 "valid here: --executor local")
    params = {"time": args.timeout_min, "array_parallelism": args.array_parallelism, "job_name": "shiftlab-train",
              "cpus_per_task": args.cpus_per_task}
    if args.partition:
        params["partition"] = args.partition
    if args.gpus_per_task:
        params["gpus_per_task"] = args.gpus_per_task
    ex.update_parameters(**params)
    return ex


def report(jobs: list, shares_of_jobs: list[list[dict]]) -> int:
    """Wait for the jobs; print what each trained and every failure with its log; 0 when all succeeded."""
    failed = 0
    for job, share in zip(jobs, shares_of_jobs, strict=True):
        try:
            outcomes = job.result()
        except Exception as err:      # the whole task died (killed, out of memory, timeout)
            outcomes = [{"name": c["name"], "seed": c["train"]["seed"], "error": f"{type(err).__name__}"}
                        for c in share]
        for o in outcomes:
            if "error" in o:
                failed += 1
                print(f"error: {o['name']} seed {o['seed']} failed ({o['error'].splitlines()[0]}); "
                      f"log: {job.paths.stderr}", file=sys.stderr)
            else:
                print(f"{o['name']} seed {o['seed']}: " +
                      (f"trained in {o['seconds']:.0f} s" if o["seconds"] else "already cached"), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="book", help="a name in params/ (smoke, book, paper) or a YAML path")
    ap.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one parameter for every notebook, as for the book run that follows")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="plan only these notebooks (e.g. 00_background)")
    ap.add_argument("--plan-file", default="", metavar="JSON",
                    help="a plan written before (run_notebooks.py --plan --json > FILE) instead of planning now")
    ap.add_argument("--shard", default="", metavar="K/N",
                    help="train only share K (0..N-1) of the plan dealt into N shares of nearly equal cost (a CI "
                         "matrix: every runner the same plan, its own share)")
    ap.add_argument("--executor", choices=("local", "slurm"), required=True)
    ap.add_argument("--workers", type=int, default=0, metavar="N", help="local: processes (default: one per core)")
    ap.add_argument("--array-parallelism", type=int, default=16, metavar="K",
                    help="slurm: tasks of the array running at once (default 16)")
    ap.add_argument("--partition", default="", help="slurm: the partition to submit to")
    ap.add_argument("--gpus-per-task", type=int, default=0, help="slurm: GPUs per task (0: train on the CPU)")
    ap.add_argument("--cpus-per-task", type=int, default=2, help="slurm: CPU cores per task (default 2)")
    ap.add_argument("--timeout-min", type=int, default=240,
                    help="the time limit of one task (slurm: one model; local: one process's share), minutes "
                         "(default 240)")
    ap.add_argument("--folder", default="", help="submitit's logs and job files (default results/submitit/PROFILE)")
    ap.add_argument("--cache-dir", default="", help="the shared model cache (default: the profile's cache_dir)")
    ap.add_argument("--wait", action="store_true", help="slurm: wait for the array and report (local always waits)")
    args = ap.parse_args(argv)
    for name in ("workers", "array_parallelism", "cpus_per_task", "gpus_per_task", "timeout_min"):
        if getattr(args, name) < (0 if name in ("workers", "gpus_per_task") else 1):
            print(f"error: --{name.replace('_', '-')} {getattr(args, name)} is invalid; valid: a whole number >= "
                  f"{0 if name == 'gpus_per_task' else 1}", file=sys.stderr)
            return 2

    from shiftlab import zoo
    from shiftlab.runtime import cpu_count

    if args.plan_file:
        try:
            models = json.loads(Path(args.plan_file).read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"error: --plan-file {args.plan_file} is not a plan: {err}; valid: the output of "
                  "scripts/run_notebooks.py --plan --json", file=sys.stderr)
            return 2
    else:
        models = plan(args.profile, args.overrides, args.only)
    cache_dir = Path(args.cache_dir or next(iter(models), {}).get("cache_dir", ROOT / "results" / "cache")).resolve()
    configs = [m["config"] for m in models]
    if args.shard:
        k, _, n = args.shard.partition("/")
        if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
            print(f"error: --shard {args.shard} is invalid; valid: K/N with 0 <= K < N (e.g. 0/4)", file=sys.stderr)
            return 2
        dealt = shares(configs, int(n))
        configs = dealt[int(k)] if int(k) < len(dealt) else []
    missing = [c for c in configs if not zoo.is_cached(c, cache_dir)]
    device = "cuda" if args.executor == "slurm" and args.gpus_per_task else "cpu"
    gpu_only = sorted({c["name"] for c in missing if c["train"].get("precision", "fp32") != "fp32"})
    if device == "cpu" and gpu_only:
        print(f"error: the plan trains {', '.join(gpu_only)} in bfloat16, as on a GPU, and these tasks have none; "
              "valid: --executor slurm --gpus-per-task 1, or a plan made where the book is built on the CPU",
              file=sys.stderr)
        return 2
    folder = Path(args.folder or ROOT / "results" / "submitit" / Path(args.profile).stem).resolve()
    still = in_flight(folder, {zoo.cache_key(c) for c in missing}) if args.executor == "slurm" else {}
    if still:
        print(f"{len(still)} model(s) still in flight in job(s) {', '.join(sorted(set(still.values())))}: not "
              "submitted again", flush=True)
        missing = [c for c in missing if zoo.cache_key(c) not in still]
    print(f"{len(configs)} planned model(s), {len(configs) - len(missing) - len(still)} cached, {len(missing)} to "
          f"train into {cache_dir}", flush=True)
    if not missing:
        return 0
    ex = executor(args, folder)
    if args.executor == "local":
        groups = shares(missing, args.workers or cpu_count())
        jobs = [ex.submit(train_models, g, str(cache_dir), device) for g in groups]
    else:
        groups = [[c] for c in sorted(missing, key=cost, reverse=True)]
        jobs = ex.map_array(train_models, groups, [str(cache_dir)] * len(groups), [device] * len(groups))
        record_in_flight(folder, {zoo.cache_key(g[0]): j.job_id for g, j in zip(groups, jobs, strict=True)}, still)
        print(f"submitted job array {jobs[0].job_id.split('_')[0]}: {len(jobs)} task(s), at most "
              f"{args.array_parallelism} at once; logs in {folder}", flush=True)
        if not args.wait:
            print("when it has finished: make book (nothing left to train), or this command again for what failed")
            return 0
    try:
        while not all(j.done() for j in jobs):
            time.sleep(2)
    except KeyboardInterrupt:
        for j in jobs:
            j.cancel(check=False)
        print(f"cancelled {len(jobs)} job(s); the models they finished are cached", file=sys.stderr)
        return 130
    return report(jobs, groups)


if __name__ == "__main__":
    sys.exit(main())
