"""Access to the EHR's FHIR server (the only I/O towards it) and FHIR model checks."""
