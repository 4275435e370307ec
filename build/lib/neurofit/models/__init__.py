"""Task-optimised networks: architectures, tasks, training, weights. Knows nothing about neural data."""
