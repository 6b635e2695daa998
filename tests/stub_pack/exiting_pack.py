"""A pack that exits at import: the loader must survive it and carry on."""

import sys

sys.exit(1)
