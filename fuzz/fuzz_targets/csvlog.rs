#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pgvigil::fuzzing::parse_any(pgvigil::sources::LogFormat::Csvlog, data);
});
