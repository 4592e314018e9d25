"""Real-browser tests: the web/ pages in headless Chromium against the running server."""
