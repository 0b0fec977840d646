"""What `continuum --help` says first; shared by the full app and the `solve`-only one."""

HELP = "Place DNN inference across device, edge and cloud at the least energy and carbon."
