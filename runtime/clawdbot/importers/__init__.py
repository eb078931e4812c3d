"""Importers: framework model files -> claw_ir Graph. Each one lives in its own subpackage."""
