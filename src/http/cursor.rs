//! Leaderboard cursors: opaque to clients, bound to the tenant, profile and
//! order they were issued for, so a cursor cannot be replayed elsewhere.

use crate::engine::points::Points;
use crate::ids::{ContactId, ProfileId, TenantId};
use crate::store::Order;

const VERSION: &str = "v1";
const SEP: char = '\u{1f}';

pub fn encode(tenant: &TenantId, profile: &ProfileId, order: Order, after: &(Points, ContactId)) -> String {
    let order = match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    };
    let raw = [VERSION, tenant.as_str(), profile.as_str(), order, &after.0.cents().to_string(), after.1.as_str()]
        .join(&SEP.to_string());
    hex::encode(raw)
}

/// `None` for anything that is not a cursor issued for exactly this listing.
pub fn decode(cursor: &str, tenant: &TenantId, profile: &ProfileId, order: Order) -> Option<(Points, ContactId)> {
    let raw = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let parts: Vec<&str> = raw.split(SEP).collect();
    let [version, t, p, o, cents, contact] = parts.as_slice() else {
        return None;
    };
    let expected_order = match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    };
    if *version != VERSION || *t != tenant.as_str() || *p != profile.as_str() || *o != expected_order {
        return None;
    }
    Some((Points::from_cents(cents.parse().ok()?), ContactId::parse(*contact).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_refuses_other_listings() {
        let (t, p) = (TenantId::parse("acme").unwrap(), ProfileId::parse("engagement").unwrap());
        let after = (Points::whole(-7), ContactId::parse("c@x").unwrap());
        let cursor = encode(&t, &p, Order::Desc, &after);
        assert_eq!(decode(&cursor, &t, &p, Order::Desc), Some(after));
        assert_eq!(decode(&cursor, &TenantId::parse("other").unwrap(), &p, Order::Desc), None);
        assert_eq!(decode(&cursor, &t, &ProfileId::parse("fit").unwrap(), Order::Desc), None);
        assert_eq!(decode(&cursor, &t, &p, Order::Asc), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,80}") {
            let (t, p) = (TenantId::parse("acme").unwrap(), ProfileId::parse("e").unwrap());
            let _ = decode(&text, &t, &p, Order::Asc);
            let _ = decode(&hex::encode(&text), &t, &p, Order::Asc);
        }
    }
}
