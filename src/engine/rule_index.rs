//! Which of a profile's rules an interaction of a given type can match,
//! worked out once when the profile is compiled, so that scoring checks
//! those rules' conditions only, not every rule's.
//!
//! A rule whose condition requires an interaction type (`"type"` at its top,
//! in one part of an `all`, or in every branch of an `any`) is listed under
//! that type or types. Every other rule (contact fields only, attributes of
//! any type, `not`) may match any interaction and is listed for all. The
//! candidates come out in the profile's own rule order, which the order of
//! the ledger entries depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;
use std::slice::Iter;

use super::condition::Condition;
use super::interaction::InteractionType;

/// Rule positions (indexes into `Profile::rules`), each list ascending.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    /// Keyed by the interaction type's name.
    by_type: BTreeMap<String, Vec<u32>>,
    any_type: Vec<u32>,
}

impl RuleIndex {
    /// Indexes the rules' conditions, in rule order.
    pub fn new<'a>(conditions: impl IntoIterator<Item = &'a Condition>) -> Self {
        let mut index = Self::default();
        for (position, condition) in (0u32..).zip(conditions) {
            match required_types(condition) {
                Some(types) => {
                    for kind in types {
                        index.by_type.entry(kind.to_owned()).or_default().push(position);
                    }
                }
                None => index.any_type.push(position),
            }
        }
        index
    }

    /// The positions of the rules an interaction of type `kind` may match, ascending.
    pub fn candidates(&self, kind: &InteractionType) -> Candidates<'_> {
        let typed = self.by_type.get(kind.as_str()).map_or(&[][..], Vec::as_slice);
        Candidates { typed: typed.iter().peekable(), any_type: self.any_type.iter().peekable() }
    }
}

/// Two ascending lists of distinct positions, merged.
pub struct Candidates<'a> {
    typed: Peekable<Iter<'a, u32>>,
    any_type: Peekable<Iter<'a, u32>>,
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let next = match (self.typed.peek(), self.any_type.peek()) {
            (Some(typed), Some(any)) if typed < any => self.typed.next(),
            (Some(_), Some(_)) | (None, _) => self.any_type.next(),
            (Some(_), None) => self.typed.next(),
        };
        next.map(|&position| position as usize)
    }
}

/// The interaction types `condition` can hold for; `None` when it can hold
/// for any. Never too narrow: a type left out cannot match.
fn required_types(condition: &Condition) -> Option<BTreeSet<&str>> {
    match condition {
        Condition::Type(kind) => Some(BTreeSet::from([kind.as_str()])),
        // Every part must hold: any part's types bound the whole.
        Condition::All(parts) => parts.iter().filter_map(required_types).reduce(|a, b| &a & &b),
        // One branch must hold: the union, if every branch is bounded.
        Condition::Any(parts) => parts.iter().try_fold(BTreeSet::new(), |mut all, part| {
            all.extend(required_types(part)?);
            Some(all)
        }),
        Condition::Attribute(..) | Condition::Contact(..) | Condition::Not(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::budget::RegexBudget;
    use crate::engine::condition::MatchSpec;
    use serde_json::{json, Value};

    fn index(conditions: &[Value]) -> RuleIndex {
        let compiled: Vec<Condition> = conditions
            .iter()
            .map(|c| {
                serde_json::from_value::<MatchSpec>(c.clone())
                    .unwrap()
                    .compile("when", &mut RegexBudget::spec("a profile"))
                    .unwrap()
            })
            .collect();
        RuleIndex::new(&compiled)
    }

    fn candidates(index: &RuleIndex, kind: &str) -> Vec<usize> {
        index.candidates(&InteractionType::parse(kind).unwrap()).collect()
    }

    #[test]
    fn candidates_are_the_type_s_rules_and_the_untyped_ones_in_rule_order() {
        let index = index(&[
            json!({"type": "email.opened"}),
            json!({"contact": {"country": {"equals": "CO"}}}),
            json!({"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}}),
            json!({"any": [{"type": "email.opened"}, {"type": "form.submitted"}]}),
            json!({"attributes": {"url": {"exists": true}}}),
            json!({"not": {"type": "email.opened"}}),
            json!({"any": [{"type": "email.opened"}, {"contact": {"country": {"equals": "CO"}}}]}),
            json!({"all": [{"type": "email.opened"}, {"type": "page.visited"}]}),
        ]);
        assert_eq!(candidates(&index, "email.opened"), [0, 1, 3, 4, 5, 6]);
        assert_eq!(candidates(&index, "page.visited"), [1, 2, 4, 5, 6]);
        assert_eq!(candidates(&index, "form.submitted"), [1, 3, 4, 5, 6]);
        assert_eq!(candidates(&index, "call.missed"), [1, 4, 5, 6], "untyped rules only");
    }

    #[test]
    fn an_empty_condition_is_a_candidate_for_every_type() {
        let index = index(&[json!({}), json!({"type": "email.opened"})]);
        assert_eq!(candidates(&index, "email.opened"), [0, 1]);
        assert_eq!(candidates(&index, "chat.message"), [0]);
    }
}
