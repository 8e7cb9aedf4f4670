"""The web service: a page, a REST API (plus the thesis' /help and /transform) and
asynchronous style-transfer jobs.

Layout: :mod:`.settings` reads the TOML file and environment into
:class:`~styleforge.config.ServiceSettings`; :mod:`.catalog` lists the styles;
``jobs/`` holds the job store (SQLite), the one job runner, and the two ways of running
it (an in-process pool, or Celery workers fed through Redis); ``routes/`` the HTTP
endpoints; :mod:`.mail` the result mails; :mod:`.app` builds the ASGI app.
"""
