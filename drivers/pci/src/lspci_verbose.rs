//! One function as `lspci -D -nn -vv` prints it, from a [`ConfigImage`] and the BARs'
//! sizes (which only sizing, done at enumeration, can tell).
//!
//! The lines and their order are pciutils 3.9.0's: the identity line (with the class's
//! programming interface), `Subsystem:`, `Control:`, `Status:`, `Latency:` (bus
//! masters), BIST, the regions, the expansion ROM, for a bridge its `Bus:` line, then
//! the capabilities ([`crate::lspci_caps`]). Left out, because they are the operating
//! system's view rather than the function's: `Interrupt: pin A routed to IRQ n`, a
//! bridge's forwarding windows, the ROM's size, `Kernel driver in use`.

use core::fmt;

use crate::address::PciAddress;
use crate::bar::{BarKind, Bars, HumanSize};
use crate::config_image::ConfigImage;
use crate::header::{COMMAND, ClassCode, STATUS};
use crate::lspci_caps::Capabilities;
use crate::names::{VendorDevice, prog_if};

fn flag(value: u16, mask: u16) -> char {
    if value & mask != 0 { '+' } else { '-' }
}

/// One function's `lspci -D -nn -vv` block.
pub struct Verbose<'a> {
    /// Where the function is.
    pub address: PciAddress,
    /// Its configuration space: 256 bytes, or 4096 to show extended capabilities.
    pub image: &'a ConfigImage,
    /// Its BARs as enumeration sized them (`None`: regions shown without sizes).
    pub bars: Option<&'a Bars>,
}

/// A function's identity line as `lspci -D -nn -v` prints it (and `-x` above its
/// dump): `0000:00:1f.2 SATA controller [0106]: Intel Corporation ... [8086:2922] (rev
/// 02) (prog-if 01 [AHCI 1.0])`, with a newline.
pub struct Terse<'a> {
    /// Where the function is.
    pub address: PciAddress,
    /// Its configuration space (the first 64 bytes are enough).
    pub image: &'a ConfigImage,
}

impl fmt::Display for Terse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let img = self.image;
        let class = ClassCode {
            base: img.u8(0x0b),
            sub: img.u8(0x0a),
            prog_if: img.u8(0x09),
        };
        write!(
            f,
            "{} {} [{:04x}]: {}",
            self.address,
            class.name(),
            class.class_and_subclass(),
            VendorDevice::function(img.u16(0), img.u16(2))
        )?;
        let rev = img.u8(8);
        if rev != 0 {
            write!(f, " (rev {rev:02x})")?;
        }
        let name = prog_if(class.base, class.sub, class.prog_if);
        if class.prog_if != 0 || name.is_some() {
            write!(f, " (prog-if {:02x}", class.prog_if)?;
            if let Some(name) = name {
                write!(f, " [{name}]")?;
            }
            f.write_str(")")?;
        }
        writeln!(f)
    }
}

impl Verbose<'_> {
    fn control_and_status(&self, f: &mut fmt::Formatter<'_>, layout: u8) -> fmt::Result {
        let img = self.image;
        let cmd = img.u16(COMMAND.offset().into());
        let st = img.u16(STATUS.offset().into());
        writeln!(
            f,
            "\tControl: I/O{} Mem{} BusMaster{} SpecCycle{} MemWINV{} VGASnoop{} ParErr{} Stepping{} SERR{} FastB2B{} DisINTx{}",
            flag(cmd, 1),
            flag(cmd, 2),
            flag(cmd, 4),
            flag(cmd, 8),
            flag(cmd, 0x10),
            flag(cmd, 0x20),
            flag(cmd, 0x40),
            flag(cmd, 0x80),
            flag(cmd, 0x100),
            flag(cmd, 0x200),
            flag(cmd, 0x400)
        )?;
        let devsel = match st & 0x600 {
            0x000 => "fast",
            0x200 => "medium",
            0x400 => "slow",
            _ => "??",
        };
        writeln!(
            f,
            "\tStatus: Cap{} 66MHz{} UDF{} FastB2B{} ParErr{} DEVSEL={} >TAbort{} <TAbort{} <MAbort{} >SERR{} <PERR{} INTx{}",
            flag(st, 0x10),
            flag(st, 0x20),
            flag(st, 0x40),
            flag(st, 0x80),
            flag(st, 0x100),
            devsel,
            flag(st, 0x800),
            flag(st, 0x1000),
            flag(st, 0x2000),
            flag(st, 0x4000),
            flag(st, 0x8000),
            flag(st, 0x08)
        )?;
        if cmd & 4 != 0 {
            write!(f, "\tLatency: {}", img.u8(0x0d))?;
            // Min_Gnt and Max_Lat exist in type 0 headers only.
            let (min_gnt, max_lat) = if layout == 0 {
                (u32::from(img.u8(0x3e)), u32::from(img.u8(0x3f)))
            } else {
                (0, 0)
            };
            if min_gnt != 0 || max_lat != 0 {
                f.write_str(" (")?;
                if min_gnt != 0 {
                    write!(f, "{}ns min", min_gnt * 250)?;
                }
                if min_gnt != 0 && max_lat != 0 {
                    f.write_str(", ")?;
                }
                if max_lat != 0 {
                    write!(f, "{}ns max", max_lat * 250)?;
                }
                f.write_str(")")?;
            }
            let cache_line = img.u8(0x0c);
            if cache_line != 0 {
                write!(f, ", Cache Line Size: {} bytes", u32::from(cache_line) * 4)?;
            }
            writeln!(f)?;
        }
        let bist = img.u8(0x0f);
        if bist & 0x80 != 0 {
            if bist & 0x40 != 0 {
                writeln!(f, "\tBIST is running")?;
            } else {
                writeln!(f, "\tBIST result: {:02x}", bist & 0x0f)?;
            }
        }
        Ok(())
    }

    /// `Region N:` lines for the first `count` BAR slots.
    fn regions(&self, f: &mut fmt::Formatter<'_>, count: u8) -> fmt::Result {
        let img = self.image;
        let cmd = img.u16(COMMAND.offset().into());
        let Some(bars) = self.bars else {
            return Ok(());
        };
        for bar in bars.iter().filter(|b| b.index < count) {
            write!(f, "\tRegion {}: ", bar.index)?;
            match bar.kind {
                BarKind::Io => {
                    write!(f, "I/O ports at {:04x}", bar.address)?;
                    if cmd & 1 == 0 {
                        f.write_str(" [disabled]")?;
                    }
                }
                BarKind::Memory32 | BarKind::Memory64 => {
                    f.write_str("Memory at ")?;
                    if bar.address != 0 {
                        write!(f, "{:08x}", bar.address)?;
                    } else {
                        f.write_str("<unassigned>")?;
                    }
                    write!(
                        f,
                        " ({}-bit, {}prefetchable)",
                        if bar.kind == BarKind::Memory64 {
                            64
                        } else {
                            32
                        },
                        if bar.prefetchable { "" } else { "non-" }
                    )?;
                    if cmd & 2 == 0 {
                        f.write_str(" [disabled]")?;
                    }
                }
            }
            if bar.size != 0 {
                write!(f, " [size={}]", HumanSize(bar.size))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }

    /// `Expansion ROM at ...` (without its size, which needs sizing the ROM BAR).
    fn rom(&self, f: &mut fmt::Formatter<'_>, register: usize) -> fmt::Result {
        let img = self.image;
        let reg = img.u32(register);
        let address = reg & !0x7ff;
        if address == 0 {
            return Ok(());
        }
        write!(f, "\tExpansion ROM at {address:08x}")?;
        if reg & 1 == 0 {
            f.write_str(" [disabled]")?;
        } else if img.u16(COMMAND.offset().into()) & 2 == 0 {
            f.write_str(" [disabled by cmd]")?;
        }
        writeln!(f)
    }
}

impl fmt::Display for Verbose<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let img = self.image;
        write!(
            f,
            "{}",
            Terse {
                address: self.address,
                image: img
            }
        )?;
        let layout = img.u8(0x0e) & 0x7f;
        if layout == 0 {
            let (sv, sd) = (img.u16(0x2c), img.u16(0x2e));
            if sv != 0 && sv != 0xffff {
                writeln!(
                    f,
                    "\tSubsystem: {}",
                    VendorDevice::subsystem(img.u16(0), img.u16(2), sv, sd)
                )?;
            }
        }
        match layout {
            0..=2 => self.control_and_status(f, layout)?,
            other => writeln!(f, "\t!!! Unknown header type {other:02x}")?,
        }
        match layout {
            0 => {
                self.regions(f, 6)?;
                self.rom(f, 0x30)?;
                write!(
                    f,
                    "{}",
                    Capabilities {
                        image: img,
                        pointer: 0x34
                    }
                )?;
            }
            1 => {
                self.regions(f, 2)?;
                writeln!(
                    f,
                    "\tBus: primary={:02x}, secondary={:02x}, subordinate={:02x}, sec-latency={}",
                    img.u8(0x18),
                    img.u8(0x19),
                    img.u8(0x1a),
                    img.u8(0x1b)
                )?;
                self.rom(f, 0x38)?;
                write!(
                    f,
                    "{}",
                    Capabilities {
                        image: img,
                        pointer: 0x34
                    }
                )?;
            }
            2 => write!(
                f,
                "{}",
                Capabilities {
                    image: img,
                    pointer: 0x14
                }
            )?,
            _ => {}
        }
        Ok(())
    }
}
