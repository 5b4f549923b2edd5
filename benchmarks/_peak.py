"""Peak resident memory of a piece of work, measured in a fresh subprocess (Linux only).

``measure(script_path, args)`` runs ``script_path --child ARGS`` with glibc's mmap
threshold fixed at 64 KiB (every large buffer is mapped and unmapped with its use,
so freed memory leaves the resident set) and returns the last line the child
printed. In the child, ``peak_mib(work)`` resets the high-water mark through
``/proc/self/clear_refs`` and returns how many MiB ``work()`` added at its peak on
top of what the process held before.
"""

import os
import subprocess
import sys


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_mib(work):
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    work()
    return (_status_kib("VmHWM") - before) / 1024.0


def measure(script_path, args):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(
        [sys.executable, script_path, "--child", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])
