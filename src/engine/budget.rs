//! Budgets: how much regex memory one profile, one trigger and one tenant
//! may make a process hold, and how many tests one condition may run.
//!
//! Issue #19: one 204 KB profile of 5,000 regexes took 3.6 s and ~940 MB to
//! compile, and every process compiled it again after each config refresh.
//! A regex is charged with what it holds once compiled and first used:
//! - its automata, as the regex engine counts them (`meta::Regex::memory_usage`);
//! - one search cache, which every thread that evaluates it makes;
//! - what the process's RSS grows by beyond those two counts (`overhead`).
//!
//! Measured, not estimated: `size_limit`-style estimates only bound the NFA,
//! while a regex also holds a reverse NFA, a one-pass DFA, prefilters and a
//! cache, so the sum of limits would overstate small regexes tenfold and
//! understate nothing we could check. Charging is done as each regex is
//! compiled, so a refused profile costs at most one regex past its budget.
//!
//! Pure: no I/O, no clock.

use std::collections::HashMap;

use regex_automata::meta::Regex;
use regex_automata::nfa::thompson::WhichCaptures;

use super::error::ConfigError;

/// The most one regex's NFA may hold: keeps each one's compile time and evaluation cheap.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// The most regex memory one profile version, or one trigger, may hold.
/// About 270 anchored literals (`^demo-7$`, 7.6 KiB each) or ten regexes
/// like `\w{3}x` (190 KiB each: Unicode classes are large); the 1,000-rule
/// profile of the engine benchmark (a regex every sixth rule) holds 1.2 MiB.
pub const SPEC_REGEX_BYTES: usize = 2 * 1024 * 1024;
/// The most regex memory a tenant's stored specs may hold in all: every
/// profile's live and draft version and every trigger, enabled or not
/// (publishing or enabling then never needs a check of its own).
pub const TENANT_REGEX_BYTES: usize = 4 * 1024 * 1024;
/// The most tests (leaf comparisons: `type`, `equals`, `matches`, …,
/// counting those nested in `all`/`any`/`not`) one condition may hold; a
/// rule's `when`, a trigger's `when.event`, a deadline's `start` or `awaits`.
pub const MAX_TESTS_PER_CONDITION: usize = 64;

/// How far one regex's lazy DFA may grow its cache while searching, per
/// thread and direction. The library's default (2 MiB) let a 2 KiB regex
/// grow to 2 MiB on one crafted 200 KB value; past this much the regex runs
/// on its NFA instead, slower but still linear, in memory already charged.
const LAZY_DFA_CACHE: usize = 64 * 1024;
/// What a compiled regex holds beyond what the engine counts: measured
/// over 5,000 regexes of each of five kinds (regex-automata 0.4.19, glibc),
/// RSS grew 3.4-12 KB more per regex than the counts, about 4 KiB of fixed
/// structures (the cache pool, the pattern's properties) plus allocator
/// slack that grows with the automata (an eighth covers it but for small
/// case-insensitive alternations, which it undercounts by ~4 KiB).
fn overhead(counted: usize) -> usize {
    4 * 1024 + counted / 8
}

/// Regex memory charged so far against a limit.
#[derive(Debug, Clone)]
pub struct RegexBudget {
    spent: usize,
    limit: usize,
    /// Whose budget it is, for refusals: "a profile", "a trigger".
    owner: &'static str,
}

/// Why a regex was not charged.
enum Refusal {
    Invalid(String),
    /// Its NFA alone would exceed `REGEX_SIZE_LIMIT`.
    TooLarge,
    /// It would take the budget past its limit; `total` is what all would hold, when known.
    OverBudget {
        total: Option<usize>,
    },
}

impl RegexBudget {
    pub fn new(owner: &'static str, limit: usize) -> Self {
        Self { spent: 0, limit, owner }
    }

    /// A profile version's or a trigger's budget.
    pub fn spec(owner: &'static str) -> Self {
        Self::new(owner, SPEC_REGEX_BYTES)
    }

    /// The bytes charged so far.
    pub fn spent(&self) -> usize {
        self.spent
    }

    /// Compiles `pattern` and charges what it holds; `path` (ending in
    /// `.matches`) names it in a refusal.
    pub fn compile(&mut self, pattern: &str, path: &str) -> Result<Regex, ConfigError> {
        self.try_charge(pattern).map_err(|refusal| match refusal {
            Refusal::Invalid(reason) => ConfigError::new(path, format!("not a valid regex: {reason}")),
            Refusal::TooLarge => ConfigError::new(
                path,
                format!("the compiled regex would exceed {}; simplify it", size(REGEX_SIZE_LIMIT)),
            ),
            Refusal::OverBudget { total } => ConfigError::new(path, self.over_message(total)),
        })
    }

    fn try_charge(&mut self, pattern: &str) -> Result<Regex, Refusal> {
        let regex = self.build_within(pattern)?;
        self.add(held_by(&regex))?;
        Ok(regex)
    }

    /// Compiles `pattern`, not charged yet. A regex whose NFA alone cannot
    /// fit in what is left fails fast, before its other automata are built.
    fn build_within(&self, pattern: &str) -> Result<Regex, Refusal> {
        let nfa_limit = REGEX_SIZE_LIMIT.min(self.limit.saturating_sub(self.spent));
        let config = Regex::config()
            // Conditions only ask whether a value matches: no groups to record.
            .which_captures(WhichCaptures::Implicit)
            .nfa_size_limit(Some(nfa_limit))
            .onepass_size_limit(Some(REGEX_SIZE_LIMIT))
            .hybrid_cache_capacity(LAZY_DFA_CACHE);
        Regex::builder().configure(config).build(pattern).map_err(|e| match (e.size_limit(), e.syntax_error()) {
            (Some(_), _) if nfa_limit < REGEX_SIZE_LIMIT => Refusal::OverBudget { total: None },
            (Some(_), _) => Refusal::TooLarge,
            (None, Some(syntax)) => Refusal::Invalid(syntax.to_string()),
            (None, None) => Refusal::Invalid(e.to_string()),
        })
    }

    fn add(&mut self, bytes: usize) -> Result<(), Refusal> {
        let total = self.spent.saturating_add(bytes);
        if total > self.limit {
            return Err(Refusal::OverBudget { total: Some(total) });
        }
        self.spent = total;
        Ok(())
    }

    fn over_message(&self, total: Option<usize>) -> String {
        let would = match total {
            Some(total) => format!("with this one they would hold {}", size(total)),
            None => {
                format!("this one alone needs more than the {} left", size(self.limit.saturating_sub(self.spent)))
            }
        };
        format!(
            "{}'s regexes may hold at most {} in memory in all; {would} (a Unicode class such as \\w costs tens of \
             KiB per use: (?-u:\\w) or [a-z] cost far less)",
            self.owner,
            size(self.limit)
        )
    }
}

/// A tenant's regex budget: whether this spec's `own` bytes fit beside the
/// tenant's other stored specs (their `others` patterns), refused at `path`
/// when not. Each distinct pattern is compiled once, measured and dropped;
/// the count stops at the first past the limit. A stored pattern that no
/// longer compiles (a limit tightened since) holds nothing.
pub fn check_tenant<'a>(
    own: usize,
    others: impl IntoIterator<Item = &'a str>,
    path: &str,
    what: &str,
) -> Result<(), ConfigError> {
    let mut budget = RegexBudget::new("a tenant", TENANT_REGEX_BYTES);
    let refuse = || {
        ConfigError::new(
            path,
            format!(
                "a tenant's regexes (every profile's live and draft version, and every trigger) may hold at most {} in \
                 memory in all; this {what}'s {} would take them past it",
                size(TENANT_REGEX_BYTES),
                size(own)
            ),
        )
    };
    budget.add(own).map_err(|_| refuse())?;
    let mut measured: HashMap<&str, usize> = HashMap::new();
    for pattern in others {
        let bytes = match measured.get(pattern) {
            Some(&bytes) => bytes,
            None => {
                let bytes = match budget.build_within(pattern) {
                    Ok(regex) => held_by(&regex),
                    Err(Refusal::OverBudget { .. }) => return Err(refuse()),
                    Err(Refusal::Invalid(_) | Refusal::TooLarge) => 0,
                };
                *measured.entry(pattern).or_insert(bytes)
            }
        };
        budget.add(bytes).map_err(|_| refuse())?;
    }
    Ok(())
}

/// What a compiled regex holds once first used (module comment).
fn held_by(regex: &Regex) -> usize {
    let counted = regex.memory_usage() + regex.create_cache().memory_usage();
    counted + overhead(counted)
}

/// Bytes for people: whole MiB when exact, else KiB rounded up.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regex_is_charged_what_it_holds() {
        let mut budget = RegexBudget::spec("a profile");
        let literal = budget.compile("demo", "p").unwrap();
        assert!(literal.is_match("a demo booked"));
        let small = budget.spent();
        assert!(small >= overhead(0), "even a literal holds its overhead");
        budget.compile(r"\w+@\w+", "p").unwrap();
        assert!(budget.spent() - small > 50 * 1024, "a Unicode class costs tens of KiB: {}", budget.spent());
    }

    #[test]
    fn the_regex_past_the_limit_is_refused_and_not_charged() {
        let mut budget = RegexBudget::new("a profile", 100 * 1024);
        let mut refused = None;
        for i in 0..100 {
            if let Err(e) = budget.compile(&format!(r"(?i)^demo{i}|trial{i}$"), &format!("r{i}")) {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("100 KiB holds fewer than 100 such regexes");
        assert!(at > 1, "several fit first");
        assert_eq!(e.path, format!("r{at}"));
        assert!(e.message.contains("at most 100 KiB"), "{}", e.message);
        assert!(budget.spent() <= 100 * 1024);
    }

    #[test]
    fn an_nfa_past_what_is_left_fails_before_the_rest_is_built() {
        let mut budget = RegexBudget::new("a profile", 20 * 1024);
        let e = budget.compile(r"\w{3}", "p").unwrap_err();
        assert!(e.message.contains("needs more than the 20 KiB left"), "{}", e.message);
        assert_eq!(budget.spent(), 0);
    }

    #[test]
    fn one_regex_too_large_and_a_bad_one_say_so() {
        let mut budget = RegexBudget::new("a profile", usize::MAX);
        let e = budget.compile(r"\w{1,50}", "p").unwrap_err();
        assert!(e.message.contains("would exceed 256 KiB"), "{}", e.message);
        let e = budget.compile("(", "p").unwrap_err();
        assert!(e.message.starts_with("not a valid regex: "), "{}", e.message);
        assert!(e.message.contains("unclosed group"), "the syntax error's own words: {}", e.message);
    }

    #[test]
    fn a_tenant_counts_each_stored_use_and_stops_past_the_limit() {
        let one = {
            let mut budget = RegexBudget::spec("a profile");
            budget.compile(r"\w+", "p").unwrap();
            budget.spent()
        };
        let fits = TENANT_REGEX_BYTES / one - 1;
        assert!(check_tenant(one, std::iter::repeat_n(r"\w+", fits - 1), "rules", "profile").is_ok());
        let e = check_tenant(one, std::iter::repeat_n(r"\w+", fits + 1), "rules", "profile").unwrap_err();
        assert_eq!(e.path, "rules");
        assert!(e.message.contains("at most 4 MiB"), "{}", e.message);
        assert!(check_tenant(TENANT_REGEX_BYTES + 1, [], "rules", "profile").is_err());
        assert!(check_tenant(0, ["(", r"\w{1,50}"], "rules", "profile").is_ok(), "what cannot compile holds nothing");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(1024 * 1024), "1 MiB");
        assert_eq!(size(4 * 1024 * 1024), "4 MiB");
        assert_eq!(size(1025), "2 KiB");
        assert_eq!(size(256 * 1024), "256 KiB");
    }
}
