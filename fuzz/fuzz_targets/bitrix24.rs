//! The `bitrix24` webhook: `verify` with arbitrary headers and query, then its
//! body parser, on one request per input (format: `scorehook_fuzz`'s module comment).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scorehook::tenant::Provider;

fuzz_target!(|data: &[u8]| scorehook_fuzz::webhook(Provider::Bitrix24, data));
