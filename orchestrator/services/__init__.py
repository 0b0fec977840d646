"""Per-resource services: what the API's routes call."""
