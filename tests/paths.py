"""Where the shared data and the project's own storms are; ../shared sits beside the checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MICROSS = SHARED / "datasets" / "rca-micross"
LAB_STORM = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"
