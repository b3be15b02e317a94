#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = pgvigil::sql::redacted(&String::from_utf8_lossy(data));
});
