//! DMAR parser on arbitrary bytes. The checksum is ignored so the fuzzer explores past
//! it; a parsed table must also survive planning and both renderers, and its structures
//! must tile the table exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_acpi_tables::{json, render, Checksum, Dmar, InterruptPlan};

fuzz_target!(|data: &[u8]| {
    let _ = Dmar::parse(data).map_err(|e| e.to_string());
    if let Ok(d) = Dmar::parse_with(data, Checksum::Ignore) {
        let mut pos = 48;
        for s in &d.structures {
            assert_eq!(s.offset(), pos);
            pos += s.length() as usize;
            let mut inner = s.offset() + s.length() as usize;
            for sc in s.scopes().iter().rev() {
                assert!(sc.offset + sc.length as usize <= inner);
                inner = sc.offset;
            }
        }
        assert_eq!(pos, d.header.length as usize);
        let plan = InterruptPlan::build(Some(&d), None, None);
        let _ = render::text(Some(&d), None, None, &plan);
        let _ = json::report(Some(&d), None, None, &plan);
    }
});
