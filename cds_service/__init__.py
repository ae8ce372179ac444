"""CDS Hooks 2.0 service that checks palbociclib (Ibrance) orders."""

__version__ = "0.1.0"
