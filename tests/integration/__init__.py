"""Integration tests against a real FHIR server (sekmet-fhir) and the health-IT kit's command-line tools."""
