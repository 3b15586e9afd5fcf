"""From masks to phases: per-mask features, clustering, the same-phase query."""
