//! How many PCI host bridges the firmware's ACPI namespace declares, read from the AML
//! bytes of the DSDT and SSDTs without an interpreter.
//!
//! A host bridge is a device whose `_HID` is `PNP0A03` (PCI) or `PNP0A08` (PCI Express)
//! (PCI Firmware Specification 3.3, §4.1.5); its root bus is in its `_BBN`/`_CRS`,
//! which only an interpreter can evaluate. What the bytes do tell is how many there
//! are: almost every firmware writes `_HID` as a static name, `NameOp "_HID"` followed by
//! the EISA id as a DWord constant (`EisaId("PNP0A08")` compiles to `0C 41 D0 0A 08`,
//! ACPI 6.5 §19.6.35) or, rarely, as a string. A host bridge may also say what it is
//! only in its `_CID` (Linux's PCI root driver matches either: a CXL host bridge is
//! `_HID ACPI0016`, `_CID PNP0A08`), so compatible ids are counted too. One host bridge
//! for certain means no peer root buses to look for; more, a compatible id no `_HID`
//! accounts for, or a name this scan cannot read (a method), means the kernel must
//! probe for them.

/// AML `NameOp` (ACPI 6.5 §20.2.5.1).
const NAME_OP: u8 = 0x08;
/// AML `DWordPrefix` and `StringPrefix` (§20.2.3).
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
/// Compressed EISA ids of PNP0A03 and PNP0A08 as they appear in the byte stream.
const EISA_PNP0A03: [u8; 4] = [0x41, 0xd0, 0x0a, 0x03];
const EISA_PNP0A08: [u8; 4] = [0x41, 0xd0, 0x0a, 0x08];

/// What the `_HID` and `_CID` names of one AML stream say about PCI host bridges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostBridgeNames {
    /// `_HID` names whose value is PNP0A03 or PNP0A08.
    pub host_bridges: usize,
    /// PNP0A03 or PNP0A08 ids in `_CID` names (a PCIe host bridge names PNP0A03 there
    /// besides its `_HID`; a CXL or vendor-named one only there).
    pub compatible: usize,
    /// `_HID` or `_CID` names this scan could not read (a method, an unusual encoding):
    /// any of them might be a host bridge.
    pub unreadable: usize,
}

impl HostBridgeNames {
    /// Exactly one host bridge: one `_HID`, no more compatible ids than that one device
    /// can carry, and no name that might be another.
    pub fn single(&self) -> bool {
        self.host_bridges == 1 && self.compatible <= 1 && self.unreadable == 0
    }
}

/// Two tables' counts together (the DSDT's and each SSDT's). Counts of names in AML
/// cannot reach `usize::MAX`; saturating keeps the sum free of overflow all the same.
impl core::ops::Add for HostBridgeNames {
    type Output = HostBridgeNames;

    fn add(self, other: HostBridgeNames) -> HostBridgeNames {
        HostBridgeNames {
            host_bridges: self.host_bridges.saturating_add(other.host_bridges),
            compatible: self.compatible.saturating_add(other.compatible),
            unreadable: self.unreadable.saturating_add(other.unreadable),
        }
    }
}

/// Scans one AML stream (a DSDT's or SSDT's bytes after the 36-byte header).
pub fn host_bridge_names(aml: &[u8]) -> HostBridgeNames {
    let mut names = HostBridgeNames::default();
    for (name, count) in [
        (b"_HID", &mut names.host_bridges),
        (b"_CID", &mut names.compatible),
    ] {
        // Neither name can overlap itself, so every occurrence is a separate candidate.
        let found = aml
            .windows(name.len())
            .enumerate()
            .filter(|(_, w)| w == name);
        for (at, _) in found {
            let (before, from) = aml.split_at(at);
            if before.last() != Some(&NAME_OP) {
                // A method, or the bytes inside some other object: a `Method` opcode
                // precedes its PkgLength, not the name, so look one step further for it.
                if is_method_name(before) {
                    names.unreadable = names.unreadable.saturating_add(1);
                }
                continue;
            }
            match from.get(name.len()..).and_then(pci_ids) {
                Some(n) => *count = count.saturating_add(n),
                None => names.unreadable = names.unreadable.saturating_add(1),
            }
        }
    }
    names
}

/// How many PNP0A03/PNP0A08 ids a name's value holds: a DWord EISA id, a string, or a
/// package of them (`_CID` may list several); `None` for anything else.
fn pci_ids(value: &[u8]) -> Option<usize> {
    const PACKAGE_OP: u8 = 0x12;
    let is_pci = |id: Option<&[u8]>| id == Some(&EISA_PNP0A03[..]) || id == Some(&EISA_PNP0A08[..]);
    match *value.first()? {
        DWORD_PREFIX => Some(usize::from(is_pci(value.get(1..5)))),
        STRING_PREFIX => {
            let s = value.get(1..8);
            Some(usize::from(
                s == Some(&b"PNP0A03"[..]) || s == Some(&b"PNP0A08"[..]),
            ))
        }
        PACKAGE_OP => {
            let len = pkg_length(value.get(1..)?)?;
            // The PkgLength counts itself: the package is `len` bytes from there.
            let body = value.get(1..)?.get(..len)?;
            Some(
                body.windows(5)
                    .filter(|w| w[0] == DWORD_PREFIX && is_pci(Some(&w[1..])))
                    .count(),
            )
        }
        _ => None,
    }
}

/// A PkgLength's value (the bytes it covers, itself included; ACPI 6.5 §20.2.4).
fn pkg_length(b: &[u8]) -> Option<usize> {
    let lead = *b.first()?;
    let follow = usize::from(lead >> 6);
    if follow == 0 {
        return Some(usize::from(lead & 0x3f));
    }
    // Each following byte supplies the next 8 bits above the lead byte's low 4.
    let mut len = usize::from(lead & 0x0f);
    for (byte, shift) in b.get(1..)?.get(..follow)?.iter().zip([4, 12, 20]) {
        len |= usize::from(*byte) << shift;
    }
    Some(len)
}

/// Whether a name preceded by `before` is the name of a `Method` (`MethodOp PkgLength
/// NameSeg`, the PkgLength one to four bytes long: §20.2.4). Walking back from the
/// name, the k-th byte pair is (`MethodOp`, PkgLength lead byte) exactly when the lead
/// byte's top two bits say k - 1 bytes follow it.
fn is_method_name(before: &[u8]) -> bool {
    const METHOD_OP: u8 = 0x14;
    before
        .windows(2)
        .rev()
        .take(4)
        .enumerate()
        .any(|(follow, pair)| match *pair {
            [op, lead] => op == METHOD_OP && usize::from(lead >> 6) == follow,
            _ => false,
        })
}
