"""Command-line tools: evaluate, audit, fixtures and send-hook (``serve`` lives in ``__main__``)."""
