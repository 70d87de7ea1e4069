//! The lock validator bound to the core's own locks, shown by catching wrong uses on
//! purpose (sluice-sync's host platform: this thread is a CPU with a simulated interrupt
//! flag; the simulator delivers in hard-interrupt context and calls the core with
//! interrupts off, as the kernel does).
//!
//! Its own binary: a violation provoked here is known to the whole process's validator,
//! so it would fail the verdict of any simulation sharing it. The tests run one at a
//! time and start by forgetting what the validator learnt about the core's classes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use sluice_irq_core::locks;
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqSource};
use sluice_sim::{Boot, PciMsiStorage, Timing, deliver, function, verdict};
use sluice_sync::host::{set_irqs_enabled, take_reports};
use sluice_sync::validator::{self, Acquisition, Violation};
use sluice_sync::{LockClass, Report};

/// One test at a time, each with a validator that knows nothing of the core's classes.
fn alone() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    let g = ONE.lock().unwrap_or_else(|e| e.into_inner());
    for c in [
        &locks::DOMAINS,
        &locks::DESC,
        &locks::VECTOR,
        &locks::HOTPLUG,
        &locks::DEFERRED,
        &locks::IOAPIC_LINES,
        &locks::MSI_INDEX,
        &locks::QUEUED_SLOTS,
    ] {
        validator::forget(c);
    }
    take_reports();
    g
}

/// Taken by the interrupt core's own code (the sites name its sources, not this file).
fn in_the_core(a: &Acquisition) -> bool {
    a.site
        .is_some_and(|s| s.file().replace('\\', "/").contains("irq-core/src/"))
}

fn is(a: &Acquisition, c: &LockClass) -> bool {
    a.class.is(c)
}

fn text(r: &[Report]) -> String {
    r.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The binding proven: a delivery takes the descriptor lock in hard-interrupt context
/// (the kernel's `dispatch`), so a core call made with interrupts on — a kernel path that
/// bypassed `with_core` — is caught at once as an irq-unsafe lock, with both sites in
/// the core, although no interrupt happened to land while it held the lock. The same
/// report fails the simulator's verdict.
#[test]
fn a_core_call_with_interrupts_on_is_an_irq_unsafe_descriptor_lock() {
    let _alone = alone();
    let boot = Boot::new(1, Timing::Immediate);
    // Device 0's irq, its handler token 0 (the device's index, as the verdict wants).
    let virq = boot.msi_irq("dev", true, function(3), CpuMask::single(0), 0);
    boot.m.lock().unwrap().fire(0);
    assert!(deliver(&boot.core, &boot.m, 0), "the firing is delivered");
    assert_eq!(boot.core.desc(virq).unwrap().total(), 1);
    let correct = take_reports();
    assert!(
        correct.is_empty(),
        "the kernel's way (calls with interrupts off, delivery in an interrupt): {}",
        text(&correct)
    );

    // The wrong use: the same call, interrupts on.
    set_irqs_enabled(true);
    let _ = boot.core.desc(virq);
    set_irqs_enabled(false);

    let r = take_reports();
    assert_eq!(r.len(), 1, "one report: {}", text(&r));
    let Violation::IrqUnsafe { in_irq, irqs_on } = r[0].violation else {
        panic!("wrong kind of report: {}", r[0])
    };
    assert!(
        is(&in_irq, &locks::DESC) && is(&irqs_on, &locks::DESC),
        "{}",
        r[0]
    );
    assert!(in_the_core(&in_irq) && in_the_core(&irqs_on), "{}", r[0]);
    assert!(
        verdict(&boot.m.lock().unwrap(), &boot.core)
            .iter()
            .any(|f| f.starts_with("lockdep: irq-unsafe lock") && f.contains("irq.desc")),
        "the simulator's verdict fails on the report"
    );
}

/// The core whose chip calls back into it (set once the chip's domain is built).
static CORE: OnceLock<&'static IrqCore> = OnceLock::new();
/// Whether the chip calls back now.
static CALL_BACK: AtomicBool = AtomicBool::new(false);

/// An MSI function's storage whose message write calls back into the core — a chip that
/// lists the domains while the core holds the irq's descriptor lock.
struct CallsBack(PciMsiStorage);

impl MsiStorage for CallsBack {
    fn caps(&self) -> MsiCaps {
        self.0.caps()
    }
    fn write_addr_lo(&self, index: u32, value: u32) {
        self.0.write_addr_lo(index, value)
    }
    fn write_addr_hi(&self, index: u32, value: u32) {
        self.0.write_addr_hi(index, value)
    }
    fn write_data(&self, index: u32, value: u32) {
        self.0.write_data(index, value);
        if CALL_BACK.load(Ordering::Relaxed)
            && let Some(core) = CORE.get()
        {
            let _ = core.domain_tree();
        }
    }
    fn mask(&self, index: u32) -> sluice_irq_core::Result<()> {
        self.0.mask(index)
    }
    fn unmask(&self, index: u32) -> sluice_irq_core::Result<()> {
        self.0.unmask(index)
    }
    fn read(&self, index: u32) -> MsiMsg {
        self.0.read(index)
    }
    fn flush(&self, index: u32) {
        self.0.flush(index)
    }
}

/// The core's order (domain → descriptor → vector, installed by the simulator as the
/// declared order) is checked on the host: a chip that takes the domain lock under a
/// descriptor lock is reported, naming that nesting, although it did not deadlock here.
#[test]
fn a_chip_taking_the_domain_lock_under_a_descriptor_lock_is_caught() {
    let _alone = alone();
    let boot: &'static Boot = Box::leak(Box::new(Boot::new(1, Timing::Immediate)));
    CORE.set(&boot.core).ok().expect("one core");
    let storage = CallsBack(boot.msi_function(1, true, function(4)));
    let dom = boot.add(
        "PCI-MSI-4",
        std::sync::Arc::new(MsiDomain::new("PCI-MSI", storage)),
    );
    let source = IrqSource::Pci {
        function: function(4),
        index: 0,
    };
    let virq = boot
        .core
        .alloc_irq(dom, &source, &IrqAlloc::edge(CpuMask::single(0)))
        .unwrap();
    assert!(take_reports().is_empty(), "nothing wrong yet");

    CALL_BACK.store(true, Ordering::Relaxed);
    boot.core.request_irq(virq, 4, "calls-back").unwrap();
    CALL_BACK.store(false, Ordering::Relaxed);

    let r = take_reports();
    let caught = r.iter().any(|r| match r.violation {
        Violation::OrderInversion { now, .. } | Violation::Undocumented { now } => {
            is(&now.held, &locks::DESC) && is(&now.taken, &locks::DOMAINS)
        }
        _ => false,
    });
    assert!(caught, "irq.desc -> irq.domains reported: {}", text(&r));
}
