//! The `Capabilities:` lines of `lspci -vv`, decoded from a [`ConfigImage`].
//!
//! The text is that of pciutils 3.9.0 (`ls-caps.c`, `ls-ecaps.c`; Debian 12's lspci,
//! the peer of the Linux 6.1 guest Sluice is compared with), so a line of Sluice's
//! `pci -vv` and the same line of `lspci -vv` run in the same machine can be compared
//! as text. Decoded in full: Power Management, MSI, MSI-X, SATA HBA, and PCI Express's
//! device, link, slot and root registers. Printed by name only: the other standard
//! capabilities, the PCI Express version 2 registers (DevCap2 and after), and the
//! extended capabilities other than Device Serial Number — lspci prints more lines
//! under those, never different ones.
//!
//! Like lspci, the walk stops at a loop or an all-ones id, saying so.

use core::fmt;

use crate::capability::{capability_name, id};
use crate::config_image::ConfigImage;
use crate::ext_capability::ext_capability_name;
use crate::header::STATUS;
use crate::pcie::PortType;

/// `+` if `bit` (a mask) is set in `value`, else `-`: lspci's flag notation.
fn flag(value: u32, mask: u32) -> char {
    if value & mask != 0 { '+' } else { '-' }
}

/// Status bit 4: the function has a capability list (PCI 3.0 §6.2.3).
const STATUS_CAP_LIST: u16 = 1 << 4;

/// Every `Capabilities:` line of one function, standard then extended, each line led
/// by a tab as lspci indents them. `first` is the capabilities pointer's offset (0x34
/// for header types 0 and 1, 0x14 for CardBus).
pub struct Capabilities<'a> {
    /// The function's configuration space.
    pub image: &'a ConfigImage,
    /// Where the capabilities pointer is.
    pub pointer: usize,
}

impl fmt::Display for Capabilities<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let img = self.image;
        let mut ext = false;
        if img.u16(STATUS.offset().into()) & STATUS_CAP_LIST != 0 {
            let mut seen = [false; 256];
            let mut at = usize::from(img.u8(self.pointer) & !3);
            while at != 0 {
                f.write_str("\tCapabilities: ")?;
                if !img.has(at, 4) {
                    writeln!(f, "<access denied>")?;
                    break;
                }
                let cap_id = img.u8(at);
                let next = usize::from(img.u8(at + 1) & !3);
                let cap = img.u16(at + 2);
                write!(f, "[{at:02x}] ")?;
                if core::mem::replace(&mut seen[at], true) {
                    writeln!(f, "<chain looped>")?;
                    break;
                }
                if cap_id == 0xff {
                    writeln!(f, "<chain broken>")?;
                    break;
                }
                match cap_id {
                    id::POWER_MANAGEMENT => power_management(f, img, at, cap)?,
                    id::MSI => msi(f, img, at, cap)?,
                    id::MSI_X => msix(f, img, at, cap)?,
                    id::PCI_EXPRESS => {
                        express(f, img, at, cap)?;
                        ext = true;
                    }
                    id::SATA_CONFIG => sata(f, img, at, cap)?,
                    id::VENDOR_SPECIFIC => writeln!(
                        f,
                        "Vendor Specific Information: Len={:02x} <?>",
                        img.u8(at + 2)
                    )?,
                    id::NULL => writeln!(f, "Null")?,
                    id::PCI_X => {
                        writeln!(f, "PCI-X")?;
                        ext = true;
                    }
                    other => match capability_name(other) {
                        "Unknown" => writeln!(f, "Capability ID {other:#x} [{cap:04x}]")?,
                        name => writeln!(f, "{name}")?,
                    },
                }
                at = next;
            }
        }
        if ext {
            extended(f, img)?;
        }
        Ok(())
    }
}

fn power_management(
    f: &mut fmt::Formatter<'_>,
    img: &ConfigImage,
    at: usize,
    cap: u16,
) -> fmt::Result {
    const AUX_MA: [u32; 8] = [0, 55, 100, 160, 220, 270, 320, 375];
    let c = u32::from(cap);
    writeln!(f, "Power Management version {}", c & 7)?;
    writeln!(
        f,
        "\t\tFlags: PMEClk{} DSI{} D1{} D2{} AuxCurrent={}mA PME(D0{},D1{},D2{},D3hot{},D3cold{})",
        flag(c, 1 << 3),
        flag(c, 1 << 5),
        flag(c, 1 << 9),
        flag(c, 1 << 10),
        AUX_MA[((c >> 6) & 7) as usize],
        flag(c, 1 << 11),
        flag(c, 1 << 12),
        flag(c, 1 << 13),
        flag(c, 1 << 14),
        flag(c, 1 << 15),
    )?;
    if !img.has(at + 4, 4) {
        return Ok(());
    }
    let t = u32::from(img.u16(at + 4));
    writeln!(
        f,
        "\t\tStatus: D{} NoSoftRst{} PME-Enable{} DSel={} DScale={} PME{}",
        t & 3,
        flag(t, 1 << 3),
        flag(t, 1 << 8),
        (t >> 9) & 0xf,
        (t >> 13) & 3,
        flag(t, 1 << 15),
    )?;
    let b = u32::from(img.u8(at + 6));
    if b != 0 {
        writeln!(f, "\t\tBridge: PM{} B3{}", flag(b, 0x80), flag(!b, 0x40))?;
    }
    Ok(())
}

fn msi(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize, cap: u16) -> fmt::Result {
    let c = u32::from(cap);
    let is64 = c & 0x80 != 0;
    writeln!(
        f,
        "MSI: Enable{} Count={}/{} Maskable{} 64bit{}",
        flag(c, 1),
        1u32 << ((c >> 4) & 7),
        1u32 << ((c >> 1) & 7),
        flag(c, 0x100),
        flag(c, 0x80),
    )?;
    let data_at = if is64 { 12 } else { 8 };
    if !img.has(at + 4, data_at + 2 - 4) {
        return Ok(());
    }
    f.write_str("\t\tAddress: ")?;
    if is64 {
        write!(f, "{:08x}", img.u32(at + 8))?;
    }
    writeln!(
        f,
        "{:08x}  Data: {:04x}",
        img.u32(at + 4),
        img.u16(at + data_at)
    )?;
    if c & 0x100 != 0 {
        let mask_at = if is64 { 16 } else { 12 };
        if !img.has(at + mask_at, 8) {
            return Ok(());
        }
        writeln!(
            f,
            "\t\tMasking: {:08x}  Pending: {:08x}",
            img.u32(at + mask_at),
            img.u32(at + mask_at + 4)
        )?;
    }
    Ok(())
}

fn msix(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize, cap: u16) -> fmt::Result {
    let c = u32::from(cap);
    writeln!(
        f,
        "MSI-X: Enable{} Count={} Masked{}",
        flag(c, 0x8000),
        (c & 0x7ff) + 1,
        flag(c, 0x4000),
    )?;
    if !img.has(at + 4, 8) {
        return Ok(());
    }
    let table = img.u32(at + 4);
    writeln!(
        f,
        "\t\tVector table: BAR={} offset={:08x}",
        table & 7,
        table & !7
    )?;
    let pba = img.u32(at + 8);
    writeln!(f, "\t\tPBA: BAR={} offset={:08x}", pba & 7, pba & !7)
}

fn sata(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize, cap: u16) -> fmt::Result {
    write!(f, "SATA HBA v{}.{}", (cap >> 4) & 0xf, cap & 0xf)?;
    if !img.has(at + 4, 4) {
        return writeln!(f);
    }
    let bars = img.u32(at + 4);
    match bars & 0xf {
        bar @ 4..=9 => writeln!(f, " BAR{} Offset={:08x}", bar - 4, (bars >> 4) & 0xf_ffff),
        15 => writeln!(f, " InCfgSpace"),
        bar => writeln!(f, " BAR??{bar}"),
    }
}

/// A power limit as lspci prints it: the value times the scale's power of ten, in
/// watts, shortest form (`25W`, `2.5W`, `>600W`).
struct PowerLimit {
    value: u32,
    scale: u32,
}

impl fmt::Display for PowerLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.value;
        if self.scale == 0 && value == 0xff {
            return f.write_str(">600W");
        }
        if self.scale == 0 && (0xf0..=0xfe).contains(&value) {
            value = 250 + 25 * (value - 0xf0);
        }
        // value × 10^-scale watts, printed without trailing zeros.
        let mut s = alloc::format!("{value}");
        let scale = self.scale as usize;
        if scale > 0 {
            while s.len() <= scale {
                s.insert(0, '0');
            }
            s.insert(s.len() - scale, '.');
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        write!(f, "{s}W")
    }
}

const L0S_LATENCY: [&str; 8] = [
    "<64ns",
    "<128ns",
    "<256ns",
    "<512ns",
    "<1us",
    "<2us",
    "<4us",
    "unlimited",
];
const L1_LATENCY: [&str; 8] = [
    "<1us",
    "<2us",
    "<4us",
    "<8us",
    "<16us",
    "<32us",
    "<64us",
    "unlimited",
];

fn link_speed(code: u32) -> &'static str {
    match code {
        1 => "2.5GT/s",
        2 => "5GT/s",
        3 => "8GT/s",
        4 => "16GT/s",
        5 => "32GT/s",
        6 => "64GT/s",
        _ => "unknown",
    }
}

fn express(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize, cap: u16) -> fmt::Result {
    let c = u32::from(cap);
    let code = ((c >> 4) & 0xf) as u8;
    let ty = PortType::from_code(code);
    let slot_flag = flag(c, 1 << 8);
    let mut slot = false;
    let mut link = true;
    write!(f, "Express (v{}) ", c & 0xf)?;
    match ty {
        PortType::RootPort | PortType::DownstreamSwitchPort | PortType::PciToPcieBridge => {
            slot = c & (1 << 8) != 0;
            write!(f, "{} (Slot{slot_flag})", ty.name())?;
        }
        PortType::RcIntegratedEndpoint | PortType::RcEventCollector => {
            link = false;
            f.write_str(ty.name())?;
        }
        PortType::Reserved(code) => write!(f, "Unknown type {code}")?,
        other => f.write_str(other.name())?,
    }
    writeln!(f, ", MSI {:02x}", (c >> 9) & 0x1f)?;
    let root = matches!(ty, PortType::RootPort | PortType::RcEventCollector);
    let size = if root {
        32
    } else if slot {
        24
    } else {
        16
    };
    if !img.has(at + 4, size) {
        return Ok(());
    }
    express_device(f, img, at, ty)?;
    if link {
        express_link(f, img, at, ty)?;
    }
    if slot {
        express_slot(f, img, at)?;
    }
    if root {
        express_root(f, img, at)?;
    }
    Ok(())
}

fn express_device(
    f: &mut fmt::Formatter<'_>,
    img: &ConfigImage,
    at: usize,
    ty: PortType,
) -> fmt::Result {
    use PortType::*;
    let t = img.u32(at + 4);
    let endpoint = matches!(ty, Endpoint | LegacyEndpoint);
    write!(
        f,
        "\t\tDevCap:\tMaxPayload {} bytes, PhantFunc {}",
        128u32 << (t & 7),
        (1u32 << ((t >> 3) & 3)) - 1
    )?;
    if endpoint {
        write!(
            f,
            ", Latency L0s {}, L1 {}",
            L0S_LATENCY[((t >> 6) & 7) as usize],
            L1_LATENCY[((t >> 9) & 7) as usize]
        )?;
    }
    writeln!(f)?;
    write!(f, "\t\t\tExtTag{}", flag(t, 1 << 5))?;
    if matches!(
        ty,
        Endpoint | LegacyEndpoint | UpstreamSwitchPort | PcieToPciBridge
    ) {
        write!(
            f,
            " AttnBtn{} AttnInd{} PwrInd{}",
            flag(t, 1 << 12),
            flag(t, 1 << 13),
            flag(t, 1 << 14)
        )?;
    }
    write!(f, " RBE{}", flag(t, 1 << 15))?;
    let flr_type = matches!(ty, Endpoint | LegacyEndpoint | RcIntegratedEndpoint);
    if flr_type {
        write!(f, " FLReset{}", flag(t, 1 << 28))?;
    }
    if matches!(ty, Endpoint | UpstreamSwitchPort | PcieToPciBridge) {
        write!(
            f,
            " SlotPowerLimit {}",
            PowerLimit {
                value: (t >> 18) & 0xff,
                scale: (t >> 26) & 3
            }
        )?;
    }
    writeln!(f)?;

    let w = u32::from(img.u16(at + 8));
    writeln!(
        f,
        "\t\tDevCtl:\tCorrErr{} NonFatalErr{} FatalErr{} UnsupReq{}",
        flag(w, 1),
        flag(w, 2),
        flag(w, 4),
        flag(w, 8)
    )?;
    write!(
        f,
        "\t\t\tRlxdOrd{} ExtTag{} PhantFunc{} AuxPwr{} NoSnoop{}",
        flag(w, 1 << 4),
        flag(w, 1 << 8),
        flag(w, 1 << 9),
        flag(w, 1 << 10),
        flag(w, 1 << 11)
    )?;
    if ty == PcieToPciBridge {
        write!(f, " BrConfRtry{}", flag(w, 1 << 15))?;
    }
    if flr_type && t & (1 << 28) != 0 {
        write!(f, " FLReset{}", flag(w, 1 << 15))?;
    }
    writeln!(
        f,
        "\n\t\t\tMaxPayload {} bytes, MaxReadReq {} bytes",
        128u32 << ((w >> 5) & 7),
        128u32 << ((w >> 12) & 7)
    )?;

    let s = u32::from(img.u16(at + 10));
    writeln!(
        f,
        "\t\tDevSta:\tCorrErr{} NonFatalErr{} FatalErr{} UnsupReq{} AuxPwr{} TransPend{}",
        flag(s, 1),
        flag(s, 2),
        flag(s, 4),
        flag(s, 8),
        flag(s, 0x10),
        flag(s, 0x20)
    )
}

fn express_link(
    f: &mut fmt::Formatter<'_>,
    img: &ConfigImage,
    at: usize,
    ty: PortType,
) -> fmt::Result {
    use PortType::*;
    let t = img.u32(at + 0xc);
    let aspm = (t >> 10) & 3;
    let cap_speed = t & 0xf;
    let cap_width = (t >> 4) & 0x3f;
    let aspm_text = ["not supported", "L0s", "L1", "L0s L1"][aspm as usize];
    write!(
        f,
        "\t\tLnkCap:\tPort #{}, Speed {}, Width x{}, ASPM {}",
        t >> 24,
        link_speed(cap_speed),
        cap_width,
        aspm_text
    )?;
    if aspm != 0 {
        f.write_str(", Exit Latency ")?;
        if aspm & 1 != 0 {
            write!(f, "L0s {}", L0S_LATENCY[((t >> 12) & 7) as usize])?;
        }
        if aspm & 2 != 0 {
            let sep = if aspm & 1 != 0 { ", " } else { "" };
            write!(f, "{sep}L1 {}", L1_LATENCY[((t >> 15) & 7) as usize])?;
        }
    }
    writeln!(f)?;
    writeln!(
        f,
        "\t\t\tClockPM{} Surprise{} LLActRep{} BwNot{} ASPMOptComp{}",
        flag(t, 1 << 18),
        flag(t, 1 << 19),
        flag(t, 1 << 20),
        flag(t, 1 << 21),
        flag(t, 1 << 22)
    )?;

    let w = u32::from(img.u16(at + 0x10));
    let aspm_enabled = ["Disabled", "L0s Enabled", "L1 Enabled", "L0s L1 Enabled"];
    write!(f, "\t\tLnkCtl:\tASPM {};", aspm_enabled[(w & 3) as usize])?;
    if matches!(ty, RootPort | Endpoint | LegacyEndpoint | PcieToPciBridge) {
        write!(f, " RCB {} bytes,", if w & 8 != 0 { 128 } else { 64 })?;
    }
    writeln!(
        f,
        " Disabled{} CommClk{}\n\t\t\tExtSynch{} ClockPM{} AutWidDis{} BWInt{} AutBWInt{}",
        flag(w, 1 << 4),
        flag(w, 1 << 6),
        flag(w, 1 << 7),
        flag(w, 1 << 8),
        flag(w, 1 << 9),
        flag(w, 1 << 10),
        flag(w, 1 << 11)
    )?;

    let s = u32::from(img.u16(at + 0x12));
    let sta_speed = s & 0xf;
    let sta_width = (s >> 4) & 0x3f;
    let compare = |sta: u32, cap: u32| {
        if sta > cap {
            " (overdriven)"
        } else if sta == cap || matches!(ty, RootPort | DownstreamSwitchPort | PciToPcieBridge) {
            ""
        } else {
            " (downgraded)"
        }
    };
    writeln!(
        f,
        "\t\tLnkSta:\tSpeed {}{}, Width x{}{}",
        link_speed(sta_speed),
        compare(sta_speed, cap_speed),
        sta_width,
        compare(sta_width, cap_width)
    )?;
    writeln!(
        f,
        "\t\t\tTrErr{} Train{} SlotClk{} DLActive{} BWMgmt{} ABWMgmt{}",
        flag(s, 1 << 10),
        flag(s, 1 << 11),
        flag(s, 1 << 12),
        flag(s, 1 << 13),
        flag(s, 1 << 14),
        flag(s, 1 << 15)
    )
}

fn express_slot(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize) -> fmt::Result {
    const INDICATOR: [&str; 4] = ["Unknown", "On", "Blink", "Off"];
    let t = img.u32(at + 0x14);
    writeln!(
        f,
        "\t\tSltCap:\tAttnBtn{} PwrCtrl{} MRL{} AttnInd{} PwrInd{} HotPlug{} Surprise{}",
        flag(t, 1),
        flag(t, 2),
        flag(t, 4),
        flag(t, 8),
        flag(t, 0x10),
        flag(t, 0x40),
        flag(t, 0x20)
    )?;
    writeln!(
        f,
        "\t\t\tSlot #{}, PowerLimit {}; Interlock{} NoCompl{}",
        t >> 19,
        PowerLimit {
            value: (t >> 7) & 0xff,
            scale: (t >> 15) & 3
        },
        flag(t, 1 << 17),
        flag(t, 1 << 18)
    )?;
    let w = u32::from(img.u16(at + 0x18));
    writeln!(
        f,
        "\t\tSltCtl:\tEnable: AttnBtn{} PwrFlt{} MRL{} PresDet{} CmdCplt{} HPIrq{} LinkChg{}",
        flag(w, 1),
        flag(w, 2),
        flag(w, 4),
        flag(w, 8),
        flag(w, 0x10),
        flag(w, 0x20),
        flag(w, 0x1000)
    )?;
    writeln!(
        f,
        "\t\t\tControl: AttnInd {}, PwrInd {}, Power{} Interlock{}",
        INDICATOR[((w >> 6) & 3) as usize],
        INDICATOR[((w >> 8) & 3) as usize],
        flag(w, 0x400),
        flag(w, 0x800)
    )?;
    let s = u32::from(img.u16(at + 0x1a));
    writeln!(
        f,
        "\t\tSltSta:\tStatus: AttnBtn{} PowerFlt{} MRL{} CmdCplt{} PresDet{} Interlock{}",
        flag(s, 1),
        flag(s, 2),
        flag(s, 0x20),
        flag(s, 0x10),
        flag(s, 0x40),
        flag(s, 0x80)
    )?;
    writeln!(
        f,
        "\t\t\tChanged: MRL{} PresDet{} LinkState{}",
        flag(s, 4),
        flag(s, 8),
        flag(s, 0x100)
    )
}

fn express_root(f: &mut fmt::Formatter<'_>, img: &ConfigImage, at: usize) -> fmt::Result {
    let cap = u32::from(img.u16(at + 0x1e));
    writeln!(f, "\t\tRootCap: CRSVisible{}", flag(cap, 1))?;
    let ctl = u32::from(img.u16(at + 0x1c));
    writeln!(
        f,
        "\t\tRootCtl: ErrCorrectable{} ErrNon-Fatal{} ErrFatal{} PMEIntEna{} CRSVisible{}",
        flag(ctl, 1),
        flag(ctl, 2),
        flag(ctl, 4),
        flag(ctl, 8),
        flag(ctl, 0x10)
    )?;
    let sta = img.u32(at + 0x20);
    writeln!(
        f,
        "\t\tRootSta: PME ReqID {:04x}, PMEStatus{} PMEPending{}",
        sta & 0xffff,
        flag(sta, 1 << 16),
        flag(sta, 1 << 17)
    )
}

/// The extended capabilities (0x100..0x1000), when the snapshot has them.
fn extended(f: &mut fmt::Formatter<'_>, img: &ConfigImage) -> fmt::Result {
    const DSN: u16 = 0x0003;
    let mut seen = [false; 0x400];
    let mut at = 0x100;
    loop {
        if !img.has(at, 4) {
            return Ok(());
        }
        let header = img.u32(at);
        if header == 0 || header == u32::MAX {
            return Ok(());
        }
        let cap_id = (header & 0xffff) as u16;
        write!(f, "\tCapabilities: [{at:03x} v{}] ", (header >> 16) & 0xf)?;
        if core::mem::replace(&mut seen[at / 4], true) {
            return writeln!(f, "<chain looped>");
        }
        if cap_id == DSN && img.has(at + 4, 8) {
            let (lo, hi) = (img.u32(at + 4), img.u32(at + 8));
            let b = |v: u32, s: u32| (v >> s) & 0xff;
            writeln!(
                f,
                "Device Serial Number {:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
                b(hi, 24),
                b(hi, 16),
                b(hi, 8),
                b(hi, 0),
                b(lo, 24),
                b(lo, 16),
                b(lo, 8),
                b(lo, 0)
            )?;
        } else {
            match ext_capability_name(cap_id) {
                "Unknown" => writeln!(f, "Extended Capability ID {cap_id:#x}")?,
                name => writeln!(f, "{name}")?,
            }
        }
        at = (header >> 20) as usize & !3;
        if at < 0x100 {
            return Ok(());
        }
    }
}
