//! The kernel's lock classes and its lock order, in one place: the validator checks
//! every nesting between two classes named here against `ORDER`, and `locks` prints it,
//! so the documented order is the checked one. Every lock in the kernel and in the
//! drivers' crates it links — the interrupt core included — has its class here (the
//! crates' own classes are re-used from them), except the validator's own tests'
//! (`lab/ktest/lockdep.rs`, which also checks that every other class taken since boot is
//! named here).
//!
//! How to read `ORDER`:
//!
//! * a **chain** `[A, B, C]` allows B and C to be taken while A is held, and C while B
//!   is (transitively across chains);
//! * a **leaf** may be taken while any lock is held (unless a chain puts it before that
//!   lock), and only other leaves are taken inside it;
//! * any other nesting between two classes named here is reported.
//!
//! Which locks are interrupt-safe (`IrqSpinLock`) is not part of the order: a class is
//! an `IrqSpinLock` exactly when an interrupt handler (or stop_machine's function, which
//! other CPUs wait for from their CALL_FUNCTION handler) can take it. Each declaration
//! says why.
//!
//! Outermost first:
//!
//! * `smp.stop_serial` → `smp.stop_machine` → the interrupt core — the try-lock that
//!   serialises stop_machine (`smp/stop_machine.rs`), held across the rendezvous; the
//!   rendezvous itself (a `LockMap`: its function runs holding it, every other CPU waits
//!   for it, from an interrupt handler if it was busy). The function migrates the dying
//!   CPU's irqs through the core (descriptor and vector locks; the domain lock when a
//!   block's hold keeps failing), and otherwise takes only leaves: the hotplug hand-over
//!   slot, the chips' locks, the heap, the console.
//! * `irq.affinity` → `irq.remote_call` → the interrupt core — affinity changes from
//!   task context, then the one cross-CPU plan call at a time (`irq/affinity.rs`;
//!   hotplug's restores take only the second), each calling the core under them. The
//!   posted plan's slot, `irq.remote_plan`, is a leaf: the CALL_FUNCTION handler takes
//!   it, and lets go before it runs the plan.
//! * `irq.affinity` → `pci.device_irqs` → `pci.bars` → `memory.paging` →
//!   `memory.frames` — a function's MSI/MSI-X state is held across a whole request or
//!   free (`irq/domains/pci_msi.rs`; `bench affinity` takes it with moves held off); the
//!   MSI-X table is mapped from a BAR under it; mapping takes the page tables, which may
//!   allocate page-table frames.
//! * `smp.ap_start` → `memory.paging` — one AP start at a time (`smp/ap.rs`), mapping
//!   its stacks.
//! * `pci.config_mapping` → `memory.paging` — mapping an ECAM bus (`pci/config.rs`).
//! * The interrupt core (`sluice_irq_core::locks`; its README, "Locking"):
//!   `irq.domains` → `irq.desc` (one class for every irq; a block's several only in
//!   ascending virq order, `lock_ordered`) → `irq.vector`, under `smp.stop_machine`,
//!   `irq.affinity`, `irq.remote_call` and `pci.device_irqs`, above the chips' leaves.
//!   Its own leaves: `irq.hotplug`, `irq.deferred`, and its chips' `irq.ioapic_lines`,
//!   `irq.msi_index`, `irq.queued_slots`. Plain spin locks (the core is called with
//!   interrupts off, `irq::with_core`), except the chips': `sluice_irq_core::locks` says
//!   why; the validator reports any core call that holds one with interrupts on.
//! * `pci.msi_mask` → `pci.config_legacy` — an MSI mask-bit shadow and its write
//!   (`sluice_pci::msi_storage`), then the legacy configuration port pair. Both leaves.
//! * Chip and device leaves, taken under the interrupt core's locks and from interrupt
//!   handlers: `apic.ioapic` (`irq/domains/ioapic.rs`), `vtd.ir_entries`
//!   (`sluice_vtd::domain`), `iommu.unit` (`iommu/unit.rs`), `dev.queued_edu`
//!   (`lab/devices/queued_edu.rs`); and `smp.take_down`, `irq.remote_plan`,
//!   `irq.handlers`.
//! * `iommu.fault_log` — a unit's recent faults (`irq/domains/dmar_msi.rs`): taken by
//!   the fault handler and by `iommu`, under no other lock.
//! * The console: `console.kbd_decoder` → `console.kbd_keys` (the keyboard's handler
//!   decodes, then queues; `console/keyboard.rs`), `console.ansi` →
//!   `console.screen_render` → `console.screen_text` (the shell's COM1 decoder may
//!   scroll the screen; the painter copies the text out; `console/input.rs`,
//!   `console/screen.rs`), `console.com1` → `console.com1_rx` (`console/serial.rs`).
//!   All but the two decoders are leaves: every path may log.
//! * `memory.heap` — a leaf: anything may allocate (`memory/heap.rs`).
//! * Boot, lab and test state, leaves that hold nothing but the heap: `time.boot_stages`,
//!   `shell.script`, `ktest.summary`, `lab.storm_*`, `bench.*`.

use sluice_sync::{LockClass, LockOrder};

// --- CPUs ---

/// Serialises stop_machine calls (`smp::stop_machine::LOCK`, try-locked only).
pub static STOP_SERIAL: LockClass = LockClass::new("smp.stop_serial");
/// stop_machine's rendezvous (a `LockMap`: waited for, not spun on).
pub static STOP_MACHINE: LockClass = LockClass::new("smp.stop_machine");
/// The dying CPU's migration result handed to the initiator (`smp::hotplug::TAKE_DOWN`).
pub static TAKE_DOWN: LockClass = LockClass::new("smp.take_down");
/// One AP start at a time (`smp::ap::START`).
pub static AP_START: LockClass = LockClass::new("smp.ap_start");

// --- Interrupts ---

/// Serialises affinity changes from task context (`irq::affinity::AFFINITY`).
pub static IRQ_AFFINITY: LockClass = LockClass::new("irq.affinity");
/// One cross-CPU plan call at a time (`irq::affinity::REMOTE_CALL`).
pub static IRQ_REMOTE_CALL: LockClass = LockClass::new("irq.remote_call");
/// The plan posted to another CPU (`irq::affinity::REMOTE_PLAN`).
pub static IRQ_REMOTE_PLAN: LockClass = LockClass::new("irq.remote_plan");
/// Handler registration (`irq::dispatch::REGISTER`).
pub static IRQ_HANDLERS: LockClass = LockClass::new("irq.handlers");
/// An I/O APIC's IOREGSEL/IOWIN pair (`irq::domains::ioapic::IoApic::lock`).
pub static IOAPIC: LockClass = LockClass::new("apic.ioapic");

// --- The interrupt core (`sluice_irq_core::locks`) ---

/// The deferred worker's list of queued irqs.
pub use sluice_irq_core::locks::DEFERRED as IRQ_DEFERRED;
/// Every irq's descriptor lock (one class).
pub use sluice_irq_core::locks::DESC as IRQ_DESC;
/// The core's domain lock: registry, virq allocation, block records.
pub use sluice_irq_core::locks::DOMAINS as IRQ_DOMAINS;
/// What CPU hotplug shut down or broke.
pub use sluice_irq_core::locks::HOTPLUG as IRQ_HOTPLUG;
/// An I/O APIC domain's line settings.
pub use sluice_irq_core::locks::IOAPIC_LINES as IRQ_IOAPIC_LINES;
/// An MSI domain's message numbers.
pub use sluice_irq_core::locks::MSI_INDEX as IRQ_MSI_INDEX;
/// A queued MSI domain's entry records.
pub use sluice_irq_core::locks::QUEUED_SLOTS as IRQ_QUEUED_SLOTS;
/// The core's vector lock: matrix, vector records, the routes' writers.
pub use sluice_irq_core::locks::VECTOR as IRQ_VECTOR;

// --- PCI ---

/// A function's MSI/MSI-X irqs (`pci::Device::irqs`).
pub static PCI_DEVICE_IRQS: LockClass = LockClass::new("pci.device_irqs");
/// A function's BAR mappings (`pci::Device::mappings`).
pub static PCI_BARS: LockClass = LockClass::new("pci.bars");
/// Mapping an ECAM bus (`pci::config::MAPPING`).
pub static PCI_CONFIG_MAPPING: LockClass = LockClass::new("pci.config_mapping");
/// The legacy 0xCF8/0xCFC pair (`pci::config::LEGACY`).
pub static PCI_CONFIG_LEGACY: LockClass = LockClass::new("pci.config_legacy");
/// An MSI capability's mask-bit shadow (`sluice_pci::MsiCapStorage`).
pub use sluice_pci::msi_storage::MASK_SHADOW_CLASS as MSI_MASK;

// --- Interrupt remapping ---

/// A remapping unit's queue and table stores (`iommu::unit::Unit::state`).
pub static IOMMU_UNIT: LockClass = LockClass::new("iommu.unit");
/// A remapping unit's fault log (`irq::domains::dmar_msi::UnitFaults`).
pub static DMAR_FAULT_LOG: LockClass = LockClass::new("iommu.fault_log");
/// An INTEL-IR domain's entry allocation (`sluice_vtd::domain::IrDomain`).
pub use sluice_vtd::domain::ENTRIES_CLASS as VTD_IR_ENTRIES;

// --- Memory ---

/// The kernel's page tables (`memory::PAGING`).
pub static MEMORY_PAGING: LockClass = LockClass::new("memory.paging");
/// The physical frame allocator (`memory::frames::FRAMES`).
pub static MEMORY_FRAMES: LockClass = LockClass::new("memory.frames");
/// The kernel heap (`memory::heap::HEAP`).
pub static MEMORY_HEAP: LockClass = LockClass::new("memory.heap");

// --- Console ---

/// COM1's transmitter (`console::serial::CONSOLE`).
pub static CONSOLE: LockClass = LockClass::new("console.com1");
/// COM1's receive ring, filled by its interrupt (`console::serial::RX`).
pub static CONSOLE_RX: LockClass = LockClass::new("console.com1_rx");
/// The screen's text model (`console::screen::TEXT`).
pub static SCREEN_TEXT: LockClass = LockClass::new("console.screen_text");
/// The screen's painter (`console::screen::RENDER`, try-locked by printers).
pub static SCREEN_RENDER: LockClass = LockClass::new("console.screen_render");
/// COM1's escape-sequence decoder (`console::input::ANSI`).
pub static ANSI: LockClass = LockClass::new("console.ansi");
/// The keyboard's scancode decoder (`console::keyboard::DECODER`).
pub static KBD_DECODER: LockClass = LockClass::new("console.kbd_decoder");
/// Keys waiting for the shell (`console::keyboard::KEYS`).
pub static KBD_KEYS: LockClass = LockClass::new("console.kbd_keys");

// --- Lab devices ---

/// The queued edu's DMA engine and buffer (`lab::devices::queued_edu::QueuedEdu`).
pub static QUEUED_EDU: LockClass = LockClass::new("dev.queued_edu");

// --- Boot, lab and test state ---

/// Boot stage names (`time::boot_stages::NAMES`).
pub static BOOT_STAGES: LockClass = LockClass::new("time.boot_stages");
/// The boot script (`lab::shell::script::SCRIPT`).
pub static SHELL_SCRIPT: LockClass = LockClass::new("shell.script");
/// The last in-kernel test run's counts (`lab::ktest::LAST`).
pub static KTEST_SUMMARY: LockClass = LockClass::new("ktest.summary");
/// msi-storm's first refused move (`lab::msi_storm::REFUSAL`).
pub static STORM_REFUSAL: LockClass = LockClass::new("lab.storm_refusal");
/// msi-storm's device and length (`lab::msi_storm::RUN`).
pub static STORM_RUN: LockClass = LockClass::new("lab.storm_run");
/// msi-storm's result (`lab::msi_storm::RESULT`).
pub static STORM_RESULT: LockClass = LockClass::new("lab.storm_result");
/// `bench console`'s samples (`lab::bench::scroll::SAMPLES`).
pub static BENCH_SCROLL_SAMPLES: LockClass = LockClass::new("bench.scroll_samples");
/// `bench console`'s dispatch result (`lab::bench::scroll::DISPATCH`).
pub static BENCH_SCROLL_DISPATCH: LockClass = LockClass::new("bench.scroll_dispatch");
/// `bench dispatch`'s samples (`lab::bench::dispatch::SAMPLES`).
pub static BENCH_DISPATCH_SAMPLES: LockClass = LockClass::new("bench.dispatch_samples");

/// The kernel's lock order (see the module documentation).
pub static ORDER: LockOrder = LockOrder {
    chains: &[
        &[&STOP_SERIAL, &STOP_MACHINE, &IRQ_DOMAINS],
        &[&IRQ_AFFINITY, &IRQ_REMOTE_CALL, &IRQ_DOMAINS],
        &[&IRQ_DOMAINS, &IRQ_DESC, &IRQ_VECTOR],
        &[&PCI_DEVICE_IRQS, &IRQ_DOMAINS],
        &[
            &IRQ_AFFINITY,
            &PCI_DEVICE_IRQS,
            &PCI_BARS,
            &MEMORY_PAGING,
            &MEMORY_FRAMES,
        ],
        &[&AP_START, &MEMORY_PAGING],
        &[&PCI_CONFIG_MAPPING, &MEMORY_PAGING],
        &[&MSI_MASK, &PCI_CONFIG_LEGACY],
        &[&DMAR_FAULT_LOG],
        &[&KBD_DECODER, &KBD_KEYS],
        &[&ANSI, &SCREEN_RENDER, &SCREEN_TEXT],
        &[&CONSOLE, &CONSOLE_RX],
    ],
    leaves: &[
        // The interrupt core's.
        &IRQ_HOTPLUG,
        &IRQ_DEFERRED,
        &IRQ_IOAPIC_LINES,
        &IRQ_MSI_INDEX,
        &IRQ_QUEUED_SLOTS,
        // Chips and devices.
        &TAKE_DOWN,
        &IRQ_REMOTE_PLAN,
        &IRQ_HANDLERS,
        &IOAPIC,
        &MSI_MASK,
        &PCI_CONFIG_LEGACY,
        &VTD_IR_ENTRIES,
        &IOMMU_UNIT,
        &QUEUED_EDU,
        // The console.
        &KBD_KEYS,
        &SCREEN_RENDER,
        &SCREEN_TEXT,
        &CONSOLE,
        &CONSOLE_RX,
        // Memory.
        &MEMORY_HEAP,
        // Boot, lab and test state.
        &BOOT_STAGES,
        &SHELL_SCRIPT,
        &KTEST_SUMMARY,
        &STORM_REFUSAL,
        &STORM_RUN,
        &STORM_RESULT,
        &BENCH_SCROLL_SAMPLES,
        &BENCH_SCROLL_DISPATCH,
        &BENCH_DISPATCH_SAMPLES,
    ],
};
