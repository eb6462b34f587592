//! The ActiveCampaign connector (to be written): see `../shared/crm/activecampaign.md`.

use chrono::TimeDelta;

use super::inbound::{Inbound, InboundError, Request, Unresolved};
use super::limiter::Rate;
use super::outbound::{permanent, Answer, ApiConfig, Reach};
use super::DeliveryError;
use crate::engine::interaction::Interaction;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};

pub const API: ApiConfig =
    ApiConfig { provider: Provider::Activecampaign, default_base: "", rate: Rate::per(1.0, 1.0), slow_down };

fn slow_down(_answer: &Answer, _now: chrono::DateTime<chrono::Utc>) -> Option<TimeDelta> {
    None
}

pub fn verify(_tenant: &TenantRecord, _request: &Request<'_>) -> Result<(), InboundError> {
    Err(InboundError::Refused("the activecampaign connector is not available yet".into()))
}

pub fn normalize(_tenant: &TenantRecord, _request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    Err(InboundError::Malformed("the activecampaign connector is not available yet".into()))
}

pub async fn resolve(
    _reach: Reach<'_>,
    _tenant: &TenantRecord,
    _event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    Err(permanent("the activecampaign connector is not available yet"))
}

pub async fn deliver(_reach: Reach<'_>, _tenant: &TenantRecord, _item: &OutboxItem) -> Result<u16, DeliveryError> {
    Err(permanent("the activecampaign connector is not available yet"))
}
