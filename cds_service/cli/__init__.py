"""Command-line tools: serve, evaluate."""
