"""``python -m cmrseg`` runs the command line."""

import sys

from cmrseg.cli import main

sys.exit(main())
