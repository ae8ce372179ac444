"""Pydantic models of the CDS Hooks 2.0 wire formats."""
