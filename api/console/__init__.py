"""The operator console: server-rendered pages, a small script and SVG charts, served by
the control plane's own app under /console (docs/console.md)."""
