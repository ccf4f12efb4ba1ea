"""Using a trained run: one-off predictions, the web demo, the HTTP API."""
