"""Seeds the server scripts/api-test.sh drives, through its own API.

The example tenant (applied by `serve --config examples/`) gets an
actions_url where nothing listens, so fired actions fail and can be
replayed; a published deal profile; and signed webhooks that score two
contacts and a deal and fire the example trigger. Standard library only.
"""

import hashlib
import hmac
import json
import sys
import time
import urllib.request


def call(base, method, path, token=None, body=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def main(base, token, tenant_file):
    with open(tenant_file) as f:
        tenant = json.load(f)
    name, secret = tenant["tenant"], tenant["webhook_secret"]
    call(base, "PUT", f"/v1/tenants/{name}", token, {
        "provider": tenant["provider"], "actions_url": "http://127.0.0.1:9/actions", "crm": tenant.get("crm", {}),
    })
    deal_profile = {"name": "Deal heat", "subject": "deal",
                    "rules": [{"id": "stage", "when": {"type": "deal.stage_changed"}, "points": 3}]}
    call(base, "PUT", f"/v1/tenants/{name}/profiles/deal_heat", token, deal_profile)
    call(base, "POST", f"/v1/tenants/{name}/profiles/deal_heat/publish", token)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [{"id": f"open-{i}", "type": "email.opened", "contact_id": "jhon", "occurred_at": now} for i in range(4)]
    events.append({"id": "stage-1", "type": "deal.stage_changed", "contact_id": "jhon", "deal_id": "d_7",
                   "occurred_at": now, "attributes": {"pipeline": "sales", "stage": "demo"}})
    events.append({"id": "open-ana", "type": "email.opened", "contact_id": "ana", "occurred_at": now})
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    status, report = call(base, "POST", f"/v1/webhooks/generic/{name}", body=body, headers={
        "X-Scorehook-Timestamp": stamp, "X-Scorehook-Signature": "v1=" + signature,
    })
    if status != 202 or report.get("accepted") != len(events):
        sys.exit(f"api_seed: the webhook answered {status} {report}")
    status, contacts = call(base, "GET", f"/v1/tenants/{name}/contacts?profile=engagement", token)
    print(f"seeded: {len(contacts['contacts'])} contacts scored, deal d_7, trigger fired")


if __name__ == "__main__":
    main(*sys.argv[1:4])
