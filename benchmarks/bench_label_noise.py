"""Robust losses under 40% symmetric label noise on the real MNIST test images.

Runs ``klr compare`` (the runner's whole protocol: per seed a resampled split,
each loss' parameter searched on a noisy 1/6 hold-out for final-epoch
validation accuracy, retrained on the noisy training split, evaluated on the
clean test split, with the runner's 95% intervals and its marks) on the
10,000 images of ``../shared/data/mnist-test`` (IDX), 30% of them tested on
per seed, for CE, LS, LR, GCE, SCE and RDA (and CE+TS) with ``simple_dense``.
The noise (``symmetric:0.4``: each training/validation label replaced with
probability 0.4 by a class drawn from all 10, so about 36% are wrong) is drawn
per seed; the test labels are clean. Prints the table and the wall time; the
result is recorded in BENCHMARKS.md ("Label noise").

Usage: python benchmarks/bench_label_noise.py [--seeds 3] [--epochs 10] [--out DIR]
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist-test"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noise", default="symmetric:0.4")
    parser.add_argument("--data", default=MNIST)
    parser.add_argument("--out", default=os.path.join("klr-results", "bench_label_noise"))
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data):
        sys.exit(f"No MNIST test set at {args.data} (the IDX files of ../shared/data/mnist-test).")
    command = [
        sys.executable, "-m", "keras_label_relaxation", "compare",
        "--dataset", args.data, "--test-fraction", "0.3", "--model", "simple_dense",
        "--losses", "ce,ls,lr,gce,sce,rda", "--label-noise", args.noise,
        "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--out", args.out,
    ]  # fmt: skip
    print(" ".join(command[1:]), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    print(f"Wall time: {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
