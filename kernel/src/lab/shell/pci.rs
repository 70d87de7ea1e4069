//! `pci`: the functions found at boot, one per line as `lspci -D -nn` prints them with
//! their MSI and MSI-X capabilities; `pci BDF`: one function in detail, its interrupt
//! capabilities read back from the hardware now. The views in lspci's own forms —
//! `-vv`, `-t`, `-x`/`-xxx`/`-xxxx` — are `sluice_pci`'s (host-tested against lspci's
//! text); here each function's configuration space is read once into a snapshot.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sluice_irq_core::msi::MsiMsg;
use sluice_pci::{
    ConfigAccess, ConfigImage, Header, MsiCapability, MsixCapability, Status, Terse, Tree, Verbose,
};
use sluice_shell::args::{Args, Bdf};

use super::{Command, Offered};
use crate::pci::{self, Device, config::Config};
use crate::{print, println};

pub static COMMANDS: &[Command] = &[Command {
    name: "pci",
    args: "[-vv | -t | -x | -xxx | -xxxx] [BDF]",
    help: "list PCI functions (lspci -D -nn style, with MSI/MSI-X); one in detail; -vv: as lspci -vv (capabilities decoded); -t: the bus tree (lspci -t); -x, -xxx, -xxxx: configuration space dump of 64, 256, 4096 bytes",
    offered: Offered::Always,
    run: cmd_pci,
}];

/// The lspci forms, as flags.
const VIEWS: [&str; 5] = ["-vv", "-t", "-x", "-xxx", "-xxxx"];

fn cmd_pci(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let view = a.exclusive(&VIEWS)?;
    let bdf = a.opt(Bdf)?;
    a.finish()?;
    let chosen: Vec<&Device> = match bdf {
        Some(bdf) => alloc::vec![device_at(bdf)?],
        None => pci::devices().iter().collect(),
    };
    match (view, bdf) {
        (None, None) => list(),
        (None, Some(_)) => detail(chosen[0]),
        (Some("-t"), Some(_)) => Err(String::from("-t shows the whole tree; it takes no BDF")),
        (Some("-t"), None) => tree(),
        (Some("-vv"), _) => {
            for d in chosen {
                let image = snapshot(d, d.function.config_size.bytes());
                print!(
                    "{}",
                    Verbose {
                        address: d.address(),
                        image: &image,
                        bars: Some(&d.bars),
                    }
                );
                println!();
            }
            Ok(())
        }
        (Some(x), _) => {
            let len = match x {
                "-x" => 64,
                "-xxx" => 256,
                _ => 4096,
            };
            for d in chosen {
                let image = snapshot(d, len);
                print!(
                    "{}{}",
                    Terse {
                        address: d.address(),
                        image: &image
                    },
                    image.hex_dump(usize::from(len))
                );
                println!();
            }
            Ok(())
        }
    }
}

/// The first `len` bytes of `d`'s configuration space (at most what it has), read now.
fn snapshot(d: &Device, len: u16) -> ConfigImage {
    ConfigImage::read(
        &mut Config,
        d.address(),
        len.min(d.function.config_size.bytes()),
    )
}

/// `pci -t`: the bus tree as enumeration found it.
fn tree() -> Result<(), String> {
    let bus = pci::bus().ok_or("PCI was not enumerated")?;
    let nodes = bus.devices.iter().map(|d| (&d.function, d.parent));
    let roots = bus
        .buses
        .iter()
        .filter(|b| b.bridge.is_none())
        .map(|b| (b.segment, b.bus));
    print!("{}", Tree::new(nodes, roots));
    Ok(())
}

/// The function at `bdf`, which must be there.
pub(super) fn device_at(bdf: sluice_pci::PciAddress) -> Result<&'static Device, String> {
    pci::find(bdf).ok_or_else(|| format!("no PCI function at {bdf} (see `pci`)"))
}

/// A command's `BDF` argument: a function that is there.
pub(super) fn device_arg(a: &mut Args) -> Result<&'static Device, String> {
    device_at(a.req(Bdf)?)
}

fn msi_summary(c: &MsiCapability) -> String {
    format!(
        "MSI: {} vector{}, {}-bit, {}",
        c.vectors_capable(),
        if c.vectors_capable() == 1 { "" } else { "s" },
        if c.control.is_64bit() { 64 } else { 32 },
        if c.control.per_vector_masking() {
            "maskable"
        } else {
            "not maskable"
        }
    )
}

fn msix_summary(c: &MsixCapability) -> String {
    format!(
        "MSI-X: {} entries, table BAR{}+{:#x}, PBA BAR{}+{:#x}",
        c.table_size(),
        c.table.bir,
        c.table.offset,
        c.pba.bir,
        c.pba.offset
    )
}

fn list() -> Result<(), String> {
    let bus = pci::bus().ok_or("PCI was not enumerated")?;
    for d in &bus.devices {
        let f = &d.function;
        let mut line = format!("{}", f.lspci());
        if let Some(c) = &f.msi {
            line.push_str("; ");
            line.push_str(&msi_summary(c));
        }
        if let Some(c) = &f.msix {
            line.push_str("; ");
            line.push_str(&msix_summary(c));
        }
        println!("{}", line);
    }
    println!("{}", bus.summary());
    for (a, p) in &bus.problems {
        match a {
            Some(a) => println!("problem at {}: {}", a, p),
            None => println!("problem: {}", p),
        }
    }
    Ok(())
}

fn flags<T: core::fmt::Debug>(f: T) -> String {
    // bitflags' Debug is `Command(MEMORY_SPACE | BUS_MASTER)`: keep the inside.
    let s = format!("{f:?}");
    match (s.find('('), s.rfind(')')) {
        (Some(a), Some(b)) if b > a + 1 => String::from(&s[a + 1..b]),
        _ => String::from("none"),
    }
}

/// ", masked" and ", pending" where the function says so.
pub(super) fn state_text(m: &crate::irq::domains::pci_msi::StoredMessage) -> &'static str {
    match (m.masked == Some(true), m.pending == Some(true)) {
        (true, true) => ", masked, pending",
        (true, false) => ", masked",
        (false, true) => ", pending",
        (false, false) => "",
    }
}

pub(super) fn message_text(m: &MsiMsg) -> String {
    let mut s = format!(
        "address {:#010x}_{:08x} data {:#06x}",
        m.addr_hi, m.addr_lo, m.data
    );
    match sluice_irq_core::msi::decode(m) {
        Some(c) => s.push_str(&format!(
            " (compatibility: APIC id {}, vector {:#04x})",
            c.dest, c.vector.0
        )),
        None if m.addr_lo & 0xfff0_0000 == 0xfee0_0000 => s.push_str(" (remappable format)"),
        None => s.push_str(" (not an interrupt address)"),
    }
    s
}

fn detail(d: &Device) -> Result<(), String> {
    let a = d.address();
    let f = &d.function;
    println!("{}", f.lspci());
    // Read live: Command and Status change after boot (drivers enable decoding, MSI).
    let now = Header::read(&mut Config, a)
        .map_err(|e| format!("{e}"))?
        .ok_or_else(|| format!("{a} no longer answers"))?;
    println!(
        "  command: {}; status: {}",
        flags(now.command),
        flags(now.status & !Status::DEVSEL_TIMING)
    );
    println!(
        "  header type {:#04x}{}, interrupt pin {:?}, line {}",
        now.header_type.0,
        if now.header_type.multi_function() {
            " (multi-function)"
        } else {
            ""
        },
        now.interrupt_pin,
        now.interrupt_line
    );
    match d.parent.and_then(pci::find) {
        Some(b) => println!(
            "  behind bridge {} ({})",
            b.address(),
            b.function.class().name()
        ),
        None => println!("  on root bus {:02x}", a.bus()),
    }
    if let Some(n) = f.bus_numbers() {
        println!(
            "  bridge buses: primary {:02x}, secondary {:02x}, subordinate {:02x}{}",
            n.primary,
            n.secondary,
            n.subordinate,
            if f.followed_bus.is_some() {
                ""
            } else {
                " (not followed)"
            }
        );
    }
    for bar in d.bars.iter() {
        println!("  {}", bar);
    }
    for e in d.bars.errors() {
        println!("  BAR problem: {}", e);
    }
    if let Some(e) = &d.bar_problem {
        println!("  BARs not sized: {}", e);
    }
    let caps: Vec<String> = f
        .capabilities
        .found
        .iter()
        .map(|c| format!("{:#04x} {}", c.offset, c.name()))
        .collect();
    println!(
        "  capabilities: {}",
        if caps.is_empty() {
            String::from("none")
        } else {
            caps.join(", ")
        }
    );
    let ext: Vec<String> = f
        .ext_capabilities
        .found
        .iter()
        .map(|c| format!("{:#05x} {} v{}", c.offset, c.name(), c.version))
        .collect();
    if !ext.is_empty() {
        println!("  extended capabilities: {}", ext.join(", "));
    }
    for p in f
        .capabilities
        .problems
        .iter()
        .chain(f.ext_capabilities.problems.iter())
    {
        println!("  capability list problem: {}", p);
    }
    if let Some(p) = &f.pcie {
        println!("  PCI Express: {} (capability v{})", p.port_type, p.version);
    }
    if let Some(p) = &f.power {
        println!(
            "  power management: {:?}, PM version {}",
            p.state, p.version
        );
    }
    if let Some(c) = &f.msi {
        show_msi(d, c);
    }
    if let Some(c) = &f.msix {
        show_msix(d, c);
    }
    match d.requester_id() {
        Some(r) => println!("  requester id: {}", r),
        None => println!("  requester id: unknown (a bridge above has no usable bus number)"),
    }
    if d.aliases.len() > 1 {
        let all: Vec<String> = d.aliases.iter().map(|r| format!("{r}")).collect();
        println!("  DMA aliases, nearest first: {}", all.join("; "));
    }
    let held = crate::irq::domains::pci_msi::held(d);
    if held.is_empty() {
        println!("  irqs: none");
    } else {
        let mode = crate::irq::domains::pci_msi::mode(d).map_or(String::new(), |m| format!("{m}"));
        for (index, virq) in held {
            let t = crate::irq::target(virq)
                .map(|t| format!("CPU {} vector {:#04x}", t.cpu, t.vector.0))
                .unwrap_or_else(|e| format!("{e}"));
            println!("  irq {}: {} message {}, {}", virq, mode, index, t);
            super::irq::print_remapping(virq);
        }
    }
    Ok(())
}

fn show_msi(d: &Device, c: &MsiCapability) {
    let a = d.address();
    let control = Config
        .read_reg(a, c.control_register())
        .map(sluice_pci::MsiControl)
        .unwrap_or(c.control);
    println!(
        "  MSI at {:#04x}: {} capable, {} enabled, {}-bit, {}; {}",
        c.offset,
        c.vectors_capable(),
        if control.enabled() {
            1u32 << control.multiple_message_enable_log2()
        } else {
            0
        },
        if c.control.is_64bit() { 64 } else { 32 },
        if c.control.per_vector_masking() {
            "per-vector masking"
        } else {
            "no masking"
        },
        if control.enabled() {
            "enabled"
        } else {
            "disabled"
        }
    );
    println!(
        "    message: {}",
        message_text(&crate::pci::msi::read_message(a, c))
    );
    let mut cfg = Config;
    if let (Ok(Some(m)), Ok(Some(p))) = (
        c.read_mask_bits(&mut cfg, a),
        c.read_pending_bits(&mut cfg, a),
    ) {
        println!("    mask bits {:#010x}, pending bits {:#010x}", m, p);
    }
}

fn show_msix(d: &Device, c: &MsixCapability) {
    let control = Config
        .read_reg(d.address(), c.control_register())
        .map(sluice_pci::MsixControl)
        .unwrap_or(c.control);
    println!(
        "  MSI-X at {:#04x}: {}; {}{}",
        c.offset,
        msix_summary(c),
        if control.enabled() {
            "enabled"
        } else {
            "disabled"
        },
        if control.function_masked() {
            ", function masked"
        } else {
            ""
        }
    );
    for (index, virq) in crate::irq::domains::pci_msi::held(d) {
        if let Some((_, m)) = crate::irq::domains::pci_msi::stored_message(virq) {
            println!(
                "    entry {}: {}{} (irq {})",
                index,
                message_text(&m.message),
                state_text(&m),
                virq
            );
        }
    }
}
