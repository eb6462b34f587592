"""Cold start of `scorehook serve`: process start to the first answered
GET /healthz, over a fresh data directory each run (the embedded store's
file is created too). Prints one line per run, in milliseconds.

Usage: python3 coldstart.py BINARY RUNS
"""

import http.client
import subprocess
import sys
import tempfile
import time


def one(binary: str) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = proc.stdout.readline()  # "scorehook listening on http://127.0.0.1:PORT"
            host, port = line.strip().rsplit("//", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            assert response.status == 200, response.status
            return elapsed * 1000
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    binary, runs = sys.argv[1], int(sys.argv[2])
    for _ in range(runs):
        print(f"{one(binary):.2f}")


if __name__ == "__main__":
    main()
