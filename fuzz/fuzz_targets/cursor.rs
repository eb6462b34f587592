//! Leaderboard cursors: any string decodes to a position or to nothing, and
//! a cursor issued for a position decodes to it, for its own listing only.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use scorehook::engine::points::Points;
use scorehook::http::cursor::{decode, encode};
use scorehook::ids::{ContactId, ProfileId, TenantId};
use scorehook::store::Order;

const KEY: &[u8] = b"fuzz-cursor-key";

fuzz_target!(|data: &[u8]| {
    let (Ok(tenant), Ok(other), Ok(profile)) =
        (TenantId::parse("fuzz"), TenantId::parse("other"), ProfileId::parse("p"))
    else {
        panic!("the fuzz ids are valid")
    };
    let text = String::from_utf8_lossy(data);
    for order in [Order::Asc, Order::Desc] {
        let _ = decode(KEY, &text, &tenant, &profile, order);
    }
    // The same bytes as a position to issue a cursor for.
    let mut u = Unstructured::new(data);
    let (Ok(cents), Ok(desc), Ok(contact)) = (u.arbitrary::<i64>(), u.arbitrary::<bool>(), u.arbitrary::<String>())
    else {
        return;
    };
    let Ok(contact) = ContactId::parse_subject(contact) else { return };
    let (order, flipped) = if desc { (Order::Desc, Order::Asc) } else { (Order::Asc, Order::Desc) };
    let after = (Points::from_cents(cents), contact);
    let issued = encode(KEY, &tenant, &profile, order, &after);
    assert_eq!(decode(KEY, &issued, &tenant, &profile, order), Some(after), "{issued} does not decode");
    assert_eq!(decode(KEY, &issued, &other, &profile, order), None, "{issued} is valid for another tenant");
    assert_eq!(decode(KEY, &issued, &tenant, &profile, flipped), None, "{issued} is valid in the other order");
    assert_eq!(decode(b"another key", &issued, &tenant, &profile, order), None, "{issued} is valid under another key");
});
