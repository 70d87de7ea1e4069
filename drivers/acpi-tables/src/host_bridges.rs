//! How many PCI host bridges the firmware's ACPI namespace declares, read from the AML
//! bytes of the DSDT and SSDTs without an interpreter.
//!
//! A host bridge is a device whose `_HID` is `PNP0A03` (PCI) or `PNP0A08` (PCI Express)
//! (PCI Firmware Specification 3.3, §4.1.5); its root bus is in its `_BBN`/`_CRS`,
//! which only an interpreter can evaluate. What the bytes do tell is how many there
//! are: almost every firmware writes `_HID` as a static name, `NameOp "_HID"` followed by
//! the EISA id as a DWord constant (`EisaId("PNP0A08")` compiles to `0C 41 D0 0A 08`,
//! ACPI 6.5 §19.6.35) or, rarely, as a string. One such name means one host bridge, so
//! no peer root buses to look for; more, or a `_HID` this scan cannot read (a method),
//! means the kernel must probe for them.

/// AML `NameOp` (ACPI 6.5 §20.2.5.1).
const NAME_OP: u8 = 0x08;
/// AML `DWordPrefix` and `StringPrefix` (§20.2.3).
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
/// Compressed EISA ids of PNP0A03 and PNP0A08 as they appear in the byte stream.
const EISA_PNP0A03: [u8; 4] = [0x41, 0xd0, 0x0a, 0x03];
const EISA_PNP0A08: [u8; 4] = [0x41, 0xd0, 0x0a, 0x08];

/// What the `_HID` names of one AML stream say about PCI host bridges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostBridgeNames {
    /// `_HID` names whose value is PNP0A03 or PNP0A08.
    pub host_bridges: usize,
    /// `_HID` names this scan could not read (not a static DWord or string): any of them
    /// might be a host bridge.
    pub unreadable: usize,
}

impl HostBridgeNames {
    /// Sums two tables' counts.
    pub fn add(self, other: HostBridgeNames) -> HostBridgeNames {
        HostBridgeNames {
            host_bridges: self.host_bridges + other.host_bridges,
            unreadable: self.unreadable + other.unreadable,
        }
    }

    /// Exactly one host bridge, and no `_HID` that might be another.
    pub fn single(&self) -> bool {
        self.host_bridges == 1 && self.unreadable == 0
    }
}

/// Scans one AML stream (a DSDT's or SSDT's bytes after the 36-byte header).
pub fn host_bridge_names(aml: &[u8]) -> HostBridgeNames {
    let mut names = HostBridgeNames::default();
    let mut i = 0;
    while let Some(at) = find(&aml[i..], b"_HID").map(|p| p + i) {
        i = at + 4;
        if at == 0 || aml[at - 1] != NAME_OP {
            // A method `_HID`, or the bytes inside some other object: a `Method` opcode
            // precedes its PkgLength, not the name, so look one step further for it.
            if at >= 2 && is_method_name(aml, at) {
                names.unreadable += 1;
            }
            continue;
        }
        let value = &aml[at + 4..];
        match value.first() {
            Some(&DWORD_PREFIX) => {
                let id = value.get(1..5);
                if id == Some(&EISA_PNP0A03[..]) || id == Some(&EISA_PNP0A08[..]) {
                    names.host_bridges += 1;
                }
            }
            Some(&STRING_PREFIX) => {
                let s = value.get(1..8);
                if s == Some(&b"PNP0A03"[..]) || s == Some(&b"PNP0A08"[..]) {
                    names.host_bridges += 1;
                }
            }
            Some(_) => {}
            None => names.unreadable += 1,
        }
    }
    names
}

/// Whether the `_HID` at `at` is the name of a `Method` (`MethodOp PkgLength NameSeg`,
/// the PkgLength one to four bytes long: §20.2.4).
fn is_method_name(aml: &[u8], at: usize) -> bool {
    const METHOD_OP: u8 = 0x14;
    (1..=4).any(|len| {
        at > len && aml[at - len - 1] == METHOD_OP && usize::from(aml[at - len] >> 6) + 1 == len
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
