"""Prefetch: the data a hook call brings, and the FHIR fallback for what it leaves out."""
