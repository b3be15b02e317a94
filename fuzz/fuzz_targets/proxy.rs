#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pgvigil::fuzzing::proxy_packet_any(data);
});
