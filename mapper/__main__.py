"""``python -m mapper`` runs the latmap CLI."""

import sys

from mapper.cli import main

sys.exit(main())
