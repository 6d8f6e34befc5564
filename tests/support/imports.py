"""What importing a module loads, seen from a fresh interpreter (this one has loaded everything already)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_by(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with any of ``prefixes`` that ``import`` of ``modules`` leaves in ``sys.modules``."""
    names = f"sorted(m for m in sys.modules if m.startswith({prefixes!r}))"
    code = f"import json, sys, {', '.join(modules)}; print(json.dumps({names}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    found: list[str] = json.loads(run.stdout)
    return found
