"""LightningModules, callbacks and the LightningCLI entry point (models live in mixrep.models)."""
