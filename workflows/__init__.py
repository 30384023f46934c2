"""Workflow definitions. Modules here import only deterministic code."""
