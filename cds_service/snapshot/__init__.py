"""The typed, immutable patient snapshot that rules read, and the code that builds it from FHIR JSON."""
