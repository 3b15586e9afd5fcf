"""Pictures and tables made from results (no napari)."""
