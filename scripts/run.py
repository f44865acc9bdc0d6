"""Run a learning-rate experiment: ``python scripts/run.py [--config configs/X.yaml] [--key value ...]``.

The same as the ``lr-lab`` command; ``--help`` lists every option.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: make the package beside this script importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lr_lab.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
