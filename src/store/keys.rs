//! Key encodings both adapters share: scores and instants as fixed-width
//! strings that sort like the values they encode.

use chrono::{DateTime, Utc};

use crate::engine::points::Points;
use crate::store::StoreError;

/// A score as 16 hex digits whose string order is the number order
/// (the sign bit flipped, so negatives sort first).
pub fn sortable_score(points: Points) -> String {
    format!("{:016x}", (points.cents() as u64) ^ (1 << 63))
}

pub fn parse_sortable_score(text: &str) -> Result<Points, StoreError> {
    let raw = u64::from_str_radix(text, 16).map_err(|e| StoreError::Corrupt(format!("score key {text:?}: {e}")))?;
    Ok(Points::from_cents((raw ^ (1 << 63)) as i64))
}

/// Milliseconds since the epoch, 20 digits (instants before 1970 clamp to 0).
pub fn sortable_millis(at: DateTime<Utc>) -> String {
    format!("{:020}", at.timestamp_millis().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_scores_order_like_numbers_and_round_trip() {
        let values = [-1_000_000, -250, -1, 0, 1, 99, 100, 1_000_000];
        let keys: Vec<String> = values.iter().map(|&c| sortable_score(Points::from_cents(c))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for &c in &values {
            assert_eq!(parse_sortable_score(&sortable_score(Points::from_cents(c))).unwrap(), Points::from_cents(c));
        }
        assert!(parse_sortable_score("zz").is_err());
    }
}
