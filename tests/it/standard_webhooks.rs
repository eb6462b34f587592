//! Standard Webhooks both ways: actions are signed with the tenant's own
//! signing secret so receivers verify them with the `standardwebhooks`
//! library from PyPI as it is (and such a request cannot be replayed into
//! scorehook), senders may sign generic webhooks with that library too,
//! and tenants stored before signing secrets keep the deprecated signature
//! until they set one.

use std::path::PathBuf;
use std::process::Command;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;
use scorehook::crm::{signature, standard_webhooks};
use scorehook::ids::TenantId;

use crate::support::recording_crm::Recorded;
use crate::support::spawn_app::{SECRET, SIGNING_SECRET};
use crate::support::{interaction, RecordingCrm, TestApp};

/// The test venv's Python with `standardwebhooks`, which `scripts/test.sh`
/// installs. Missing, the tests are skipped on a developer's machine and
/// fail under CI.
fn python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let found = Command::new(&python).args(["-c", "import standardwebhooks"]).output();
    if found.is_ok_and(|out| out.status.success()) {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("CI=true but .venv has no standardwebhooks: run the tests with scripts/test.sh");
    }
    eprintln!("skipped: no .venv with standardwebhooks (scripts/test.sh installs it)");
    None
}

/// Runs `script` with the library; `args` become `sys.argv[1:]`. Its stdout.
fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(python).arg("-c").arg(script).args(args).output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

const VERIFY: &str = r#"
import sys
from standardwebhooks.webhooks import Webhook
secret, msg_id, timestamp, signature, body = sys.argv[1:]
Webhook(secret).verify(body.encode(), {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature})
print("verified")
"#;

const SIGN: &str = r#"
import sys, datetime
from standardwebhooks.webhooks import Webhook
secret, msg_id, timestamp, body = sys.argv[1:]
at = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.timezone.utc)
print(Webhook(secret).sign(msg_id, at, body))
"#;

/// Whether the `standardwebhooks` library accepts this delivery with `secret`.
fn library_verifies(python: &PathBuf, secret: &str, request: &Recorded) -> Result<String, String> {
    let header = |name: &str| request.header(name).unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&request.raw).into_owned();
    let args =
        [secret.to_owned(), header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"), body];
    run_python(python, VERIFY, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A tenant whose trigger fires one `add_tag` on the first e-mail open.
async fn tag_on_open(app: &TestApp, tenant: &str) {
    let profile = format!("/v1/tenants/{tenant}/profiles/e");
    let rules = json!({"name": "E", "rules": [{"id": "o", "when": {"type": "email.opened"}, "points": 1}]});
    assert_eq!(app.admin(Method::PUT, &profile, Some(rules)).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
    let trigger = json!({"name": "Tag", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
                         "actions": [{"type": "add_tag", "tag": "opened"}]});
    let (status, body) = app.admin(Method::PUT, &format!("/v1/tenants/{tenant}/triggers/tag"), Some(trigger)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The one delivery an open of `contact` makes.
async fn delivered_on_open(app: &TestApp, crm: &RecordingCrm, tenant: &str, event: &str) -> Recorded {
    let (status, body) = app.post_webhook(tenant, &interaction(event, "email.opened", "jhon")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.drain_outbox().await;
    let mut received = crm.received().await;
    assert_eq!(received.len(), 1, "one action delivered");
    received.remove(0)
}

#[tokio::test]
async fn actions_verify_with_the_standardwebhooks_library_and_cannot_be_replayed_inbound() {
    let Some(python) = python() else { return };
    let (app, crm) = (TestApp::spawn().await, RecordingCrm::start().await);
    let body = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": crm.url});
    let (status, created) = app.admin(Method::PUT, "/v1/tenants/acme", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let made = created["signing_secret"].as_str().expect("a signing secret is made and shown once").to_owned();
    assert!(standard_webhooks::key_of(&made).is_some(), "{made}");
    let (_, shown) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert!(!shown.to_string().contains(&made), "reads never show it: {shown}");
    assert_eq!(shown["outbound_signature"], "standard_webhooks");
    tag_on_open(&app, "acme").await;

    let request = delivered_on_open(&app, &crm, "acme", "open-1").await;
    assert_eq!(request.header("webhook-id"), request.body["id"].as_str());
    assert_eq!(library_verifies(&python, &made, &request).as_deref(), Ok("verified"));
    assert!(library_verifies(&python, SIGNING_SECRET, &request).is_err(), "another key does not verify");
    assert_eq!(request.header("x-scorehook-signature"), None, "nothing signed with the inbound secret");

    // Sent back to scorehook as a webhook, with every header it carried: refused, nothing stored.
    let mut replay = app.http.post(format!("{}/v1/webhooks/generic/acme", app.base)).body(request.raw.to_vec());
    for (name, value) in &request.headers {
        if name != "host" && name != "content-length" {
            replay = replay.header(name, value);
        }
    }
    let replayed = replay.send().await.unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.actions("acme", "done").await.len(), 1, "the replay fired nothing");
}

#[tokio::test]
async fn a_sender_signing_with_the_standardwebhooks_library_is_accepted_inbound() {
    let Some(python) = python() else { return };
    let app = TestApp::spawn().await;
    let secret = standard_webhooks::new_secret().unwrap();
    let body = json!({"provider": "generic", "webhook_secret": secret});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/acme", Some(body)).await.0, StatusCode::CREATED);

    let event = serde_json::to_string(&interaction("sw-1", "email.opened", "jhon")).unwrap();
    let timestamp = app.clock.now().timestamp().to_string();
    let signed = run_python(&python, SIGN, &[&secret, "msg_1", &timestamp, &event]).unwrap();
    let post = |signature: String, body: String| {
        app.http
            .post(format!("{}/v1/webhooks/generic/acme", app.base))
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .body(body)
            .send()
    };
    let tampered = post(signed.clone(), event.replace("jhon", "mallory")).await.unwrap();
    assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
    let accepted = post(signed, event).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(answer, json!({"accepted": 1, "duplicates": 0}));
}

#[tokio::test]
async fn a_tenant_stored_before_signing_secrets_keeps_the_old_signature_until_it_sets_one() {
    let (app, crm) = (TestApp::spawn().await, RecordingCrm::start().await);
    app.create_tenant("acme", Some(&crm.url)).await;
    tag_on_open(&app, "acme").await;
    // As a release before signing secrets stored it.
    let store = app.local.service.store.clone();
    let id = TenantId::parse("acme").unwrap();
    let mut old = store.tenant(&id).await.unwrap().unwrap();
    (old.signing_secret, old.previous_signing) = (None, None);
    store.put_tenant(&old).await.unwrap();
    // An update that names no signing secret keeps none (and refreshes this process's view).
    let update = json!({"provider": "generic", "actions_url": crm.url});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/acme", Some(update)).await.0, StatusCode::OK);
    let (_, shown) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(shown["outbound_signature"], "x_scorehook_legacy");

    let legacy = delivered_on_open(&app, &crm, "acme", "open-1").await;
    let verify_legacy = |r: &Recorded| {
        signature::verify(
            SECRET,
            r.header("x-scorehook-timestamp"),
            r.header("x-scorehook-signature"),
            &r.raw,
            app.clock.now(),
        )
    };
    assert_eq!(verify_legacy(&legacy), Ok(()));
    assert_eq!(legacy.header("webhook-signature"), None);

    // A bad secret is refused and changes nothing.
    let put = |signing: &str| json!({"provider": "generic", "actions_url": crm.url, "signing_secret": signing});
    let (status, refused) = app.admin(Method::PUT, "/v1/tenants/acme", Some(put("whsec_c2hvcnQ="))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["path"], "signing_secret");
    assert_eq!(store.tenant(&id).await.unwrap().unwrap().signing_secret, None);
    // Nor may it be the secret webhooks are checked with: its actions could be replayed inbound.
    let same = json!({"provider": "generic", "actions_url": crm.url, "webhook_secret": SIGNING_SECRET,
                      "signing_secret": SIGNING_SECRET});
    let (status, refused) = app.admin(Method::PUT, "/v1/tenants/acme", Some(same)).await;
    assert_eq!((status, &refused["error"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("signing_secret")));
    assert_eq!(store.tenant(&id).await.unwrap().unwrap().signing_secret, None);

    // Set: both signatures for a day, so the receiver can switch without refusing a delivery.
    let (status, set) = app.admin(Method::PUT, "/v1/tenants/acme", Some(put(SIGNING_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["outbound_signature"], "standard_webhooks");
    assert!(set["previous_signing_expires_at"].is_string(), "{set}");
    let both = delivered_on_open(&app, &crm, "acme", "open-2").await;
    assert_eq!(verify_legacy(&both), Ok(()));
    let key = standard_webhooks::key_of(SIGNING_SECRET).unwrap();
    let verify_standard = |r: &Recorded| {
        standard_webhooks::verify(
            &key,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.raw,
            app.clock.now(),
        )
    };
    assert_eq!(verify_standard(&both), Ok(()));

    app.advance(TimeDelta::hours(24));
    let after = delivered_on_open(&app, &crm, "acme", "open-3").await;
    assert_eq!(verify_standard(&after), Ok(()));
    assert_eq!(after.header("x-scorehook-signature"), None, "the grace is over");
}
