//! `{{…}}` action templates: what parses renders without failing, and text
//! without placeholders renders as itself. Input: the template, then
//! optionally a line feed and a JSON object of contact fields and event
//! attributes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use scorehook::engine::ledger::ScoreState;
use scorehook::engine::template::{Context, Template};
use scorehook::ids::{ContactId, DealId, ProfileId, TriggerId};

fuzz_target!(|data: &[u8]| {
    let (text, fields) = scorehook_fuzz::text_then_fields(data);
    let Ok(text) = std::str::from_utf8(text) else { return };
    let (Ok(profile), Ok(contact), Ok(deal), Ok(trigger)) =
        (ProfileId::parse("engagement"), ContactId::parse("c-1"), DealId::parse("d-1"), TriggerId::parse("hot"))
    else {
        panic!("the fuzz ids are valid")
    };
    let plain = Template::parse(text, "actions[0].text", None);
    let in_score_trigger = Template::parse(text, "actions[0].text", Some(&profile));
    // A score trigger knows two more placeholders and refuses nothing else.
    assert!(plain.is_err() || in_score_trigger.is_ok(), "{text:?} refused only in a score trigger");
    let Ok(template) = in_score_trigger else { return };
    let event = scorehook_fuzz::interaction(None, fields.clone());
    let scores = BTreeMap::from([(profile.clone(), ScoreState::default())]);
    let cx = Context {
        contact_id: &contact,
        fields: &fields,
        deal_id: Some(&deal),
        event: Some(&event),
        trigger_id: &trigger,
        trigger_name: "Hot",
        scores: &scores,
        now: scorehook_fuzz::now(),
    };
    let rendered = template.render(&cx);
    if !text.contains("{{") {
        assert_eq!(rendered, text, "text without placeholders changed");
    }
});
