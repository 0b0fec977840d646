"""The `continuum` command line."""
