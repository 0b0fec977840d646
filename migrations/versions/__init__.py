"""Migration scripts, applied in order by `continuum db upgrade`."""
