//! Leaderboard cursors: opaque, bound to the tenant, profile and order they
//! were issued for, and tamper-evident: each carries an HMAC keyed with a
//! per-tenant secret (the hash of the tenant's token, which never leaves the
//! store), so an edited or forged cursor is refused.

use hmac::Mac;

use crate::keyed_hash::{keyed, HmacSha256};

use crate::engine::points::Points;
use crate::ids::{ContactId, ProfileId, TenantId};
use crate::store::Order;

const VERSION: &str = "v1";
const SEP: char = '\u{1f}';
/// Bytes of the HMAC kept in a cursor: forging one is a 2^-128 guess.
const TAG_BYTES: usize = 16;

fn order_name(order: Order) -> &'static str {
    match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    }
}

fn mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
    keyed(key, &[payload])
}

pub fn encode(key: &[u8], tenant: &TenantId, profile: &ProfileId, order: Order, after: &(Points, ContactId)) -> String {
    let payload =
        [VERSION, tenant.as_str(), profile.as_str(), order_name(order), &after.0.cents().to_string(), after.1.as_str()]
            .join(&SEP.to_string());
    let tag = mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", hex::encode(&payload), hex::encode(&tag[..TAG_BYTES]))
}

/// `None` for anything that is not a genuine cursor issued for exactly this listing.
pub fn decode(
    key: &[u8],
    cursor: &str,
    tenant: &TenantId,
    profile: &ProfileId,
    order: Order,
) -> Option<(Points, ContactId)> {
    let (payload, tag) = cursor.split_once('.')?;
    let payload = hex::decode(payload).ok()?;
    let tag = hex::decode(tag).ok().filter(|t| t.len() == TAG_BYTES)?;
    mac(key, &payload).verify_truncated_left(&tag).ok()?;
    let raw = String::from_utf8(payload).ok()?;
    let parts: Vec<&str> = raw.split(SEP).collect();
    let [version, t, p, o, cents, contact] = parts.as_slice() else { return None };
    if *version != VERSION || *t != tenant.as_str() || *p != profile.as_str() || *o != order_name(order) {
        return None;
    }
    Some((Points::from_cents(cents.parse().ok()?), ContactId::parse_subject(*contact).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"tenant-secret-key";

    #[test]
    fn round_trips_and_refuses_other_listings_and_forgeries() {
        let (t, p) = (TenantId::parse("acme").unwrap(), ProfileId::parse("engagement").unwrap());
        let after = (Points::whole(-7), ContactId::parse("c@x").unwrap());
        let cursor = encode(KEY, &t, &p, Order::Desc, &after);
        assert_eq!(decode(KEY, &cursor, &t, &p, Order::Desc), Some(after));
        assert_eq!(decode(KEY, &cursor, &TenantId::parse("other").unwrap(), &p, Order::Desc), None);
        assert_eq!(decode(KEY, &cursor, &t, &ProfileId::parse("fit").unwrap(), Order::Desc), None);
        assert_eq!(decode(KEY, &cursor, &t, &p, Order::Asc), None);
        assert_eq!(decode(b"another-tenant-key", &cursor, &t, &p, Order::Desc), None, "keys are per tenant");
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload =
            hex::encode(String::from_utf8(hex::decode(payload).unwrap()).unwrap().replace("-700", "-100"));
        assert_eq!(decode(KEY, &format!("{forged_payload}.{tag}"), &t, &p, Order::Desc), None, "edits are detected");
        assert_eq!(decode(KEY, &format!("{payload}.{}", &tag[..2]), &t, &p, Order::Desc), None, "no short tags");
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,80}") {
            let (t, p) = (TenantId::parse("acme").unwrap(), ProfileId::parse("e").unwrap());
            let _ = decode(KEY, &text, &t, &p, Order::Asc);
            let _ = decode(KEY, &format!("{}.{}", hex::encode(&text), hex::encode(&text)), &t, &p, Order::Asc);
        }
    }
}
