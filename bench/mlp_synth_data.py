#!/usr/bin/env python3
"""Writes the synthetic MLP benchmark data as raw little-endian files for nebula-bench-mlp.

The rows come from make_synthetic in the project baselines (baselines/synth.py), the function the
PyTorch reference (baselines/torch_mlp.py) calls, so both sides train on identical data:
  train_x.f32 (rows x 64 float32), train_y.i64 (rows int64)   seed 0
  test_x.f32  (100000 x 64 float32), test_y.i64               seed 1
Usage: mlp_synth_data.py BASELINES_DIR OUT_DIR [--rows 1000000]
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("baselines")
ap.add_argument("out")
ap.add_argument("--rows", type=int, default=1_000_000)
a = ap.parse_args()
sys.path.insert(0, a.baselines)
from synth import make_synthetic  # noqa: E402

os.makedirs(a.out, exist_ok=True)
for name, rows, seed in (("train", a.rows, 0), ("test", 100_000, 1)):
    X, y = make_synthetic(rows, 64, 10, seed=seed)
    X.astype("<f4").tofile(os.path.join(a.out, f"{name}_x.f32"))
    y.astype("<i8").tofile(os.path.join(a.out, f"{name}_y.i64"))
with open(os.path.join(a.out, "STAMP"), "w") as f:
    f.write(f"rows={a.rows}\n")
