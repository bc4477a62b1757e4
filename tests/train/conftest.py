import sys
from pathlib import Path

# The stand-in task lives beside these tests; subprocess runs find it through PYTHONPATH.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
