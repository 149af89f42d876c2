# gunicorn for the Django reference. The worker setup is what measured best on 2 cores
# (bench/RESULTS.md, "Django's worker setup"); each knob can be overridden from the
# environment to try others.
import multiprocessing
import os

bind = os.environ.get("DJANGO_BIND", "127.0.0.1:8001")
# One process per core with 4 threads each: on 2 cores it served `me` and `refresh` at
# least as fast as gunicorn's classic 2 × cores + 1 sync workers, with half the memory,
# and keeps connections alive as wrk (and any real client) expects.
worker_class = os.environ.get("DJANGO_WORKER_CLASS", "gthread")
workers = int(os.environ.get("DJANGO_WORKERS", str(multiprocessing.cpu_count())))
threads = int(os.environ.get("DJANGO_THREADS", "4"))
# Load the application once in the master, so workers share its pages and start fast.
preload_app = True
backlog = 2048
# A login under a flood can wait many seconds for a worker; the default 30 s would kill
# busy workers mid-request.
timeout = 120
keepalive = 5
accesslog = None
loglevel = "warning"
