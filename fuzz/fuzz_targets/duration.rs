//! Durations and expiries as admins write them (`30d`, `never`): what
//! parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scorehook::engine::duration::Span;
use scorehook::engine::profile::Expiry;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(span) = Span::parse(text) {
        assert!(span.seconds() > 0, "{text:?} parsed to zero");
        assert_eq!(Span::parse(&span.to_string()), Ok(span), "{text:?} does not print back");
        let _ = span.as_delta();
    }
    if let Ok(expiry) = Expiry::try_from(text.to_owned()) {
        assert_eq!(Expiry::try_from(String::from(expiry)), Ok(expiry), "{text:?} does not print back");
    }
});
