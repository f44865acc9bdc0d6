"""Which finder rule should you trust? ``python scripts/study.py [--quick] [--out DIR]``.

The same as ``lr-lab study``; ``--help`` lists the options.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: make the package beside this script importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lr_lab.study.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
