"""BIDS names and tables: :mod:`.names` (entities to a path and back), :mod:`.tables` (the
site's participants and sessions tables). The lowest layer: imports nothing of the package."""
