"""The audit store: what the service was asked, what it answered, and what clinicians did with it."""
