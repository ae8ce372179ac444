"""Who may call the service: CDS Hooks 2.0 JWT authentication of EHR clients."""
