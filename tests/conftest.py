import sys
from pathlib import Path

# tests/reference.py is a helper module next to the tests, not part of fixar.
sys.path.insert(0, str(Path(__file__).parent))
