//! The register map as the capability register describes it: how many comparators a
//! block has, and that the register space the kernel maps holds every register of each.

use sluice_hpet::regs::{GeneralCaps, MAX_COMPARATORS, MAX_REGISTER_SPACE, Timer};

/// GCAP_ID with a 10 ns period (QEMU's), Intel's vendor id, 64-bit counter, legacy
/// replacement capable, and `comparators` comparators.
fn caps(comparators: u32) -> GeneralCaps {
    let last = u64::from(comparators - 1);
    GeneralCaps(10_000_000 << 32 | 0x8086 << 16 | 1 << 15 | 1 << 13 | last << 8 | 0x01)
}

#[test]
fn the_capability_names_the_period_and_the_comparator_count() {
    for n in 1..=MAX_COMPARATORS {
        assert_eq!(caps(n).comparators(), n);
        assert_eq!(caps(n).period_fs(), 10_000_000);
    }
}

/// Issue 20: with more than 24 comparators (`-global hpet.timers=32`) the kernel mapped
/// 0x400 bytes, but comparator n's registers are at 0x100 + 0x20·n, so comparator 24's
/// first access was past the mapping and hit its bounds assertion.
#[test]
fn the_register_space_holds_every_register_of_every_comparator() {
    for count in 1..=MAX_COMPARATORS {
        let cap = caps(count);
        let space = cap.register_space();
        // The kernel maps MAX_REGISTER_SPACE and keeps this much of it.
        assert!(
            (0x400..=MAX_REGISTER_SPACE).contains(&space),
            "{count} comparators: {space:#x} bytes"
        );
        for n in 0..count {
            let t = Timer(n);
            let ends = [
                (t.config().offset() + 4, "Tn_CONF"),
                (t.route_cap().offset() + 4, "Tn_INT_ROUTE_CAP"),
                (t.comparator().offset() + 8, "Tn_COMPARATOR"),
                (t.fsb_data().offset() + 4, "Tn_FSB_INT_VAL"),
                (t.fsb_addr().offset() + 4, "Tn_FSB_INT_ADDR"),
            ];
            for (end, name) in ends {
                assert!(
                    end <= space,
                    "{count} comparators: comparator {n}'s {name} ends at {end:#x}, past the {space:#x} bytes mapped"
                );
            }
        }
    }
}
