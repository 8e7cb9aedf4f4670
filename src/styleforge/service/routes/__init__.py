"""HTTP routes: :mod:`.api` (the REST API under /api and /healthz), :mod:`.legacy` (the
thesis' /help, /transform and thumbnails) and :mod:`.pages` (the web page)."""
