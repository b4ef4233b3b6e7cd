#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cognate_fuzz::jwt(data));
