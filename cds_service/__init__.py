"""CDS Hooks 2.0 service that checks palbociclib (Ibrance) orders."""

from cds_service import native

__version__ = "0.1.0"

# Before any other module of the package is imported: a compiled build older than its source is not used.
native.guard()
