//! Fired actions into Pipedrive API calls (pipedrive.md §3), and how
//! Pipedrive says "slow down".
//!
//! Every call carries the tenant's API token as `x-api-token` (never in the
//! query string, where it would reach access logs). Deals, persons and
//! activities use API v2 (`PATCH`, strict JSON types); notes have no v2
//! endpoint and use `POST /api/v1/notes`. Tags are person labels: the tag
//! name is looked up among the label field's options (created when
//! missing), then the person's label ids are read, changed and written back.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{keys, API};
use crate::crm::outbound::{contact_of, deal_of, permanent, retry_after_seconds, setting, Act, Answer, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// Field codes of the built-in person label field (v2 `label_ids`; older accounts `label`).
const BUILT_IN_LABELS: &[&str] = &["label_ids", "label"];

/// The most pages of `personFields` read while looking for the label field.
const MAX_FIELD_PAGES: usize = 20;

/// How long to wait after a 429 that says nothing about when to come back.
const DEFAULT_WAIT: TimeDelta = TimeDelta::seconds(2);

/// 429 means "slow down": wait `Retry-After` if given, else `x-ratelimit-reset`
/// (seconds left in the rolling window), else 2 s, and never less than 1 s.
pub fn slow_down(answer: &Answer, _now: DateTime<Utc>) -> Option<TimeDelta> {
    if answer.status != 429 {
        return None;
    }
    let reset = || {
        let seconds = answer.header("x-ratelimit-reset")?.trim().parse::<f64>().ok()?;
        let seconds = seconds.ceil();
        (seconds.is_finite() && (0.0..=86_400.0).contains(&seconds)).then(|| TimeDelta::seconds(seconds as i64))
    };
    let wait = retry_after_seconds(answer).or_else(reset).unwrap_or(DEFAULT_WAIT);
    Some(wait.max(TimeDelta::seconds(1)))
}

/// The tenant's Pipedrive API, authenticated with its API token.
pub fn api<'a>(reach: Reach<'a>, tenant: &'a TenantRecord) -> Result<CrmApi<'a>, DeliveryError> {
    let token = setting(tenant, keys::API_TOKEN)?;
    CrmApi::new(reach, tenant, &API)?.with_header("x-api-token", token)
}

/// Performs one fired action through the API; `Ok` is the status of the last call.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let act = Act::of(item)?;
    let api = api(reach, tenant)?;
    match act {
        Act::MoveStage { pipeline, stage, as_user } => {
            move_stage(&api, item, &pipeline, &stage, as_user.as_deref()).await
        }
        Act::AddTag(tag) => label(&api, item, &tag, true).await,
        Act::RemoveTag(tag) => label(&api, item, &tag, false).await,
        Act::CreateTask { title, body, due_at, assignee } => {
            create_task(&api, item, &title, body.as_deref(), due_at, assignee.as_deref()).await
        }
        Act::AddNote(text) => add_note(&api, item, &text).await,
        Act::SetField { field, value } => set_field(&api, item, &field, value).await,
    }
}

/// `PATCH /api/v2/deals/{deal}` with a numeric `stage_id` (the pipeline
/// follows the stage; a stage given by name is looked up in the numeric
/// pipeline). The API attributes the change to the token's user, so
/// `as_user` (a user id) makes that user the deal's owner in the same call.
async fn move_stage(
    api: &CrmApi<'_>,
    item: &OutboxItem,
    pipeline: &str,
    stage: &str,
    as_user: Option<&str>,
) -> Result<u16, DeliveryError> {
    let deal = deal_of(item).ok_or_else(|| permanent("move_stage needs a deal, and this action names none"))?;
    let deal = number(deal.as_str(), "deal")?;
    let owner = as_user.map(|user| number(user, "as_user (a Pipedrive user id)")).transpose()?;
    let stage_id = match stage.trim().parse::<u64>() {
        Ok(id) => id,
        Err(_) => stage_by_name(api, pipeline, stage).await?,
    };
    let mut change = json!({"stage_id": stage_id});
    if let Some(owner) = owner {
        change["owner_id"] = json!(owner);
    }
    Ok(api.call(Method::PATCH, &format!("/api/v2/deals/{deal}"), Some(&change)).await?.status)
}

async fn stage_by_name(api: &CrmApi<'_>, pipeline: &str, stage: &str) -> Result<u64, DeliveryError> {
    let pipeline = pipeline.trim().parse::<u64>().map_err(|_| {
        permanent(format!(
            "Pipedrive stages are ids: {stage:?} is a name, so the pipeline must be an id, not {pipeline:?}"
        ))
    })?;
    let answer = api.call(Method::GET, &format!("/api/v2/stages?pipeline_id={pipeline}"), None).await?;
    let stages = answer.body.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    stages
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(stage.trim())))
        .and_then(|s| s.get("id").and_then(Value::as_u64))
        .ok_or_else(|| permanent(format!("Pipedrive pipeline {pipeline} has no stage named {stage:?}")))
}

/// Where a person's tags live: the built-in label field, or a custom multi-option field.
struct Labels {
    /// The field's code, for creating options.
    code: String,
    /// The built-in field is written as `label_ids`; a custom one under `custom_fields`.
    built_in: bool,
}

/// Adds or removes one label on the person (read-modify-write: v2 replaces the whole list).
async fn label(api: &CrmApi<'_>, item: &OutboxItem, tag: &str, add: bool) -> Result<u16, DeliveryError> {
    let person = number(contact_of(item)?.as_str(), "person")?;
    let (labels, options) = label_field(api).await?;
    let option = match (find_option(&options, tag), add) {
        (Some(id), _) => id,
        (None, true) => create_option(api, &labels, tag).await?,
        (None, false) => return Ok(200), // no such label anywhere, so not on this person either
    };
    let path = format!("/api/v2/persons/{person}");
    let current = api.call(Method::GET, &path, None).await?;
    let data = current.body.get("data").cloned().unwrap_or_default();
    let mut ids = match labels.built_in {
        true => option_ids(data.get("label_ids").or_else(|| data.get("label"))),
        false => option_ids(data.get("custom_fields").and_then(|c| c.get(labels.code.as_str()))),
    };
    if ids.contains(&option) == add {
        return Ok(current.status);
    }
    if add {
        ids.push(option);
    } else {
        ids.retain(|id| *id != option);
    }
    let body = match labels.built_in {
        true => json!({"label_ids": ids}),
        false => json!({"custom_fields": {labels.code.as_str(): ids}}),
    };
    Ok(api.call(Method::PATCH, &path, Some(&body)).await?.status)
}

/// The label field and its options.
async fn label_field(api: &CrmApi<'_>) -> Result<(Labels, Vec<Value>), DeliveryError> {
    let configured = api.tenant().crm.get(keys::LABEL_FIELD).and_then(Value::as_str).filter(|c| !c.is_empty());
    let wanted = |field: &Value| {
        let code = field.get("field_code").and_then(Value::as_str).unwrap_or_default();
        match configured {
            Some(configured) => code == configured,
            None => BUILT_IN_LABELS.contains(&code),
        }
    };
    let Some(field) = person_field(api, wanted).await? else {
        return Err(permanent(match configured {
            Some(code) => format!("Pipedrive has no person field {code:?} (crm.{})", keys::LABEL_FIELD),
            None => format!(
                "Pipedrive lists no person label field: set crm.{} to a multi-option field's code",
                keys::LABEL_FIELD
            ),
        }));
    };
    let code = field.get("field_code").and_then(Value::as_str).unwrap_or_default();
    let labels = Labels { code: code.to_owned(), built_in: BUILT_IN_LABELS.contains(&code) };
    let options = field.get("options").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok((labels, options))
}

/// The first person field `wanted` accepts, from `GET /api/v2/personFields` (cursor-paged).
async fn person_field(api: &CrmApi<'_>, wanted: impl Fn(&Value) -> bool) -> Result<Option<Value>, DeliveryError> {
    let mut path = "/api/v2/personFields".to_owned();
    for _ in 0..MAX_FIELD_PAGES {
        let answer = api.call(Method::GET, &path, None).await?;
        let fields = answer.body.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if let Some(field) = fields.iter().find(|f| wanted(f)) {
            return Ok(Some(field.clone()));
        }
        let next =
            answer.body.pointer("/additional_data/next_cursor").and_then(Value::as_str).filter(|c| !c.is_empty());
        let Some(cursor) = next else { break };
        let cursor: String = form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        path = format!("/api/v2/personFields?cursor={cursor}");
    }
    Ok(None)
}

/// Creates the label option; its id comes back in the answer.
async fn create_option(api: &CrmApi<'_>, labels: &Labels, tag: &str) -> Result<u64, DeliveryError> {
    let path = format!("/api/v2/personFields/{}/options", labels.code);
    let answer = api.call(Method::POST, &path, Some(&json!([{"label": tag}]))).await?;
    let data = answer.body.get("data").unwrap_or(&Value::Null);
    let options = data.as_array().or_else(|| data.get("options").and_then(Value::as_array));
    find_option(options.map(Vec::as_slice).unwrap_or_default(), tag).ok_or_else(|| DeliveryError::Retryable {
        http_status: Some(answer.status),
        message: format!("Pipedrive did not return the id of the new label {tag:?}; the next attempt looks it up"),
        retry_after: None,
    })
}

/// The id of the option labelled `tag` (exactly, else ignoring case).
fn find_option(options: &[Value], tag: &str) -> Option<u64> {
    let label = |o: &Value| o.get("label").and_then(Value::as_str).map(str::to_owned);
    let exact = options.iter().find(|o| label(o).as_deref() == Some(tag));
    let loose = || options.iter().find(|o| label(o).is_some_and(|l| l.eq_ignore_ascii_case(tag)));
    exact.or_else(loose).and_then(|o| o.get("id")).and_then(Value::as_u64)
}

/// Option ids however Pipedrive wrote them: `[5, 9]`, `[{"id": 5}]`, `{"values": [{"id": 5}]}` or one id.
fn option_ids(value: Option<&Value>) -> Vec<u64> {
    match value {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|i| i.as_u64().or_else(|| i.get("id")?.as_u64())).collect()
        }
        Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
        Some(object @ Value::Object(_)) => option_ids(object.get("values")),
        _ => Vec::new(),
    }
}

/// `POST /api/v2/activities`: a task with the person as primary participant, on the deal if any.
async fn create_task(
    api: &CrmApi<'_>,
    item: &OutboxItem,
    title: &str,
    body: Option<&str>,
    due_at: Option<DateTime<Utc>>,
    assignee: Option<&str>,
) -> Result<u16, DeliveryError> {
    let person = number(contact_of(item)?.as_str(), "person")?;
    let task_type = api.tenant().crm.get(keys::TASK_TYPE).and_then(Value::as_str).filter(|t| !t.is_empty());
    let mut activity = Map::new();
    activity.insert("subject".into(), json!(title));
    activity.insert("type".into(), json!(task_type.unwrap_or("task")));
    if let Some(due) = due_at {
        activity.insert("due_date".into(), json!(due.format("%Y-%m-%d").to_string()));
        activity.insert("due_time".into(), json!(due.format("%H:%M").to_string()));
    }
    if let Some(deal) = deal_number(item)? {
        activity.insert("deal_id".into(), json!(deal));
    }
    activity.insert("participants".into(), json!([{"person_id": person, "primary": true}]));
    if let Some(body) = body {
        activity.insert("note".into(), json!(html(body)));
    }
    if let Some(user) = assignee {
        activity.insert("owner_id".into(), json!(number(user, "the assignee (a Pipedrive user id)")?));
    }
    activity.insert("done".into(), json!(false));
    Ok(api.call(Method::POST, "/api/v2/activities", Some(&Value::Object(activity))).await?.status)
}

/// `POST /api/v1/notes` (no v2 endpoint): HTML content on the person, and the deal if any.
async fn add_note(api: &CrmApi<'_>, item: &OutboxItem, text: &str) -> Result<u16, DeliveryError> {
    let person = number(contact_of(item)?.as_str(), "person")?;
    let mut note = Map::new();
    note.insert("content".into(), json!(html(text)));
    note.insert("person_id".into(), json!(person));
    if let Some(deal) = deal_number(item)? {
        note.insert("deal_id".into(), json!(deal));
    }
    Ok(api.call(Method::POST, "/api/v1/notes", Some(&Value::Object(note))).await?.status)
}

/// `PATCH /api/v2/persons/{id}` `{"custom_fields": {"<field code>": score}}`; no score clears the field.
/// A field given by name rather than by its 40-character code is looked up first.
async fn set_field(api: &CrmApi<'_>, item: &OutboxItem, field: &str, value: Option<f64>) -> Result<u16, DeliveryError> {
    let person = number(contact_of(item)?.as_str(), "person")?;
    let code = field_code(api, field).await?;
    let field = code.as_str();
    let score = match value {
        // Whole scores go as JSON integers; a double field takes either.
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => json!(v as i64),
        Some(v) => json!(v),
        None => Value::Null,
    };
    let body = json!({"custom_fields": {field: score}});
    Ok(api.call(Method::PATCH, &format!("/api/v2/persons/{person}"), Some(&body)).await?.status)
}

/// The code of a person field named `field`: itself when it already is a
/// code (40 hex characters), else the code of the field of that name.
async fn field_code(api: &CrmApi<'_>, field: &str) -> Result<String, DeliveryError> {
    if is_field_code(field) {
        return Ok(field.to_owned());
    }
    let named = |f: &Value| {
        let is = |key: &str| f.get(key).and_then(Value::as_str).is_some_and(|v| v.eq_ignore_ascii_case(field));
        is("field_name") || is("field_code")
    };
    let found = person_field(api, named).await?;
    let code = found.as_ref().and_then(|f| f.get("field_code")).and_then(Value::as_str).filter(|c| !c.is_empty());
    code.map(str::to_owned).ok_or_else(|| {
        permanent(format!(
            "Pipedrive has no person field named {field:?}: create a numeric person field and set crm.score_field to its code"
        ))
    })
}

/// Custom field codes are 40-character hex hashes.
fn is_field_code(field: &str) -> bool {
    field.len() == 40 && field.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pipedrive ids are numbers, and v2 refuses them as strings.
fn number(id: &str, what: &str) -> Result<u64, DeliveryError> {
    id.parse().map_err(|_| permanent(format!("Pipedrive {what} ids are numbers, and {id:?} is not one")))
}

/// The action's deal as a number; a deal id that is not one is refused rather than dropped.
fn deal_number(item: &OutboxItem) -> Result<Option<u64>, DeliveryError> {
    deal_of(item).map(|deal| number(deal.as_str(), "deal")).transpose()
}

/// Plain text as the HTML Pipedrive stores notes in: escaped, one paragraph, line breaks kept.
fn html(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!("<p>{}</p>", escaped.replace('\n', "<br>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> Answer {
        Answer::fake(status, headers, Value::Null)
    }

    #[test]
    fn a_429_waits_as_long_as_pipedrive_says() {
        let now = Utc::now();
        let cases: &[(&str, Answer, Option<TimeDelta>)] = &[
            (
                "Retry-After wins",
                answer(429, &[("retry-after", "7"), ("x-ratelimit-reset", "1")]),
                Some(TimeDelta::seconds(7)),
            ),
            ("else the window's reset", answer(429, &[("x-ratelimit-reset", "1.2")]), Some(TimeDelta::seconds(2))),
            ("else two seconds", answer(429, &[]), Some(TimeDelta::seconds(2))),
            ("never less than a second", answer(429, &[("x-ratelimit-reset", "0")]), Some(TimeDelta::seconds(1))),
            ("garbage is ignored", answer(429, &[("x-ratelimit-reset", "soon")]), Some(TimeDelta::seconds(2))),
            ("other statuses are not slow-downs", answer(503, &[("retry-after", "7")]), None),
            ("a Cloudflare 403 is not one either", answer(403, &[]), None),
        ];
        for (why, answer, expected) in cases {
            assert_eq!(slow_down(answer, now), *expected, "{why}");
        }
    }

    #[test]
    fn reads_option_ids_in_every_shape() {
        assert_eq!(option_ids(Some(&json!([5, 9]))), vec![5, 9]);
        assert_eq!(option_ids(Some(&json!([{"id": 5}]))), vec![5]);
        assert_eq!(option_ids(Some(&json!({"type": "set", "values": [{"id": 13}]}))), vec![13]);
        assert_eq!(option_ids(Some(&json!(4))), vec![4]);
        assert_eq!(option_ids(Some(&Value::Null)), Vec::<u64>::new());
        assert_eq!(option_ids(None), Vec::<u64>::new());
    }

    #[test]
    fn finds_options_exactly_then_ignoring_case() {
        let options = vec![json!({"id": 1, "label": "hot"}), json!({"id": 2, "label": "Hot"})];
        assert_eq!(find_option(&options, "Hot"), Some(2));
        assert_eq!(find_option(&options, "HOT"), Some(1));
        assert_eq!(find_option(&options, "cold"), None);
    }

    #[test]
    fn tells_field_codes_from_field_names() {
        assert!(is_field_code("d4de1c1518b4531717c676029a45911c340390a6"));
        assert!(!is_field_code("scorehook_score"));
        assert!(!is_field_code("d4de1c1518b4531717c676029a45911c340390az"));
    }

    #[test]
    fn notes_are_escaped_html() {
        assert_eq!(html("a < b & \"c\"\nnext"), "<p>a &lt; b &amp; &quot;c&quot;<br>next</p>");
    }
}
