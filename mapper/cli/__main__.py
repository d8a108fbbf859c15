"""``python -m mapper.cli`` runs the latmap CLI (as ``python -m mapper`` does)."""

import sys

from mapper.cli.entry import main

sys.exit(main())
