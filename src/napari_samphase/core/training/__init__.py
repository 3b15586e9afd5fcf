"""Training models: data, losses and trainers."""
