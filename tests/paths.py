"""Where the project's own folders are, for tests in any subfolder of tests/."""
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent
