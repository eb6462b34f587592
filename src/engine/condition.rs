//! Conditions on an interaction and on the contact's fields.
//!
//! `MatchSpec`/`TestSpec` are the wire (and stored) shapes; `Condition`/`Test`
//! are what they compile to once, with regexes built and operands checked, so
//! evaluation cannot fail. A `MatchSpec` is a conjunction of every key it has:
//! `{"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}}`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use regex_automata::meta::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::budget::{RegexBudget, MAX_TESTS_PER_CONDITION};
use super::error::ConfigError;
use super::interaction::{Interaction, InteractionType};

/// How deep `all`/`any`/`not` may nest; bounds recursion on any input.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, TestSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contact: BTreeMap<String, TestSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<MatchSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<MatchSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<MatchSpec>>,
}

impl MatchSpec {
    /// A fit rule's condition: only contact fields, nothing about the interaction.
    pub fn is_fit(&self) -> bool {
        !self.contact.is_empty()
            && self.kind.is_none()
            && self.attributes.is_empty()
            && self.all.is_none()
            && self.any.is_none()
            && self.not.is_none()
    }
}

/// Tests on one field's value; every key present must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<TestSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<TestSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<TestSpec>>,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Type(InteractionType),
    Attribute(String, Test),
    Contact(String, Test),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
pub enum Test {
    Equals(Value),
    NotEquals(Value),
    Contains(Value),
    StartsWith(String),
    Matches(Regex),
    In(Vec<Value>),
    Compare(CmpOp, Value),
    Exists(bool),
    All(Vec<Test>),
    Any(Vec<Test>),
    Not(Box<Test>),
}

/// What a condition is evaluated against: the interaction (absent for a
/// manual adjustment) and the contact's known fields.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub interaction: Option<&'a Interaction>,
    pub fields: &'a Map<String, Value>,
}

impl MatchSpec {
    /// Compiles the spec, its regexes charged to `regexes`; `path` names it
    /// in errors (e.g. `rules[2].when`). A spec over the test budget is
    /// refused before anything in it is compiled.
    pub fn compile(&self, path: &str, regexes: &mut RegexBudget) -> Result<Condition, ConfigError> {
        let tests = self.tests();
        if tests > MAX_TESTS_PER_CONDITION {
            return Err(ConfigError::new(
                path,
                format!(
                    "a condition may hold at most {MAX_TESTS_PER_CONDITION} tests (type, equals, matches, …, counting \
                     those inside all, any and not); this one holds {tests}: split it"
                ),
            ));
        }
        self.compile_at(path, 0, regexes)
    }

    /// Its leaf comparisons, nested ones included.
    pub fn tests(&self) -> usize {
        let own = usize::from(self.kind.is_some());
        let fields = self.attributes.values().chain(self.contact.values()).map(TestSpec::tests);
        let nested = self.all.iter().chain(&self.any).flatten().chain(self.not.as_deref()).map(MatchSpec::tests);
        fields.chain(nested).fold(own, usize::saturating_add)
    }

    /// Every `matches` pattern in it, nested ones included.
    pub fn patterns(&self) -> Vec<&str> {
        let mut found = Vec::new();
        self.collect_patterns(&mut found);
        found
    }

    fn collect_patterns<'a>(&'a self, found: &mut Vec<&'a str>) {
        for test in self.attributes.values().chain(self.contact.values()) {
            test.collect_patterns(found);
        }
        for spec in self.all.iter().chain(&self.any).flatten().chain(self.not.as_deref()) {
            spec.collect_patterns(found);
        }
    }

    fn compile_at(&self, path: &str, depth: usize, regexes: &mut RegexBudget) -> Result<Condition, ConfigError> {
        if depth > MAX_DEPTH {
            return Err(ConfigError::new(path, format!("conditions nest at most {MAX_DEPTH} levels deep")));
        }
        let mut parts = Vec::new();
        if let Some(kind) = &self.kind {
            let kind =
                InteractionType::parse(kind).map_err(|e| ConfigError::new(format!("{path}.type"), e.to_string()))?;
            parts.push(Condition::Type(kind));
        }
        for (field, test) in &self.attributes {
            let test = test.compile_at(&format!("{path}.attributes.{field}"), depth + 1, regexes)?;
            parts.push(Condition::Attribute(field.clone(), test));
        }
        for (field, test) in &self.contact {
            let test = test.compile_at(&format!("{path}.contact.{field}"), depth + 1, regexes)?;
            parts.push(Condition::Contact(field.clone(), test));
        }
        if let Some(all) = &self.all {
            let all = compile_list(all, &format!("{path}.all"), |spec, p| spec.compile_at(p, depth + 1, regexes))?;
            parts.push(Condition::All(all));
        }
        if let Some(any) = &self.any {
            let any = compile_list(any, &format!("{path}.any"), |spec, p| spec.compile_at(p, depth + 1, regexes))?;
            parts.push(Condition::Any(any));
        }
        if let Some(not) = &self.not {
            parts.push(Condition::Not(Box::new(not.compile_at(&format!("{path}.not"), depth + 1, regexes)?)));
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::All(parts) })
    }
}

fn compile_list<S, T>(
    specs: &[S],
    path: &str,
    mut compile: impl FnMut(&S, &str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    if specs.is_empty() {
        return Err(ConfigError::new(path, "must hold at least one condition"));
    }
    specs.iter().enumerate().map(|(i, spec)| compile(spec, &format!("{path}[{i}]"))).collect()
}

impl TestSpec {
    pub fn compile(&self, path: &str, regexes: &mut RegexBudget) -> Result<Test, ConfigError> {
        self.compile_at(path, 0, regexes)
    }

    /// Its leaf comparisons (each operator present is one), nested ones included.
    fn tests(&self) -> usize {
        let leaves = [
            self.equals.is_some(),
            self.not_equals.is_some(),
            self.contains.is_some(),
            self.starts_with.is_some(),
            self.matches.is_some(),
            self.one_of.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
            self.exists.is_some(),
        ];
        let own = leaves.into_iter().filter(|present| *present).count();
        let nested = self.all.iter().chain(&self.any).flatten().chain(self.not.as_deref()).map(TestSpec::tests);
        nested.fold(own, usize::saturating_add)
    }

    fn collect_patterns<'a>(&'a self, found: &mut Vec<&'a str>) {
        found.extend(self.matches.as_deref());
        for test in self.all.iter().chain(&self.any).flatten().chain(self.not.as_deref()) {
            test.collect_patterns(found);
        }
    }

    fn compile_at(&self, path: &str, depth: usize, regexes: &mut RegexBudget) -> Result<Test, ConfigError> {
        if depth > MAX_DEPTH {
            return Err(ConfigError::new(path, format!("conditions nest at most {MAX_DEPTH} levels deep")));
        }
        let mut parts = Vec::new();
        if let Some(v) = &self.equals {
            parts.push(Test::Equals(v.clone()));
        }
        if let Some(v) = &self.not_equals {
            parts.push(Test::NotEquals(v.clone()));
        }
        if let Some(v) = &self.contains {
            parts.push(Test::Contains(v.clone()));
        }
        if let Some(prefix) = &self.starts_with {
            parts.push(Test::StartsWith(prefix.clone()));
        }
        if let Some(pattern) = &self.matches {
            parts.push(Test::Matches(regexes.compile(pattern, &format!("{path}.matches"))?));
        }
        if let Some(list) = &self.one_of {
            parts.push(Test::In(list.clone()));
        }
        for (op, name, operand) in [
            (CmpOp::Gt, "gt", &self.gt),
            (CmpOp::Gte, "gte", &self.gte),
            (CmpOp::Lt, "lt", &self.lt),
            (CmpOp::Lte, "lte", &self.lte),
        ] {
            if let Some(operand) = operand {
                if !(operand.is_number() || operand.is_string()) {
                    return Err(ConfigError::new(format!("{path}.{name}"), "compare with a number or a string"));
                }
                parts.push(Test::Compare(op, operand.clone()));
            }
        }
        if let Some(exists) = self.exists {
            parts.push(Test::Exists(exists));
        }
        if let Some(all) = &self.all {
            parts.push(Test::All(compile_list(all, &format!("{path}.all"), |s, p| {
                s.compile_at(p, depth + 1, regexes)
            })?));
        }
        if let Some(any) = &self.any {
            parts.push(Test::Any(compile_list(any, &format!("{path}.any"), |s, p| {
                s.compile_at(p, depth + 1, regexes)
            })?));
        }
        if let Some(not) = &self.not {
            parts.push(Test::Not(Box::new(not.compile_at(&format!("{path}.not"), depth + 1, regexes)?)));
        }
        match parts.len() {
            0 => Err(ConfigError::new(
                path,
                "name at least one operator: equals, not_equals, contains, starts_with, matches, in, gt, gte, lt, lte, exists, all, any, not",
            )),
            1 => Ok(parts.remove(0)),
            _ => Ok(Test::All(parts)),
        }
    }
}

impl Condition {
    pub fn holds(&self, subject: Subject<'_>) -> bool {
        match self {
            Condition::Type(kind) => subject.interaction.is_some_and(|i| &i.kind == kind),
            Condition::Attribute(field, test) => {
                subject.interaction.is_some_and(|i| test.holds(lookup(&i.attributes, field)))
            }
            Condition::Contact(field, test) => test.holds(lookup(subject.fields, field)),
            Condition::All(parts) => parts.iter().all(|c| c.holds(subject)),
            Condition::Any(parts) => parts.iter().any(|c| c.holds(subject)),
            Condition::Not(inner) => !inner.holds(subject),
        }
    }
}

/// A field by its exact key, else by a dotted path into nested objects.
pub(crate) fn lookup<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if let Some(value) = map.get(field) {
        return Some(value);
    }
    let mut parts = field.split('.');
    let mut current = map.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

impl Test {
    /// `value` is `None` when the field is absent; `null` counts as absent.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let value = value.filter(|v| !v.is_null());
        match self {
            Test::Equals(expected) => value.is_some_and(|v| same(v, expected)),
            Test::NotEquals(expected) => !value.is_some_and(|v| same(v, expected)),
            Test::Contains(needle) => match (value, needle) {
                (Some(Value::String(hay)), Value::String(needle)) => hay.contains(needle.as_str()),
                (Some(Value::Array(items)), needle) => items.iter().any(|item| same(item, needle)),
                _ => false,
            },
            Test::StartsWith(prefix) => value.and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix.as_str())),
            Test::Matches(regex) => match value {
                Some(Value::String(s)) => regex.is_match(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => regex.is_match(v.to_string().as_str()),
                _ => false,
            },
            Test::In(options) => value.is_some_and(|v| options.iter().any(|o| same(v, o))),
            Test::Compare(op, operand) => value.and_then(|v| compare(v, operand)).is_some_and(|ord| match op {
                CmpOp::Gt => ord == Ordering::Greater,
                CmpOp::Gte => ord != Ordering::Less,
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Lte => ord != Ordering::Greater,
            }),
            Test::Exists(expected) => value.is_some() == *expected,
            Test::All(parts) => parts.iter().all(|t| t.holds(value)),
            Test::Any(parts) => parts.iter().any(|t| t.holds(value)),
            Test::Not(inner) => !inner.holds(value),
        }
    }
}

/// CRMs send numbers as strings as often as not ("49.00"), so a number
/// operand also matches a numeric string.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn same(value: &Value, expected: &Value) -> bool {
    match expected {
        Value::Number(_) => as_number(value).zip(as_number(expected)).is_some_and(|(a, b)| a == b),
        _ => value == expected,
    }
}

fn compare(value: &Value, operand: &Value) -> Option<Ordering> {
    match operand {
        Value::Number(_) => as_number(value)?.partial_cmp(&as_number(operand)?),
        Value::String(expected) => Some(value.as_str()?.cmp(expected.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget() -> RegexBudget {
        RegexBudget::spec("a profile")
    }

    fn test(spec: Value) -> Test {
        serde_json::from_value::<TestSpec>(spec).unwrap().compile("t", &mut budget()).unwrap()
    }

    fn holds(spec: Value, value: Value) -> bool {
        test(spec).holds(Some(&value))
    }

    #[test]
    fn equals_and_not_equals() {
        assert!(holds(json!({"equals": "demo"}), json!("demo")));
        assert!(!holds(json!({"equals": "demo"}), json!("Demo")));
        assert!(holds(json!({"equals": 5}), json!("5.0")), "numeric strings equal numbers");
        assert!(holds(json!({"not_equals": "demo"}), json!("won")));
        assert!(!holds(json!({"not_equals": "demo"}), json!("demo")));
        assert!(test(json!({"not_equals": "demo"})).holds(None), "a missing field is not equal");
        assert!(!test(json!({"equals": "demo"})).holds(None));
    }

    #[test]
    fn contains_and_starts_with() {
        assert!(holds(json!({"contains": "/pricing"}), json!("https://x.test/pricing?a=1")));
        assert!(!holds(json!({"contains": "/pricing"}), json!("https://x.test/blog")));
        assert!(holds(json!({"contains": "vip"}), json!(["new", "vip"])), "arrays contain elements");
        assert!(holds(json!({"starts_with": "https://"}), json!("https://x.test")));
        assert!(!holds(json!({"starts_with": "https://"}), json!("http://x.test")));
        assert!(!holds(json!({"starts_with": "1"}), json!(12)), "starts_with reads strings only");
    }

    #[test]
    fn matches_compiles_once_and_refuses_bad_patterns() {
        assert!(holds(json!({"matches": "(?i)^demo|trial$"}), json!("DEMO booked")));
        assert!(!holds(json!({"matches": "^demo$"}), json!("demo booked")));
        let bad = serde_json::from_value::<TestSpec>(json!({"matches": "("})).unwrap();
        let err = bad.compile("rules[0].when.attributes.x", &mut budget()).unwrap_err();
        assert_eq!(err.path, "rules[0].when.attributes.x.matches");
    }

    #[test]
    fn in_lists() {
        assert!(holds(json!({"in": ["Bogotá", "Medellín"]}), json!("Medellín")));
        assert!(!holds(json!({"in": ["Bogotá", "Medellín"]}), json!("Cali")));
    }

    #[test]
    fn comparisons_on_numbers_numeric_strings_and_text() {
        assert!(holds(json!({"gt": 100}), json!(100.5)));
        assert!(!holds(json!({"gt": 100}), json!(100)));
        assert!(holds(json!({"gte": 100}), json!("100")));
        assert!(holds(json!({"lt": 0}), json!(-3)));
        assert!(!holds(json!({"lt": 0}), json!(0)));
        assert!(holds(json!({"lte": 0}), json!(0)));
        assert!(!holds(json!({"gt": 1}), json!("many")), "text is not a number");
        assert!(holds(json!({"gte": "2026-01-01"}), json!("2026-03-01")), "strings compare as text");
        assert!(holds(json!({"gt": 1, "lt": 3}), json!(2)), "several operators all hold");
        assert!(!holds(json!({"gt": 1, "lt": 3}), json!(3)));
    }

    #[test]
    fn exists_treats_null_as_absent() {
        assert!(holds(json!({"exists": true}), json!("x")));
        assert!(!holds(json!({"exists": true}), json!(null)));
        assert!(test(json!({"exists": false})).holds(None));
    }

    #[test]
    fn all_any_not_on_values() {
        assert!(holds(json!({"any": [{"contains": "a"}, {"contains": "b"}]}), json!("xbx")));
        assert!(!holds(json!({"all": [{"contains": "a"}, {"contains": "b"}]}), json!("xbx")));
        assert!(holds(json!({"not": {"equals": "spam"}}), json!("ham")));
    }

    #[test]
    fn empty_tests_and_lists_are_refused() {
        assert!(serde_json::from_value::<TestSpec>(json!({})).unwrap().compile("t", &mut budget()).is_err());
        assert!(serde_json::from_value::<TestSpec>(json!({"any": []})).unwrap().compile("t", &mut budget()).is_err());
        assert!(serde_json::from_value::<TestSpec>(json!({"gt": [1]})).unwrap().compile("t", &mut budget()).is_err());
        assert!(serde_json::from_value::<TestSpec>(json!({"bigger": 1})).is_err());
    }

    #[test]
    fn match_specs_combine_type_attributes_contact_and_logic() {
        let interaction: Interaction = serde_json::from_value(json!({
            "id": "e1", "type": "page.visited", "contact_id": "c1",
            "occurred_at": "2026-11-22T10:00:00Z",
            "attributes": {"url": "https://x.test/pricing", "utm": {"source": "ads"}}}))
        .unwrap();
        let fields = json!({"city": "Bogotá"}).as_object().unwrap().clone();
        let subject = Subject { interaction: Some(&interaction), fields: &fields };
        let cond =
            |spec: Value| serde_json::from_value::<MatchSpec>(spec).unwrap().compile("when", &mut budget()).unwrap();

        assert!(cond(json!({"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}})).holds(subject));
        assert!(!cond(json!({"type": "email.opened"})).holds(subject));
        assert!(cond(json!({"attributes": {"utm.source": {"equals": "ads"}}})).holds(subject), "dotted paths");
        assert!(cond(json!({"contact": {"city": {"in": ["Bogotá"]}}})).holds(subject));
        assert!(cond(json!({"any": [{"type": "email.opened"}, {"type": "page.visited"}]})).holds(subject));
        assert!(cond(json!({"not": {"type": "email.opened"}})).holds(subject));
        assert!(cond(json!({})).holds(subject), "an empty condition matches everything");
        assert!(!cond(json!({"type": "page.visited"})).holds(Subject { interaction: None, fields: &fields }));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut spec = json!({"type": "email.opened"});
        for _ in 0..40 {
            spec = json!({"not": spec});
        }
        let spec: MatchSpec = serde_json::from_value(spec).unwrap();
        assert!(spec.compile("when", &mut budget()).is_err());
    }

    #[test]
    fn tests_count_every_leaf_comparison_nested_or_not() {
        let spec: MatchSpec = serde_json::from_value(json!({
            "type": "page.visited",
            "attributes": {"url": {"contains": "/pricing", "not": {"matches": "blog"}}},
            "contact": {"country": {"any": [{"equals": "CO"}, {"in": ["MX", "PE"]}]}},
            "any": [{"type": "email.opened"}, {"not": {"attributes": {"x": {"exists": true, "gt": 1}}}}]}))
        .unwrap();
        assert_eq!(spec.tests(), 1 + 2 + 2 + 1 + 2);
        assert_eq!(spec.patterns(), ["blog"]);
    }

    #[test]
    fn a_condition_over_the_test_budget_is_refused_before_any_regex_compiles() {
        let leaves = |n: usize| -> MatchSpec {
            let any: Vec<Value> = (0..n).map(|i| json!({"matches": format!("^v{i}$")})).collect();
            serde_json::from_value(json!({"attributes": {"x": {"any": any}}})).unwrap()
        };
        let mut regexes = budget();
        assert!(leaves(MAX_TESTS_PER_CONDITION).compile("rules[0].when", &mut regexes).is_ok());
        let mut regexes = budget();
        let err = leaves(MAX_TESTS_PER_CONDITION + 1).compile("rules[0].when", &mut regexes).unwrap_err();
        assert_eq!(err.path, "rules[0].when");
        assert!(err.message.contains("at most 64 tests") && err.message.contains("holds 65"), "{}", err.message);
        assert_eq!(regexes.spent(), 0, "refused before compiling anything");
    }

    #[test]
    fn regexes_are_charged_to_the_budget_given() {
        let mut regexes = budget();
        let spec: MatchSpec =
            serde_json::from_value(json!({"attributes": {"a": {"matches": "x+"}, "b": {"matches": "y+"}}})).unwrap();
        spec.compile("when", &mut regexes).unwrap();
        let two = regexes.spent();
        assert!(two > 0);
        spec.compile("when", &mut regexes).unwrap();
        assert_eq!(regexes.spent(), 2 * two, "the same budget keeps counting across conditions");
    }
}
