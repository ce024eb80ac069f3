"""Image computing on one subject: atlas registration, region metrics, diffusion tensor maps, QC."""
