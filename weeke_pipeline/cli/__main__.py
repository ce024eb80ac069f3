"""``python -m weeke_pipeline.cli``: the ``weeke`` command."""

import sys

from weeke_pipeline.cli.main import main

sys.exit(main())
