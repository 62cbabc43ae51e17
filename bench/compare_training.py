#!/usr/bin/env python3
"""Puts two training runs side by side: our `train.json` (`cargo xtask train`) and the PyTorch
one (`bench/train_reference.py`), step by step.

Prints the training loss per optimizer step and the validation loss at each measured step,
with the relative difference |ours − torch| / |torch|, and the totals (steps, tokens, tokens/s).
Exits with status 1 when the runs differ in steps, tokens or measured steps, or when --tol is
given and a relative difference exceeds it.

    .venv/bin/python bench/compare_training.py runs/X/train/lora/train.json runs/X/torch/lora/train.json --tol 1e-4
"""

import argparse
import json
import sys
from pathlib import Path


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ours", type=Path, help="our train.json")
    ap.add_argument("torch", type=Path, help="train_reference.py's train.json")
    ap.add_argument("--tol", type=float, help="fail when a relative difference exceeds this")
    ap.add_argument("--every", type=int, default=1, help="print every this many training steps (the worst is always reported)")
    args = ap.parse_args()
    a, b = json.loads(args.ours.read_text()), json.loads(args.torch.read_text())
    bad = []
    for key in ["steps", "tokens", "trainable_parameters"]:
        if a.get(key) != b.get(key):
            bad.append(f"{key}: ours {a.get(key)}, torch {b.get(key)}")
    print("| step | ours train loss | torch train loss | rel. diff |")
    print("|---:|---:|---:|---:|")
    worst = 0.0
    for k, (x, y) in enumerate(zip(a["train_loss"], b["train_loss"]), 1):
        r = rel(x, y)
        worst = max(worst, r)
        if k % args.every == 0 or k == 1 or k == len(a["train_loss"]):
            print(f"| {k} | {x:.6f} | {y:.6f} | {r:.1e} |")
    print(f"\nworst training-loss difference: {worst:.2e}\n")
    va, vb = dict((s, l) for s, l in a["validation_loss"]), dict((s, l) for s, l in b["validation_loss"])
    if sorted(va) != sorted(vb):
        bad.append(f"validation steps: ours {sorted(va)}, torch {sorted(vb)}")
    print("| step | ours dev loss | torch dev loss | rel. diff |")
    print("|---:|---:|---:|---:|")
    vworst = 0.0
    for s in sorted(set(va) & set(vb)):
        r = rel(va[s], vb[s])
        vworst = max(vworst, r)
        print(f"| {s} | {va[s]:.6f} | {vb[s]:.6f} | {r:.1e} |")
    print(f"\nworst dev-loss difference: {vworst:.2e}")
    print(f"tokens: ours {a['tokens']}, torch {b['tokens']}; tokens/s: ours {a['tokens_per_second']:.1f}, torch {b['tokens_per_second']:.1f}")
    if args.tol is not None and max(worst, vworst) > args.tol:
        bad.append(f"a relative difference of {max(worst, vworst):.2e} exceeds --tol {args.tol}")
    for m in bad:
        print(f"MISMATCH: {m}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
