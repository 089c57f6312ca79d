"""``python -m fixar.explore``: see fixar.explore.cli."""
import sys

from fixar.explore.cli import main

sys.exit(main())
