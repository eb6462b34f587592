"""Writes COUNT signed generic webhooks for scripts/bench.sh's load runs.

One line each: path, X-Scorehook-Timestamp, X-Scorehook-Signature, body
(tab-separated), signed now with the scheme of src/crm/signature.rs:
v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>. Each interaction has
its own id (PREFIX-i), so none is a duplicate; contacts cycle over CONTACTS.

Usage: python3 sign.py TENANT SECRET PREFIX COUNT CONTACTS > requests.tsv
"""

import hashlib
import hmac
import json
import sys
import time


def main() -> None:
    tenant, secret, prefix, count, contacts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    timestamp = str(int(time.time()))
    occurred = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = f"/v1/webhooks/generic/{tenant}"
    out = sys.stdout
    for i in range(count):
        body = json.dumps(
            {
                "id": f"{prefix}-{i}",
                "type": "email.opened",
                "contact_id": f"c{i % contacts}",
                "occurred_at": occurred,
                "attributes": {"campaign_id": "spring"},
            },
            separators=(",", ":"),
        )
        mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
        out.write(f"{path}\t{timestamp}\tv1={mac}\t{body}\n")


if __name__ == "__main__":
    main()
