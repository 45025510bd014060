"""``python -m kdkit`` (and ``torchrun -m kdkit``): the ``kdkit`` command."""

import sys

from kdkit.cli import main

sys.exit(main())
