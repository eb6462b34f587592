//! The CRM connectors end to end: real provider bodies in, through the
//! webhook route, and actions out to a local fake of each CRM's API.

mod activecampaign;
mod bitrix24;
mod highlevel;
mod hubspot;
mod pipedrive;
mod shared;
