"""Images and label images: reading, converting, per-mask records, synthetic micrographs."""
