//! `iommu irte`'s dump: only present entries, each decoded, in index order.

use sluice_vtd::{EntryLine, Irte, IrteMemory, SourceValidation, TriggerMode, present_entries};

/// A table in plain memory.
struct Table(Vec<Irte>);

impl IrteMemory for Table {
    fn read_irte(&mut self, index: u16) -> Irte {
        self.0.get(usize::from(index)).copied().unwrap_or_default()
    }
    fn write_low(&mut self, index: u16, low: u64) {
        let old = self.0[usize::from(index)];
        self.0[usize::from(index)] = Irte::from_halves(low, old.high());
    }
    fn write_high(&mut self, index: u16, high: u64) {
        let old = self.0[usize::from(index)];
        self.0[usize::from(index)] = Irte::from_halves(old.low(), high);
    }
    fn write_atomic(&mut self, index: u16, irte: Irte) {
        self.0[usize::from(index)] = irte;
    }
}

fn entry(vector: u8, destination: u32, eim: bool) -> Irte {
    Irte::remapped(
        vector,
        destination,
        TriggerMode::Edge,
        SourceValidation::NONE,
        eim,
    )
    .unwrap()
}

#[test]
fn only_present_entries_in_index_order() {
    let mut t = Table(vec![Irte::NOT_PRESENT; 256]);
    t.0[3] = entry(0x31, 1, true);
    t.0[17] = entry(0x42, 0x120, true);
    // Freed by clearing P alone: its old fields are still there, and it is skipped.
    let stale = entry(0x55, 2, true);
    t.0[20] = Irte::from_halves(stale.low() & !1, stale.high());
    t.0[255] = entry(0x60, 0, true);
    let found: Vec<u16> = present_entries(&mut t, 256).map(|(i, _)| i).collect();
    assert_eq!(found, [3, 17, 255]);
    // Only the first `entries` are read.
    let found: Vec<u16> = present_entries(&mut t, 18).map(|(i, _)| i).collect();
    assert_eq!(found, [3, 17]);
    assert_eq!(present_entries(&mut t, 0).count(), 0);
}

#[test]
fn each_line_is_the_index_and_the_decoded_entry() {
    let irte = entry(0x31, 0x120, true);
    let line = EntryLine {
        index: 17,
        irte,
        eim: true,
    }
    .to_string();
    assert_eq!(line, format!("   17: {}", irte.display(true)));
    assert!(line.contains("vector 0x31 -> x2APIC 0x120"), "{line}");
    // xAPIC destinations sit in bits 47:40.
    let line = EntryLine {
        index: 4,
        irte: entry(0x40, 3, false),
        eim: false,
    }
    .to_string();
    assert!(line.starts_with("    4: IRTE "), "{line}");
    assert!(line.contains("vector 0x40 -> xAPIC 0x3"), "{line}");
}

#[test]
fn a_table_of_65536_entries_is_walked_whole() {
    struct Sparse;
    impl IrteMemory for Sparse {
        fn read_irte(&mut self, index: u16) -> Irte {
            if index == u16::MAX {
                entry(0x70, 1, true)
            } else {
                Irte::NOT_PRESENT
            }
        }
        fn write_low(&mut self, _: u16, _: u64) {}
        fn write_high(&mut self, _: u16, _: u64) {}
        fn write_atomic(&mut self, _: u16, _: Irte) {}
    }
    let found: Vec<u16> = present_entries(&mut Sparse, 1 << 16)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found, [u16::MAX]);
    // A bigger claim is bounded by what an index can name.
    assert_eq!(present_entries(&mut Sparse, u32::MAX).count(), 1);
}
