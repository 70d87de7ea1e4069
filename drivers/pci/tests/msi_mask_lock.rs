//! The MSI storage's mask shadow under the lock validator (sluice-sync's host platform:
//! this thread is a CPU). The interrupt core masks and unmasks a member from interrupt
//! handlers (a flow masking an irq that fires while disabled, a plan run by IPI,
//! migration inside stop_machine), and the kernel's PCI code masks freed members and
//! the whole function from task context with interrupts on. So the shadow's lock must
//! be interrupt-safe: held with interrupts on, an interrupt on the same CPU that masks
//! another member would spin on it forever.

mod common;

use common::model;
use sluice_irq_core::msi::MsiStorage;
use sluice_sync::host;

#[test]
fn mask_shadow_is_taken_in_an_interrupt_and_from_task_context_without_a_report() {
    let (model, s) = model::msi(2, true, true, 0);
    host::take_reports();
    // The core, in a flow handler: mask the member that fired.
    host::hardirq(|| s.mask(0)).unwrap();
    // The kernel freeing member 1, in task context with interrupts on; then all.
    assert!(sluice_sync::irqs_enabled());
    s.mask(1).unwrap();
    s.mask_all();
    // The core again, unmasking from a handler.
    host::hardirq(|| s.unmask(0)).unwrap();
    let reports: Vec<String> = host::take_reports().iter().map(|r| r.to_string()).collect();
    assert!(
        reports.is_empty(),
        "the validator reported: {}",
        reports.join("; ")
    );
    assert_eq!(
        model.lock().msi_mask_bits(),
        0b1110,
        "the shadow kept every bit"
    );
}
