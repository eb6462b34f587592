"""moto's DynamoDB API server, handling one request at a time.

`moto_server` serves requests on parallel threads, and moto does not isolate
a TransactWriteItems from requests running beside it: two conditional
transactions can both pass their checks and one update is lost, which real
DynamoDB never allows. Serving requests one at a time gives the tests the
atomicity the production store relies on.

Usage: python scripts/moto_serial.py PORT
"""

import os
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
