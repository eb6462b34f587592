//! `move_stage` on Bitrix24: deals through their pipelines, leads through
//! their statuses, made as the user the action names.
//!
//! - A **deal** lives in a pipeline (a category, `CATEGORY_ID`; 0 is the
//!   general one) whose stage ids carry its prefix (`C2:WON`; category 0's
//!   are bare, `WON`). The action's `pipeline` is the category's id, or its
//!   name as `crm.category.list` gives it; `stage` is the stage's full id or
//!   the part after the prefix. A stage of another pipeline is refused
//!   before anything is sent; otherwise `crm.item.update` sets `categoryId`
//!   and `stageId` together, so the deal ends in the pipeline named (moving
//!   there if it was elsewhere) and never silently in another.
//! - A **lead** has no categories: its deal id is `L_<lead id>`, its
//!   pipeline is `lead`, and `crm.lead.update` sets its `STATUS_ID`.
//! - **`as_user`**: Bitrix24 records a change as the user whose incoming
//!   webhook makes it (`MODIFY_BY_ID` and `MOVED_BY_ID` are read-only), so a
//!   move `as_user` is made through that user's own webhook from
//!   `crm.user_webhooks`; without one it is refused, never made as someone else.

use serde_json::{json, Value};

use super::outbound::{numeric, rest, webhook, webhook_at, Reply};
use super::{API, LEAD_PIPELINE, LEAD_PREFIX, USER_WEBHOOKS};
use crate::crm::inbound::text;
use crate::crm::outbound::{deal_of, permanent, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// What the action moves: a deal or a lead, by its Bitrix24 id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Deal(u64),
    Lead(u64),
}

impl Target {
    /// The action's deal id (`759`, or `L_5` for a lead) with the pipeline it
    /// names: a lead moves only in pipeline `lead`, a deal never in it.
    fn of(deal_id: &str, pipeline: &str) -> Result<Self, DeliveryError> {
        let lead_pipeline = pipeline.eq_ignore_ascii_case(LEAD_PIPELINE);
        match deal_id.strip_prefix(LEAD_PREFIX) {
            Some(lead) if lead_pipeline => Ok(Target::Lead(numeric(lead, "the lead id")?)),
            Some(_) => Err(permanent(format!(
                "{deal_id} is a Bitrix24 lead: it moves only with pipeline \"{LEAD_PIPELINE}\", not {pipeline:?}"
            ))),
            None if lead_pipeline => Err(permanent(format!(
                "pipeline \"{LEAD_PIPELINE}\" moves leads (deal id L_<lead id>), and {deal_id:?} is a deal"
            ))),
            None => Ok(Target::Deal(numeric(deal_id, "the deal id")?)),
        }
    }
}

/// A move as far as it is known before the portal is asked.
enum Plan {
    Lead {
        lead: u64,
        status: String,
    },
    /// `known`: the category and full stage id, when the pipeline is an id.
    Deal {
        deal: u64,
        known: Option<(u64, String)>,
    },
}

/// Moves the action's deal or lead; `Ok` is the HTTP status of the last call.
pub(super) async fn move_stage(
    reach: Reach<'_>,
    tenant: &TenantRecord,
    item: &OutboxItem,
    pipeline: &str,
    stage: &str,
    as_user: Option<&str>,
) -> Result<u16, DeliveryError> {
    let deal = deal_of(item).ok_or_else(|| {
        permanent("move_stage needs a deal (or a lead, L_<id>), and the firing interaction carried none")
    })?;
    // Everything that can be refused without the portal is, before any call.
    let plan = match Target::of(deal.as_str(), pipeline)? {
        Target::Lead(lead) => Plan::Lead { lead, status: lead_status(stage)? },
        Target::Deal(deal) => {
            let known = category_id(pipeline).map(|category| full_stage(category, stage).map(|full| (category, full)));
            Plan::Deal { deal, known: known.transpose()? }
        }
    };
    let api = acting(reach, tenant, as_user)?;
    let reply: Reply = match plan {
        Plan::Lead { lead, status } => {
            rest(&api, "crm.lead.update", &json!({"id": lead, "fields": {"STATUS_ID": status}})).await?
        }
        Plan::Deal { deal, known } => {
            let (category, stage) = match known {
                Some(known) => known,
                None => {
                    let category = category_named(&api, pipeline).await?;
                    (category, full_stage(category, stage)?)
                }
            };
            let fields = json!({"categoryId": category, "stageId": stage});
            rest(&api, "crm.item.update", &json!({"entityTypeId": 2, "id": deal, "fields": fields})).await?
        }
    };
    Ok(reply.status)
}

/// The portal API as the user the move is made as: the tenant's webhook
/// when `as_user` is unset or is that webhook's own user, else the user's
/// webhook in `crm.user_webhooks` (whose URL must name that very user).
fn acting<'a>(reach: Reach<'a>, tenant: &'a TenantRecord, as_user: Option<&str>) -> Result<CrmApi<'a>, DeliveryError> {
    let own = webhook(tenant)?;
    let Some(user) = as_user else { return Ok(CrmApi::at(reach, tenant, &API, &own.base)) };
    let user = numeric(user, "as_user (a Bitrix24 user id)")?.to_string();
    if user == own.user {
        return Ok(CrmApi::at(reach, tenant, &API, &own.base));
    }
    let theirs = tenant.crm.get(USER_WEBHOOKS).and_then(|hooks| hooks.get(&user)).and_then(Value::as_str);
    let Some(theirs) = theirs.filter(|url| !url.is_empty()) else {
        return Err(permanent(format!(
            "as_user {user}: Bitrix24 records a move as the user whose incoming webhook makes it, crm.webhook_url \
             is user {}'s, and crm.user_webhooks has no webhook of user {user}: add one, then replay",
            own.user
        )));
    };
    let theirs = webhook_at(tenant, theirs, &format!("crm.{USER_WEBHOOKS}.{user}"))?;
    if theirs.user != user {
        return Err(permanent(format!(
            "crm.{USER_WEBHOOKS}.{user} is user {}'s webhook, not user {user}'s",
            theirs.user
        )));
    }
    Ok(CrmApi::at(reach, tenant, &API, &theirs.base))
}

/// A pipeline given by its category id (`0`, `2`).
fn category_id(pipeline: &str) -> Option<u64> {
    let digits = !pipeline.is_empty() && pipeline.len() <= 19 && pipeline.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| pipeline.parse().ok()).flatten()
}

/// The category of the deal pipeline named `name` (trimmed, case aside):
/// `crm.category.list` `{"entityTypeId": 2}`, which lists the pipelines the
/// webhook's user may read.
async fn category_named(api: &CrmApi<'_>, name: &str) -> Result<u64, DeliveryError> {
    let listed = rest(api, "crm.category.list", &json!({"entityTypeId": 2})).await?;
    let categories = listed.result.get("categories").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let wanted = name.trim();
    let found = categories
        .iter()
        .find(|c| text(c, "name").is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted)))
        .and_then(|c| text(c, "id"))
        .and_then(|id| category_id(&id));
    found.ok_or_else(|| {
        permanent(format!(
            "the portal has no deal pipeline named {wanted:?} that the webhook's user can see (crm.category.list): \
             name the pipeline by its category id or its exact name"
        ))
    })
}

/// The category a stage id's `C<n>:` prefix names, if it has one.
fn stage_category(stage: &str) -> Option<u64> {
    let (prefix, _) = stage.strip_prefix('C')?.split_once(':')?;
    category_id(prefix)
}

/// The stage's full id in `category`: category 0's ids are bare, another's
/// carry `C<category>:`. A stage of another category is refused.
fn full_stage(category: u64, stage: &str) -> Result<String, DeliveryError> {
    let refused = |own: u64| {
        permanent(format!(
            "stage {stage:?} is a stage of pipeline {own}, not of pipeline {category} the action names: \
             refused rather than moving the deal to another pipeline"
        ))
    };
    match stage_category(stage) {
        None if stage.is_empty() => Err(permanent("move_stage has an empty stage")),
        None if category == 0 => Ok(stage.to_owned()),
        None => Ok(format!("C{category}:{stage}")),
        Some(0) => Err(permanent(format!(
            "stage {stage:?} is no Bitrix24 stage id: the stages of pipeline 0 have no prefix (NEW, WON)"
        ))),
        Some(own) if own == category => Ok(stage.to_owned()),
        Some(own) => Err(refused(own)),
    }
}

/// A lead's status (`NEW`, `IN_PROCESS`, `UC_…`); a deal's stage id is refused.
fn lead_status(stage: &str) -> Result<String, DeliveryError> {
    match stage_category(stage) {
        Some(own) => Err(permanent(format!(
            "stage {stage:?} is a stage of deal pipeline {own}: a lead moves to a lead status (NEW, IN_PROCESS, …)"
        ))),
        None if stage.is_empty() => Err(permanent("move_stage has an empty stage")),
        None => Ok(stage.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: std::fmt::Debug>(outcome: Result<T, DeliveryError>) -> String {
        match outcome {
            Err(DeliveryError::Permanent { message, .. }) => message,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn stages_get_their_pipeline_s_prefix_and_another_pipeline_s_are_refused() {
        assert_eq!(full_stage(0, "WON").unwrap(), "WON");
        assert_eq!(full_stage(2, "WON").unwrap(), "C2:WON");
        assert_eq!(full_stage(2, "C2:WON").unwrap(), "C2:WON");
        assert_eq!(full_stage(2, "C2:UC_X1Y2").unwrap(), "C2:UC_X1Y2");
        assert_eq!(full_stage(12, "CONTACTED").unwrap(), "C12:CONTACTED", "a C that is no prefix");
        let other = refused(full_stage(1, "C2:WON"));
        assert!(other.contains("pipeline 2") && other.contains("pipeline 1"), "{other}");
        assert!(refused(full_stage(0, "C2:WON")).contains("pipeline 2"));
        assert!(refused(full_stage(0, "C0:WON")).contains("no prefix"));
        assert!(refused(full_stage(3, "")).contains("empty"));
    }

    #[test]
    fn pipelines_are_category_ids_or_names() {
        assert_eq!(category_id("0"), Some(0));
        assert_eq!(category_id("17"), Some(17));
        for name in ["sales", "", "-1", "1.5", " 2", "99999999999999999999999"] {
            assert_eq!(category_id(name), None, "{name:?}");
        }
        assert_eq!(stage_category("C7:NEW"), Some(7));
        assert_eq!(stage_category("C:NEW"), None);
        assert_eq!(stage_category("NEW"), None);
    }

    #[test]
    fn leads_move_only_in_pipeline_lead_and_deals_never_do() {
        assert_eq!(Target::of("759", "2").unwrap(), Target::Deal(759));
        assert_eq!(Target::of("L_5", "lead").unwrap(), Target::Lead(5));
        assert_eq!(Target::of("L_5", "Lead").unwrap(), Target::Lead(5));
        assert!(refused(Target::of("L_5", "0")).contains("lead"));
        assert!(refused(Target::of("759", "lead")).contains("is a deal"));
        refused(Target::of("L_x", "lead"));
        refused(Target::of("d_7", "0"));
        assert_eq!(lead_status("IN_PROCESS").unwrap(), "IN_PROCESS");
        assert!(refused(lead_status("C2:WON")).contains("deal pipeline 2"));
    }
}
