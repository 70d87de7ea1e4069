//! What a remapped machine does that QEMU does not, shown directly: a message in flight
//! across an IRTE update is served the unit's stale cached entry until the update's
//! invalidation (and the core copes), a binding that never invalidates keeps serving it
//! for ever (and interrupts are lost), and a device left outside the remapping domain is
//! blocked (compatibility format, CFI clear).

use std::sync::Arc;

use sluice_irq_core::domain::DomainId;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc};
use sluice_sim::{Boot, Remapping, SimApic, Timing, drain, function, pci, verdict};

/// A remapped machine (x2APIC, the binding as `invalidates` says), device 0 under
/// `INTEL-IR-0` on CPU 0 at 0x20.
fn remapped(invalidates: bool) -> (Boot, u32) {
    let boot = Boot::with(
        2,
        Timing::InFlight,
        Remapping::On {
            eim: true,
            invalidates,
        },
    );
    let dom = Arc::new(MsiDomain::new(
        "PCI-MSI",
        boot.msi_function(1, false, function(3)),
    ));
    let d = boot.add("DEV-0", dom.clone());
    let req = IrqAlloc::edge(CpuMask::single(0));
    let virq = boot.start_msi(&*dom, d, &pci(3, 0), &req, |_| 0);
    boot.m.lock().unwrap().watched_routes.push((0, virq));
    (boot, virq)
}

/// Moves the irq to CPU 1 with a message of device 0 in flight that arrives between the
/// IRTE store and its invalidation; returns where it arrived and how many messages the
/// unit served from a stale entry.
fn move_with_a_message_in_the_window(boot: &Boot, virq: u32) -> (Vec<(usize, u8)>, u32) {
    let (m, core) = (&boot.m, &boot.core);
    // A first interrupt: the unit caches the entry as it remaps it.
    m.lock().unwrap().fire(0);
    drain(core, m);
    // A second one, still on its way when the move stores the new entry.
    m.lock().unwrap().fire(0);
    m.lock().unwrap().bus.land_at_store = true;
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .expect("a plan");
    core.run_plan(virq, &plan, &mut SimApic::on(m, 0)).unwrap();
    let mm = m.lock().unwrap();
    let pending = (0..2)
        .flat_map(|c| mm.cpus[c].irr.keys().map(move |&v| (c, v)))
        .collect();
    (pending, mm.bus.served_stale)
}

#[test]
fn a_message_in_the_stale_window_meets_the_old_entry_and_is_handled_there() {
    let (boot, virq) = remapped(true);
    let (pending, stale) = move_with_a_message_in_the_window(&boot, virq);
    // Served the cached entry: CPU 0, the old vector (still allocated until the update
    // returned; the cleanup IPI is on its way to CPU 0 too).
    assert_eq!(stale, 1);
    assert!(pending.contains(&(0, 0x20)), "{pending:?}");
    // After the invalidation, the device's next interrupt goes to the new entry.
    boot.m.lock().unwrap().fire(0);
    boot.m.lock().unwrap().settle();
    assert!(boot.m.lock().unwrap().cpus[1].irr.contains_key(&0x20));
    drain(&boot.core, &boot.m);
    let mm = boot.m.lock().unwrap();
    assert_eq!(verdict(&mm, &boot.core), Vec::<String>::new());
    assert_eq!(mm.handled, [1, 1, 1]);
}

#[test]
fn without_the_invalidation_the_old_entry_is_served_for_ever() {
    let (boot, virq) = remapped(false);
    let (_, stale) = move_with_a_message_in_the_window(&boot, virq);
    assert_eq!(stale, 1);
    drain(&boot.core, &boot.m);
    // The cleanup found the stale message pending on the old vector and waited; the
    // timer's retry frees it.
    boot.core.vector_cleanup(&mut SimApic::on(&boot.m, 0));
    assert_eq!(boot.core.vector_irq(virq).unwrap().prev, None);
    // The move completed and its old vector is freed; the unit still serves the cached
    // entry: the next interrupt reaches CPU 0's freed vector.
    boot.m.lock().unwrap().fire(0);
    drain(&boot.core, &boot.m);
    let mm = boot.m.lock().unwrap();
    let bad = verdict(&mm, &boot.core);
    assert!(
        bad.iter()
            .any(|f| f.contains("token 2") && f.contains("no handler")),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|f| f.contains("sends to Ok((0, 32))")),
        "{bad:?}"
    );
}

#[test]
fn a_device_outside_the_remapping_domain_is_blocked() {
    let boot = Boot::with(
        1,
        Timing::InFlight,
        Remapping::On {
            eim: false,
            invalidates: true,
        },
    );
    // Under the vector domain: it is given a compatibility-format message, which a unit
    // with CFI clear blocks (fault 0x25). QEMU would deliver it.
    let dom = Arc::new(MsiDomain::new(
        "PCI-MSI",
        boot.msi_function(1, false, function(3)),
    ));
    let d = boot
        .core
        .add_domain("OUTSIDE", DomainId::VECTOR, dom.clone())
        .unwrap();
    let req = IrqAlloc::edge(CpuMask::single(0));
    boot.start_msi(&*dom, d, &pci(3, 0), &req, |_| 0);
    boot.m.lock().unwrap().fire(0);
    drain(&boot.core, &boot.m);
    let mm = boot.m.lock().unwrap();
    assert_eq!(
        mm.failures,
        ["token Some(0): remapping fault 0x25".to_string()]
    );
    let unit = boot.remap.as_ref().unwrap().unit.clone();
    assert_eq!(unit.with(|u| u.frcd[0].1 >> 32 & 0xff), 0x25);
}
