"""Jobs: the SQLite store every node shares (:mod:`.store`), the one runner that does the
work (:mod:`.runner`), and the two ways of feeding it: an in-process pool
(:mod:`.embedded`) or Celery workers behind Redis (:mod:`.celery_app`)."""
