"""Data: the embedded `zoo5` benchmark and the user's paired folders, one item format for both:
{"lq": 3×H×W float32 in [-1, 1], "gt": same, "task": str, "name": str}; `open_data(spec)` opens any data spec
(zoo5, a folder, NAME:PATH of a registered dataset) as one adapter interface (`sources`)."""

from .degradations import IMITATES, TASKS
from .io import DataError, read_image, write_png
from .paired import DataWarning, PairedFolders, discover
from .sources import open_data
from .zoo5 import SPLITS, Zoo5Eval, Zoo5Train

__all__ = ["TASKS", "IMITATES", "SPLITS", "Zoo5Train", "Zoo5Eval", "PairedFolders", "DataError", "DataWarning",
           "discover", "read_image", "write_png", "open_data"]
