//! HMAC-SHA256, the one keyed hash scorehook uses: the signatures on
//! webhooks and actions, and the tags on listing cursors. Verification
//! goes through `Mac::verify_*`, which compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// An HMAC over `parts`, concatenated, keyed with `key`.
pub fn keyed(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac
}
