"""Entry point of a probe worker process: ``python -m netsleuth.probes FD``."""

import sys
from multiprocessing.connection import Connection

from netsleuth.probes.worker import worker_main

worker_main(Connection(int(sys.argv[1])))
