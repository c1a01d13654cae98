"""The browser front end of ``play --web``: a local HTTP server and one page."""
