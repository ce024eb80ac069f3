"""Atlas bundles: the shared region vocabulary, loading/validating bundles, the default phantom
atlas and import of real neonatal atlases (dHCP, Draw-EM/ALBERTs)."""
