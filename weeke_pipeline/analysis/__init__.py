"""The analysts' side: reads and consensus tables, data dictionaries, REDCap, unblinding,
agreement statistics and the automated injury index."""
