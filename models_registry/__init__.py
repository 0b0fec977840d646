"""models_registry package."""
