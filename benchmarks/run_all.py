"""Run every benchmark script in turn (``make bench``)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["flow.py", "fifo_sizing.py", "tiling.py", "resnet8.py", "mlperf_tiny.py"]

if __name__ == "__main__":
    rc = 0
    for s in SCRIPTS:
        if (HERE / s).exists():
            print(f"== {s}", flush=True)
            rc |= subprocess.call([sys.executable, str(HERE / s)])
    sys.exit(rc)
