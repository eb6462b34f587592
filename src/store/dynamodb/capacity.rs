//! Capacity units computed from item sizes, by DynamoDB's documented rules.
//!
//! moto answers transactions without `ConsumedCapacity`, and real tables
//! report only totals, so each commit's cost is also computed here: an
//! item's size is the sum of its attribute names' and values' sizes; a
//! transactional write costs 2 WCU per started KB of each item; a strongly
//! consistent read 1 RCU per started 4 KB (half that when eventually
//! consistent), summed over the items a query returns.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

/// Bytes DynamoDB bills for one item.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        // Documents: 3 bytes of overhead plus each element (and each key, for maps).
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        _ => 0,
    }
}

/// About one byte per two significant digits, plus one.
fn number_size(text: &str) -> usize {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

/// WCU of one item written inside a transaction.
pub fn transactional_write_units(item: &Item) -> u64 {
    2 * item_size(item).div_ceil(1024).max(1) as u64
}

/// RCU, in half units, of reading items totalling `bytes` in one request.
pub fn read_half_units(bytes: usize, consistent: bool) -> u64 {
    let units = bytes.div_ceil(4096).max(1) as u64;
    if consistent {
        units * 2
    } else {
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn sizes_follow_the_documented_rules() {
        assert_eq!(item_size(&item(&[("pk", AttributeValue::S("abc".into()))])), 5);
        assert_eq!(number_size("12345"), 4, "5 significant digits -> 3 bytes + 1");
        assert_eq!(number_size("100"), 2, "trailing zeros are trimmed");
        assert_eq!(number_size("-0.0500"), 2);
        let nested = AttributeValue::M([("a".to_string(), AttributeValue::Bool(true))].into());
        assert_eq!(item_size(&item(&[("m", nested)])), 1 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn transactional_writes_cost_two_units_per_started_kilobyte() {
        let sized = |bytes: usize| item(&[("d", AttributeValue::S("x".repeat(bytes - 1)))]);
        assert_eq!(transactional_write_units(&sized(10)), 2);
        assert_eq!(transactional_write_units(&sized(1024)), 2);
        assert_eq!(transactional_write_units(&sized(1025)), 4);
        assert_eq!(transactional_write_units(&sized(3000)), 6);
    }

    #[test]
    fn reads_cost_one_unit_per_started_4_kb_or_half_when_eventual() {
        assert_eq!(read_half_units(100, true), 2);
        assert_eq!(read_half_units(4097, true), 4);
        assert_eq!(read_half_units(4097, false), 2);
        assert_eq!(read_half_units(0, false), 1, "a read that finds nothing still costs");
    }
}
