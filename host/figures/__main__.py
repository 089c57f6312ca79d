"""``python -m fixar.figures``: see fixar.figures.summary."""
import sys

from fixar.figures.summary import main

sys.exit(main())
