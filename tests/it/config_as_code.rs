//! `scorehook apply` and `scorehook export`, the real binary against a
//! running server: a plan first and nothing changed, changes only with
//! `--yes`, applying twice changes nothing, and an export applies back to
//! no changes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::spawn_app::SECRET;
use crate::support::{TestApp, ADMIN_TOKEN};

async fn scorehook(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(args)
        .args(["--url", &app.base])
        .env("SCOREHOOK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("SCOREHOOK_URL")
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

fn tenant_file(points: i64) -> Value {
    json!({"tenant": "acme", "provider": "generic", "webhook_secret": SECRET, "crm": {"score_field": "lead_score"},
        "profiles": {"engagement": {"name": "Engagement", "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": points},
            {"id": "demo", "when": {"type": "deal.stage_changed"}, "points": 3}]}},
        "triggers": {"hot": {"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
            "actions": [{"type": "add_tag", "tag": "hot"}]}}})
}

#[tokio::test]
async fn apply_plans_then_applies_with_yes_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.json");
    std::fs::write(&file, tenant_file(1).to_string()).unwrap();
    let path = file.to_str().unwrap();

    let (ok, plan, err) = scorehook(&app, &["apply", "-f", path]).await;
    assert!(ok, "{err}");
    assert!(
        plan.contains("+ tenant") && plan.contains("+ profile engagement") && plan.contains("+ trigger hot"),
        "{plan}"
    );
    assert!(plan.contains("Run again with --yes"), "{plan}");
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a plan changes nothing");

    let (ok, out, err) = scorehook(&app, &["apply", "-f", path, "--yes"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("admin token (shown once): "), "{out}");
    let (_, profile) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!((profile["status"].clone(), profile["version"].clone()), (json!("published"), json!(1)));

    let (ok, again, _) = scorehook(&app, &["apply", "-f", path, "--yes"]).await;
    assert!(ok && again.contains("No changes.") && again.contains("= 3 unchanged"), "{again}");
    let (_, same) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!(same["version"], 1, "applying twice makes no new version");

    std::fs::write(&file, tenant_file(2).to_string()).unwrap();
    let (_, plan, _) = scorehook(&app, &["apply", "-f", path]).await;
    assert!(plan.contains("~ profile engagement: rule opened changed"), "{plan}");
    assert!(plan.contains("1 change(s) planned"), "{plan}");
    let (ok, _, err) = scorehook(&app, &["apply", "-f", path, "--yes"]).await;
    assert!(ok, "{err}");
    let (_, edited) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!((edited["version"].clone(), edited["published"]["rules"][0]["points"].clone()), (json!(2), json!(2)));
}

#[tokio::test]
async fn an_export_applies_back_to_no_changes() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.json");
    std::fs::write(&file, tenant_file(1).to_string()).unwrap();
    let (ok, _, err) = scorehook(&app, &["apply", "-f", file.to_str().unwrap(), "--yes"]).await;
    assert!(ok, "{err}");

    let (ok, exported, notes) = scorehook(&app, &["export", "--tenant", "acme"]).await;
    assert!(ok, "{notes}");
    assert!(notes.contains("write-only and not exported"), "{notes}");
    let exported: Value = serde_json::from_str(&exported).unwrap();
    assert!(exported.get("webhook_secret").is_none(), "no secret leaves the instance");
    let engagement = &exported["profiles"]["engagement"];
    assert_eq!(engagement["rules"], tenant_file(1)["profiles"]["engagement"]["rules"]);
    assert_eq!(engagement["name"], "Engagement");
    assert_eq!(exported["triggers"]["hot"]["actions"], tenant_file(1)["triggers"]["hot"]["actions"]);

    let back = dir.path().join("exported.json");
    std::fs::write(&back, exported.to_string()).unwrap();
    let (ok, plan, err) = scorehook(&app, &["apply", "-f", back.to_str().unwrap()]).await;
    assert!(ok && plan.contains("No changes."), "{plan}{err}");

    let (ok, _, err) = scorehook(&app, &["export", "--tenant", "nobody"]).await;
    assert!(!ok && err.contains("tenant nobody not found"), "{err}");
}

#[tokio::test]
async fn apply_wait_follows_the_recompute_to_its_end_with_done_of_total() {
    let app = TestApp::spawn_with_executor().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.json");
    std::fs::write(&file, tenant_file(1).to_string()).unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, err) = scorehook(&app, &["apply", "-f", path, "--yes"]).await;
    assert!(ok, "{err}");
    for contact in ["ana", "ben", "cy"] {
        let event = crate::support::interaction(&format!("open-{contact}"), "email.opened", contact);
        assert_eq!(app.post_webhook("acme", &event).await.0, StatusCode::ACCEPTED);
    }

    std::fs::write(&file, tenant_file(2).to_string()).unwrap();
    let args = ["apply", "-f", path, "--yes", "--wait"];
    let wait = scorehook(&app, &args);
    let (ok, out, err) = tokio::time::timeout(std::time::Duration::from_secs(60), wait).await.expect("it ends");
    assert!(ok, "{err}");
    let last = out.lines().rfind(|l| l.starts_with("recompute of engagement v2")).unwrap_or_default();
    assert_eq!(last, "recompute of engagement v2: 3/3 contacts (100%), done", "{out}");
    let (_, profile) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!(
        (profile["recompute"]["contacts_total"].clone(), profile["recompute"]["status"].clone()),
        (json!(3), json!("done"))
    );
    assert_eq!(app.score("acme", "ana").await, Some(json!(2)), "rescored at the new points");

    let (ok, _, err) = scorehook(&app, &["apply", "-f", path, "--wait"]).await;
    assert!(!ok && err.contains("--yes"), "--wait needs --yes: {err}");
}
