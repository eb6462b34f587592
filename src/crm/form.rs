//! Form-urlencoded bodies with PHP-style bracketed keys, as ActiveCampaign
//! and Bitrix24 send them, read into one JSON object.
//!
//! `contact[fields][1]=x&updated_fields[0]=stage&tags[]=a` becomes
//! `{"contact":{"fields":{"1":"x"}},"updated_fields":{"0":"stage"},"tags":{"0":"a"}}`:
//! every bracket is an object level (`[]` takes the next free index), every
//! value a string. `+` is a space. A key that is both a value and a parent
//! keeps the first shape seen; later clashing pairs are dropped. Nesting
//! deeper than `MAX_DEPTH` keeps the rest of the key as one literal name, so
//! no input can recurse without bound, and no input panics.

use serde_json::{Map, Value};

/// Bracket levels honoured; deeper keys stay flat.
pub const MAX_DEPTH: usize = 8;

/// Parses a whole body. Invalid UTF-8 is replaced, never refused: the
/// connectors decide what is missing.
pub fn parse(body: &[u8]) -> Value {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let path = split_key(&key);
        insert(&mut root, &path, value.into_owned());
    }
    Value::Object(root)
}

/// `a[b][c]` → `["a", "b", "c"]`; `a[]` → `["a", ""]`; a malformed key is one name.
fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[').filter(|&i| i > 0 && key.ends_with(']')) else {
        return vec![key.to_owned()];
    };
    let mut parts = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else { break };
        if parts.len() == MAX_DEPTH {
            // Too deep: the remainder becomes the last name, brackets included.
            parts.push(rest.to_owned());
            return parts;
        }
        parts.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        // Not a clean bracket chain (`a[b]x[c]`): keep the key whole.
        return vec![key.to_owned()];
    }
    parts
}

fn insert(node: &mut Map<String, Value>, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else { return };
    let name = if first.is_empty() { node.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        node.entry(name).or_insert(Value::String(value));
        return;
    }
    // Already a plain value: the clashing pair is dropped.
    if let Value::Object(child) = node.entry(name).or_insert_with(|| Value::Object(Map::new())) {
        insert(child, rest, value);
    }
}

/// The values of an object whose keys are indices (`{"0":…, "1":…}`), in index order.
pub fn indexed(value: &Value) -> Vec<&Value> {
    let Some(object) = value.as_object() else { return Vec::new() };
    let mut items: Vec<(u64, &Value)> =
        object.iter().filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v))).collect();
    items.sort_by_key(|(i, _)| *i);
    items.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nests_bracketed_keys() {
        let body = b"type=open&contact[id]=42&contact[fields][my_tag]=a+b&updated_fields[0]=stage&updated_fields[1]=title&tags[]=x&tags[]=y&auth[application_token]=jvh%5B1%5D";
        assert_eq!(
            parse(body),
            json!({
                "type": "open",
                "contact": {"id": "42", "fields": {"my_tag": "a b"}},
                "updated_fields": {"0": "stage", "1": "title"},
                "tags": {"0": "x", "1": "y"},
                "auth": {"application_token": "jvh[1]"}
            })
        );
        assert_eq!(indexed(&parse(body)["updated_fields"]), vec!["stage", "title"]);
    }

    #[test]
    fn keeps_odd_keys_whole_and_the_first_shape() {
        assert_eq!(parse(b"a[b]x[c]=1"), json!({"a[b]x[c]": "1"}));
        assert_eq!(parse(b"[a]=1"), json!({"[a]": "1"}));
        assert_eq!(parse(b"a[b=1"), json!({"a[b": "1"}));
        assert_eq!(parse(b"a=1&a[b]=2"), json!({"a": "1"}));
        assert_eq!(parse(b"a[b]=2&a=1"), json!({"a": {"b": "2"}}));
        assert_eq!(parse(b"a=1&a=2"), json!({"a": "1"}));
        let deep = parse(b"a[1][2][3][4][5][6][7][8][9][10]=x");
        assert_eq!(deep["a"]["1"]["2"]["3"]["4"]["5"]["6"]["7"]["[8][9][10]"], json!("x"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_bracket_soup(text in "[a-z\\[\\]=&%+0-9]{0,200}") {
            let value = parse(text.as_bytes());
            prop_assert!(value.is_object());
        }
    }
}
