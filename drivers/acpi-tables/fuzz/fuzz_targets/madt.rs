//! MADT parser on arbitrary bytes, checksum ignored; a parsed table must survive
//! planning and rendering, and its entries must tile the table exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_acpi_tables::{json, render, Checksum, InterruptPlan, Madt};

fuzz_target!(|data: &[u8]| {
    let _ = Madt::parse(data).map_err(|e| e.to_string());
    if let Ok(m) = Madt::parse_with(data, Checksum::Ignore) {
        let mut pos = 44;
        for e in &m.entries {
            assert_eq!(e.offset(), pos);
            pos += e.length() as usize;
        }
        assert_eq!(pos, m.header.length as usize);
        let plan = InterruptPlan::build(None, Some(&m), None);
        let _ = render::text(None, Some(&m), None, &plan);
        let _ = json::report(None, Some(&m), None, &plan);
    }
});
