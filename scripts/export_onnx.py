#!/usr/bin/env python
"""The book's main networks as ONNX files (shiftlab.export): MaxPool, MaxBlurPool-5 and APS, seed 0, as the profile
trains them (loaded from the model cache; trained first if it lacks them).

    python scripts/export_onnx.py [--profile book] [--out results/onnx]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import export, params, zoo  # noqa: E402

NETWORKS = ("baseline", "maxblur5", "aps")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="book")
    ap.add_argument("--out", default=str(ROOT / "results" / "onnx"))
    ap.add_argument("--cache-dir", default=str(ROOT / "results" / "cache"))
    args = ap.parse_args(argv)
    try:
        common = params.load_profile(args.profile, ROOT / "params")["common"]
    except params.ParameterError as err:
        print(err, file=sys.stderr)
        return 1
    for name in NETWORKS:
        net, info = zoo.get(name, n_train=common["n_train"], epochs=common["epochs"], seed=0, cache_dir=args.cache_dir)
        path = export.to_onnx(net, Path(args.out) / f"{name}-seed0-{info['key']}.onnx",
                              image_size=info["config"]["data"]["image_size"])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
