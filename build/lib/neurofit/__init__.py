"""neurofit: which task-optimised network explains which brain region, and how well."""

__version__ = "0.1.0"
