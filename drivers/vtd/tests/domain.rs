//! The `INTEL-IR` domain driven through the interrupt core, over the model unit: the
//! kernel's tree (vector domain → INTEL-IR → a device's MSI or I/O APIC domain), devices
//! whose messages go through the model's remapping lookup and its interrupt entry cache,
//! and the core's own flow delivering them to handlers. What a device's interrupt
//! reaches is checked, not only what the table holds.

// Interrupt entry runs as the kernel's dispatch does: in hard-interrupt context.
use sluice_sim::vtd as model;
use sluice_sync::host::hardirq;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use model::Unit;
use model::domain::{ModelPlatform, ModelUnit, StoreOnly};
use sluice_irq_core::desc::{FlowKind, IrqReturn};
use sluice_irq_core::domain::{Domain, DomainId};
use sluice_irq_core::hw::{LocalApic, Target};
use sluice_irq_core::ioapic::{IoApicDomain, Rte, RteStorage};
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage, Trigger};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::vector::VECTOR_CLEANUP_VECTOR;
use sluice_irq_core::{
    CpuId, CpuMask, DmaAlias, IrqAlloc, IrqCore, IrqError, IrqSource, PciFunction, Polarity,
    Vector, Virq,
};
use sluice_vtd::descriptor::{Decoded, IecScope};
use sluice_vtd::domain::source::entry_source;
use sluice_vtd::domain::{IrDomain, RemappingUnit};
use sluice_vtd::{Irte, RemappableMsi, SourceValidation, TriggerMode};

// ----- the machine around the domain --------------------------------------------------

/// A CPU's local APIC as the core's flow needs it: nothing pending in the IRR; the
/// cleanup IPIs it sends are kept for the test to deliver.
struct Apic {
    cpu: CpuId,
    cleanups: Vec<CpuId>,
}

impl Apic {
    fn on(cpu: CpuId) -> Apic {
        Apic {
            cpu,
            cleanups: Vec::new(),
        }
    }
}

impl LocalApic for Apic {
    fn current_cpu(&self) -> CpuId {
        self.cpu
    }
    fn eoi(&mut self) {}
    fn irr_pending(&self, _v: Vector) -> bool {
        false
    }
    fn send_ipi(&mut self, cpu: CpuId, v: Vector) {
        if v == VECTOR_CLEANUP_VECTOR {
            self.cleanups.push(cpu);
        }
    }
    fn now_ns(&self) -> u64 {
        0
    }
}

/// A function's MSI or MSI-X storage: the words the device holds. Multi-message MSI
/// holds one message for every member.
struct MsiWords {
    caps: MsiCaps,
    words: Mutex<BTreeMap<u32, MsiMsg>>,
}

#[derive(Clone)]
struct Storage(Arc<MsiWords>);

impl Storage {
    fn msix(entries: u32) -> Storage {
        Storage(Arc::new(MsiWords {
            caps: MsiCaps {
                maskable: true,
                nvec: entries,
                multi_vector: false,
                dynamic: true,
                addr64: true,
            },
            words: Mutex::default(),
        }))
    }

    fn multi_msi(vectors: u32) -> Storage {
        Storage(Arc::new(MsiWords {
            caps: MsiCaps {
                maskable: false,
                nvec: vectors,
                multi_vector: true,
                dynamic: false,
                addr64: true,
            },
            words: Mutex::default(),
        }))
    }

    fn slot(&self, index: u32) -> u32 {
        if self.0.caps.multi_vector { 0 } else { index }
    }

    fn edit(&self, index: u32, f: impl FnOnce(&mut MsiMsg)) {
        let mut w = self.0.words.lock().unwrap();
        f(w.entry(self.slot(index)).or_default());
    }

    /// What message `index` sends now: multi-message member `index` ORs its number
    /// into the data word.
    fn message(&self, index: u32) -> MsiMsg {
        let m = self.read(index);
        if self.0.caps.multi_vector {
            MsiMsg {
                data: m.data | index,
                ..m
            }
        } else {
            m
        }
    }
}

impl MsiStorage for Storage {
    fn caps(&self) -> MsiCaps {
        self.0.caps
    }
    fn write_addr_lo(&self, index: u32, value: u32) {
        self.edit(index, |m| m.addr_lo = value);
    }
    fn write_addr_hi(&self, index: u32, value: u32) {
        self.edit(index, |m| m.addr_hi = value);
    }
    fn write_data(&self, index: u32, value: u32) {
        self.edit(index, |m| m.data = value);
    }
    fn mask(&self, _index: u32) -> sluice_irq_core::Result<()> {
        Ok(())
    }
    fn unmask(&self, _index: u32) -> sluice_irq_core::Result<()> {
        Ok(())
    }
    fn read(&self, index: u32) -> MsiMsg {
        let w = self.0.words.lock().unwrap();
        w.get(&self.slot(index)).copied().unwrap_or_default()
    }
}

/// An I/O APIC's redirection table.
#[derive(Clone, Default)]
struct Rtes(Arc<Mutex<BTreeMap<u32, Rte>>>);

impl RteStorage for Rtes {
    fn pins(&self) -> u32 {
        24
    }
    fn read(&self, pin: u32) -> Rte {
        self.0
            .lock()
            .unwrap()
            .get(&pin)
            .copied()
            .unwrap_or_default()
    }
    fn write_low(&self, pin: u32, value: u32) {
        self.0.lock().unwrap().entry(pin).or_default().low = value;
    }
    fn write_high(&self, pin: u32, value: u32) {
        self.0.lock().unwrap().entry(pin).or_default().high = value;
    }
}

type Domain0<U> = IrDomain<U, Arc<ModelPlatform>>;

/// The core with `INTEL-IR-0` under the vector domain, over a model unit.
struct World<U: RemappingUnit + 'static> {
    core: IrqCore,
    model: Arc<ModelUnit>,
    platform: Arc<ModelPlatform>,
    ir: Arc<Domain0<U>>,
    ir_id: DomainId,
    apic_ids: Vec<u32>,
}

/// Device 00:03.0 and its requester id.
const DEV: PciFunction = PciFunction {
    segment: 0,
    bus: 0,
    device: 3,
    function: 0,
    requester_id: 0x0018,
    alias: DmaAlias::Own,
};
/// The I/O APIC's id and the source-id of its DMAR scope (QEMU's).
const IOAPIC_ID: u8 = 0;
const IOAPIC_SID: u16 = 0xf0f8;

fn platform() -> ModelPlatform {
    ModelPlatform {
        io_apics: BTreeMap::from([(IOAPIC_ID, IOAPIC_SID)]),
        hpets: BTreeMap::from([(0, 0x00f8)]),
        ..ModelPlatform::default()
    }
}

/// CPU `i` has APIC id `apic_ids[i]`; the domain binds the model as `bind` says.
fn world_with<U: RemappingUnit + 'static>(
    model: ModelUnit,
    apic_ids: &[u32],
    bind: impl FnOnce(Arc<ModelUnit>) -> U,
) -> World<U> {
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = IrqCore::new(apic_ids.len()).unwrap();
    for (cpu, &id) in apic_ids.iter().enumerate() {
        core.set_apic_id(cpu as CpuId, id).unwrap();
        core.online_cpu(cpu as CpuId).unwrap();
    }
    let model = Arc::new(model);
    let platform = Arc::new(platform());
    let ir = Arc::new(IrDomain::new(0, bind(model.clone()), platform.clone()));
    let ir_id = core
        .add_domain("INTEL-IR-0", DomainId::VECTOR, ir.clone())
        .unwrap();
    World {
        core,
        model,
        platform,
        ir,
        ir_id,
        apic_ids: apic_ids.to_vec(),
    }
}

fn world(model: ModelUnit, apic_ids: &[u32]) -> World<Arc<ModelUnit>> {
    world_with(model, apic_ids, |m| m)
}

fn pci(function: PciFunction, index: u32) -> IrqSource {
    IrqSource::Pci { function, index }
}

impl<U: RemappingUnit + 'static> World<U> {
    fn msi_domain(&self, name: &str, storage: &Storage) -> DomainId {
        let dom = MsiDomain::new("IR-PCI-MSI", storage.clone());
        self.core
            .add_domain(name, self.ir_id, Arc::new(dom))
            .unwrap()
    }

    /// An irq of `domain` for `source` on `cpu`, as the kernel requests MSIs
    /// (reservation mode: a vector once started), started with its own number as token.
    fn request(&self, domain: DomainId, source: &IrqSource, cpu: CpuId) -> Virq {
        let req = IrqAlloc {
            reserve: true,
            ..IrqAlloc::edge(CpuMask::single(cpu))
        };
        let virq = self.core.alloc_irq(domain, source, &req).unwrap();
        self.core.request_irq(virq, u64::from(virq), "dev").unwrap();
        virq
    }

    fn stop(&self, virq: Virq) {
        self.core.release_irq(virq).unwrap();
        self.core.free_irq(virq, 1).unwrap();
    }

    fn target(&self, virq: Virq) -> Target {
        self.core.desc(virq).unwrap().target
    }

    /// The irq's entry in the table (its hwirq at the INTEL-IR level).
    fn entry(&self, virq: Virq) -> u16 {
        let d = self.core.desc(virq).unwrap();
        let level = d.levels.iter().find(|l| l.domain == self.ir_id).unwrap();
        u16::try_from(level.hwirq).unwrap()
    }

    /// A message write from `requester` through the unit to the CPU it names, and the
    /// core's flow there: the irq whose handler ran, or why nothing did.
    fn fire(&self, msg: MsiMsg, requester: u16) -> Result<(CpuId, u8, Virq), String> {
        let d = self
            .model
            .deliver(msg, requester)
            .map_err(|r| format!("fault {r:#x}"))?;
        let cpu = self
            .apic_ids
            .iter()
            .position(|&id| id == d.destination)
            .ok_or_else(|| format!("no CPU has APIC id {}", d.destination))?
            as CpuId;
        let mut ran = None;
        let mut apic = Apic::on(cpu);
        let dispatch = hardirq(|| {
            self.core
                .handle_vector(Vector(d.vector), &mut apic, &mut |virq, token| {
                    assert_eq!(token, u64::from(virq));
                    ran = Some(virq);
                    IrqReturn::Handled
                })
        });
        // The first interrupt at a new target completes its move: the old CPU frees the
        // old vector when the IPI arrives.
        for old in apic.cleanups {
            hardirq(|| self.core.vector_cleanup(&mut Apic::on(old)));
        }
        match ran {
            Some(v) => Ok((cpu, d.vector, v)),
            None => Err(format!("vector {:#x} on CPU {cpu}: {dispatch:?}", d.vector)),
        }
    }

    /// Moves `virq` to `cpu` by the plan its domains return, run at once.
    fn move_to(&self, virq: Virq, cpu: CpuId) -> Result<(), String> {
        let plan = self
            .core
            .set_affinity(virq, &CpuMask::single(cpu), false)
            .map_err(|e| format!("set_affinity: {e:?}"))?
            .ok_or("no plan")?;
        assert_eq!(plan.steps, [sluice_irq_core::affinity::Step::UpdateRoute]);
        assert_eq!(plan.run_on, None, "a remapped move runs anywhere");
        let mut apic = Apic::on(0);
        self.core
            .run_plan(virq, &plan, &mut apic)
            .map_err(|e| format!("run_plan: {e:?}"))?;
        // The entry is updated and the unit's copy invalidated: the move is complete,
        // and the old CPU frees the old vector when the cleanup IPI arrives.
        for old in apic.cleanups {
            hardirq(|| self.core.vector_cleanup(&mut Apic::on(old)));
        }
        Ok(())
    }
}

/// A preset's name and constructor.
type Preset = (&'static str, fn() -> Unit);

fn presets() -> [Preset; 2] {
    [("QEMU", Unit::qemu), ("real unit", Unit::hardware)]
}

// ----- activation ---------------------------------------------------------------------

/// Allocation takes an entry and writes nothing; starting the irq writes it present for
/// the irq's target, validating the function's requester id, before the device is given
/// the remappable message naming it.
#[test]
fn a_started_irq_has_a_present_entry_for_its_target() {
    for (name, preset) in presets() {
        for eim in [false, true] {
            let w = world(ModelUnit::enabled(preset(), 256, eim), &[0, 1, 2, 3]);
            let msix = Storage::msix(8);
            let dom = w.msi_domain("IR-PCI-MSI-00:03.0", &msix);
            let req = IrqAlloc {
                reserve: true,
                ..IrqAlloc::edge(CpuMask::single(2))
            };
            let virq = w.core.alloc_irq(dom, &pci(DEV, 5), &req).unwrap();
            let index = w.entry(virq);
            let info = w.ir.entry_info(index).unwrap();
            assert_eq!(info.virq, virq);
            assert_eq!(info.source, SourceValidation::requester(0x0018));
            assert_eq!((info.pin, info.block), (None, None));
            assert_eq!(w.ir.used(), 1);
            assert!(
                !w.model.irte(index).present(),
                "{name}: written at allocation"
            );

            w.core.request_irq(virq, u64::from(virq), "dev").unwrap();
            let t = w.target(virq);
            assert_eq!(t.cpu, 2);
            assert!(w.model.irte(index).present());
            let e = w.model.irte(index).decode(eim).unwrap();
            assert_eq!(e.vector, t.vector.0, "{name} eim {eim}");
            assert_eq!(e.destination, t.apic_id);
            assert_eq!(e.trigger, TriggerMode::Edge);
            assert_eq!(e.source, SourceValidation::requester(0x0018));
            let msg = RemappableMsi::shv(index).compose();
            assert_eq!(
                msix.read(5),
                MsiMsg {
                    addr_lo: msg.address_lo,
                    addr_hi: msg.address_hi,
                    data: msg.data
                }
            );
            assert_eq!(w.fire(msix.message(5), 0x0018), Ok((2, t.vector.0, virq)));
            // Another function sending the same message is refused by the entry.
            assert_eq!(
                w.fire(msix.message(5), 0x0020),
                Err("fault 0x26".to_string())
            );
            assert!(w.platform.failures().is_empty());
        }
    }
}

/// The entry holds destinations no xAPIC message can: with EIM an APIC id above 255 is
/// reached; without, activation is refused and the entry stays not present.
#[test]
fn an_apic_id_above_255_needs_eim() {
    let w = world(ModelUnit::enabled(Unit::hardware(), 256, true), &[0, 300]);
    let msix = Storage::msix(4);
    let dom = w.msi_domain("dev", &msix);
    let virq = w.request(dom, &pci(DEV, 0), 1);
    let (cpu, _, v) = w.fire(msix.message(0), 0x0018).unwrap();
    assert_eq!((cpu, v), (1, virq));

    let w = world(ModelUnit::enabled(Unit::hardware(), 256, false), &[0, 300]);
    let dom = w.msi_domain("dev", &msix);
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(CpuMask::single(1))
    };
    let virq = w.core.alloc_irq(dom, &pci(DEV, 0), &req).unwrap();
    assert_eq!(
        w.core.request_irq(virq, 0, "dev"),
        Err(IrqError::InvalidArgument)
    );
    assert!(!w.model.irte(w.entry(virq)).present());
}

/// An I/O APIC input under remapping: the entry is level triggered and validates the
/// I/O APIC's DMAR source-id; the RTE is in remappable format, naming the entry as
/// handle with the pin in its vector field.
#[test]
fn an_io_apic_line_is_remapped_with_its_scope_source_id() {
    let w = world(ModelUnit::enabled(Unit::hardware(), 256, true), &[0, 1]);
    let rtes = Rtes::default();
    let io = w
        .core
        .add_domain(
            "IO-APIC-0",
            w.ir_id,
            Arc::new(IoApicDomain::remapped(IOAPIC_ID, rtes.clone())),
        )
        .unwrap();
    let source = IrqSource::IoApic {
        id: IOAPIC_ID,
        pin: 9,
        trigger: Trigger::Level,
        polarity: Polarity::ActiveLow,
    };
    let req = IrqAlloc {
        flow: FlowKind::FastEoi,
        ..IrqAlloc::edge(CpuMask::single(1))
    };
    let virq = w.core.alloc_irq(io, &source, &req).unwrap();
    w.core.request_irq(virq, u64::from(virq), "sci").unwrap();
    let index = w.entry(virq);
    let info = w.ir.entry_info(index).unwrap();
    assert_eq!(info.pin, Some(9));
    assert_eq!(info.source, SourceValidation::io_apic(IOAPIC_SID));
    let e = w.model.irte(index).decode(true).unwrap();
    assert_eq!(e.trigger, TriggerMode::Level);
    assert_eq!(e.vector, w.target(virq).vector.0);

    let rte = rtes.read(9);
    assert!(rte.remappable() && rte.level() && rte.active_low());
    assert_eq!((rte.handle(), rte.vector()), (index, 9));
    // What the I/O APIC sends for that entry: the handle, no SHV, the vector field as data.
    let mut m = RemappableMsi {
        handle: rte.handle(),
        subhandle: None,
    }
    .compose();
    m.data = u32::from(rte.vector());
    let msg = MsiMsg {
        addr_lo: m.address_lo,
        addr_hi: m.address_hi,
        data: m.data,
    };
    let (cpu, _, v) = w.fire(msg, IOAPIC_SID).unwrap();
    assert_eq!((cpu, v), (1, virq));
    assert!(w.model.deliver(msg, IOAPIC_SID).unwrap().level);
    assert_eq!(w.fire(msg, 0x0018), Err("fault 0x26".to_string()));
}

/// Who may send through an entry, for each kind of source; sources the domain cannot
/// check are refused, never given an unchecked entry.
#[test]
fn every_source_kind_gets_its_check() {
    let mut p = platform();
    let behind = |bus: u8, dev: u8| PciFunction {
        segment: 0,
        bus,
        device: dev,
        function: 0,
        // The PCIe-to-PCI bridge's alias: its secondary bus 5, devfn 0.
        requester_id: 0x0500,
        alias: DmaAlias::PcieToPciBridge,
    };
    // 05:02.0 sits directly behind the bridge; 06:01.0 behind a conventional bridge at
    // 05:01.0, which substitutes its own id (0x0508) entering the PCIe-to-PCI bridge.
    p.entering.insert((0, 6, 1, 0), 0x0508);
    let check = |s: &IrqSource| entry_source(&p, s);
    assert_eq!(
        check(&pci(DEV, 0)),
        Ok((SourceValidation::requester(0x0018), None))
    );
    let conventional = PciFunction {
        requester_id: 0x0808,
        alias: DmaAlias::PciBridge,
        ..PciFunction::new(0, 9, 2, 0)
    };
    assert_eq!(
        check(&pci(conventional, 0)),
        Ok((SourceValidation::requester(0x0808), None))
    );
    assert_eq!(
        check(&pci(behind(5, 2), 0)),
        Ok((SourceValidation::bus_range(5, 5).unwrap(), None))
    );
    assert_eq!(
        check(&pci(behind(6, 1), 0)),
        Ok((SourceValidation::bus_range(5, 5).unwrap(), None))
    );
    // Without the platform's answer, the function's own bus ends the range.
    p.entering.clear();
    let check = |s: &IrqSource| entry_source(&p, s);
    assert_eq!(
        check(&pci(behind(6, 1), 0)),
        Ok((SourceValidation::bus_range(5, 6).unwrap(), None))
    );
    let hpet = |block| IrqSource::Hpet {
        block,
        comparator: 2,
    };
    assert_eq!(check(&hpet(0)), Ok((SourceValidation::hpet(0x00f8), None)));
    assert_eq!(check(&hpet(1)), Err(IrqError::InvalidArgument));
    let io = |id| IrqSource::IoApic {
        id,
        pin: 3,
        trigger: Trigger::Edge,
        polarity: Polarity::ActiveHigh,
    };
    assert_eq!(
        check(&io(IOAPIC_ID)),
        Ok((SourceValidation::io_apic(IOAPIC_SID), Some(3)))
    );
    assert_eq!(check(&io(7)), Err(IrqError::InvalidArgument));
    assert_eq!(
        check(&IrqSource::VectorOnly),
        Err(IrqError::InvalidArgument)
    );
    assert_eq!(
        check(&IrqSource::Iommu { unit: 0 }),
        Err(IrqError::InvalidArgument)
    );
    // A bus range that would run backwards cannot be encoded.
    assert_eq!(check(&pci(behind(4, 1), 0)), Err(IrqError::InvalidArgument));

    // The domain refuses them the same way, and takes no entry.
    let w = world(ModelUnit::enabled(Unit::qemu(), 256, true), &[0]);
    assert_eq!(w.ir.alloc(40, 1, &io(7)), Err(IrqError::InvalidArgument));
    assert_eq!(
        w.ir.alloc(40, 1, &IrqSource::VectorOnly),
        Err(IrqError::InvalidArgument)
    );
    assert_eq!(w.ir.alloc(40, 2, &pci(DEV, 0)), Err(IrqError::Unsupported));
    assert_eq!(w.ir.used(), 0);
}

// ----- affinity -----------------------------------------------------------------------

/// An irq moved `moves` times round the CPUs, firing before and after each move: after
/// each, the device (whose message never changes) must reach the irq's new target.
fn move_round<U: RemappingUnit + 'static>(w: &World<U>, moves: u32) -> Result<(), String> {
    let msix = Storage::msix(4);
    let dom = w.msi_domain("dev", &msix);
    let virq = w.request(dom, &pci(DEV, 1), 0);
    let stored = msix.read(1);
    let cpus = w.apic_ids.len() as CpuId;
    for k in 0..moves {
        // The unit caches the entry on this use (a real unit does).
        let before = w.fire(msix.message(1), 0x0018)?;
        let old = w.target(virq);
        assert_eq!(before, (old.cpu, old.vector.0, virq));
        w.move_to(virq, (old.cpu + 1) % cpus)?;
        let new = w.target(virq);
        assert_ne!(new.cpu, old.cpu);
        assert_eq!(msix.read(1), stored, "the device's message changed");
        let after = w.fire(msix.message(1), 0x0018)?;
        if after != (new.cpu, new.vector.0, virq) {
            return Err(format!(
                "move {k}: after the move to CPU {} vector {:#x}, the interrupt went to CPU {} vector {:#x}",
                new.cpu, new.vector.0, after.0, after.1
            ));
        }
    }
    Ok(())
}

/// The move is the one `UpdateRoute` step; when it has run, the interrupt goes to the
/// new target, also on a unit that cached the old entry.
#[test]
fn after_a_move_the_unit_serves_the_new_entry() {
    for (name, preset) in presets() {
        let w = world(ModelUnit::enabled(preset(), 256, true), &[0, 1, 2, 3]);
        move_round(&w, 12).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.platform.failures().is_empty());
    }
}

/// The same moves through a binding that skips the invalidation: a real unit keeps
/// serving the cached entry, and the interrupt reaches the old CPU on the old vector —
/// which the completed move has already given back: lost, as a spurious interrupt.
/// QEMU, which has no entry cache, cannot tell.
#[test]
fn a_missing_invalidation_is_caught_on_a_unit_that_caches() {
    let w = world_with(
        ModelUnit::enabled(Unit::hardware(), 256, true),
        &[0, 1, 2, 3],
        StoreOnly,
    );
    // The cached entry still names CPU 0's old vector, which the completed move has
    // freed: the interrupt is lost there (or, had the vector been kept, handled at the
    // old target). Either way it never reaches CPU 1.
    let e = move_round(&w, 1).unwrap_err();
    assert!(
        (e.contains("after the move to CPU 1") && e.contains("went to CPU 0"))
            || e.contains("on CPU 0: Spurious"),
        "{e}"
    );
    let w = world_with(
        ModelUnit::enabled(Unit::qemu(), 256, true),
        &[0, 1, 2, 3],
        StoreOnly,
    );
    assert_eq!(move_round(&w, 4), Ok(()));
}

// ----- multi-message blocks -----------------------------------------------------------

/// A multi-message function behind remapping: an aligned block of entries, each member
/// an irq with its own vector and CPU, the device's one message naming the block's first
/// entry with SHV, member `j` arriving through entry `base + j`. Moving one member
/// rewrites only its entry. The last member's free forgets the block and invalidates
/// its whole range.
#[test]
fn a_multi_message_block_is_aligned_and_torn_down_with_its_last_member() {
    let w = world(
        ModelUnit::enabled(Unit::hardware(), 256, true),
        &[0, 1, 2, 3],
    );
    // Entry 0 taken first, so the block cannot start there by luck.
    let msix = Storage::msix(4);
    let other = w.msi_domain("other", &msix);
    let lone = w.request(other, &pci(DEV, 0), 0);
    assert_eq!(w.entry(lone), 0);

    let f = PciFunction::new(0, 0, 4, 0);
    let rid = f.own_id();
    let msi = Storage::multi_msi(4);
    let dom = w.msi_domain("IR-PCI-MSI-00:04.0", &msi);
    let base = w.ir.reserve_block(&f, 4).unwrap();
    assert_eq!(base, 4, "the lowest free run of 4 aligned to 4");
    assert_eq!(w.ir.reserve_block(&f, 4), Err(IrqError::Busy));
    let members: Vec<Virq> = (0..4u32)
        .map(|j| w.request(dom, &pci(f, j), j % 4))
        .collect();
    for (j, &v) in members.iter().enumerate() {
        let index = w.entry(v);
        assert_eq!(index, base + j as u16);
        assert_eq!(w.ir.entry_info(index).unwrap().block, Some((base, 4)));
    }
    // A fifth member has no entry in the block.
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(CpuMask::single(0))
    };
    let storage = Storage::msix(8);
    let spare = w.msi_domain("spare", &storage);
    assert_eq!(
        w.core.alloc_irq(spare, &pci(f, 4), &req),
        Err(IrqError::InvalidArgument)
    );
    let shared = RemappableMsi::shv(base).compose();
    assert_eq!(
        (msi.read(0).addr_lo, msi.read(0).data),
        (shared.address_lo, 0)
    );
    let fire_all = |w: &World<Arc<ModelUnit>>| {
        for (j, &v) in members.iter().enumerate() {
            let t = w.target(v);
            assert_eq!(
                w.fire(msi.message(j as u32), rid),
                Ok((t.cpu, t.vector.0, v)),
                "member {j}"
            );
        }
    };
    fire_all(&w);
    let before: Vec<Irte> = (0..4).map(|j| w.model.irte(base + j)).collect();
    w.move_to(members[2], 3).unwrap();
    for j in 0..4u16 {
        let now = w.model.irte(base + j);
        assert_eq!(now == before[j as usize], j != 2, "member {j}'s entry");
    }
    fire_all(&w);

    for &v in &members[..3] {
        w.stop(v);
    }
    assert_eq!(
        w.ir.reserve_block(&f, 4),
        Err(IrqError::Busy),
        "still reserved"
    );
    // Released, the last member's entry points at the shutdown vector; freed, it is
    // cleared and then the whole block's range invalidated.
    w.core.release_irq(members[3]).unwrap();
    let seen = w.model.with(|u| u.processed.len());
    w.core.free_irq(members[3], 1).unwrap();
    let ranged: Vec<(u16, u8)> = w.model.with(|u| {
        u.processed[seen..]
            .iter()
            .filter_map(|d| match d.decode() {
                Decoded::Iec(IecScope::Indexed { index, mask }) => Some((index, mask)),
                _ => None,
            })
            .collect()
    });
    assert_eq!(ranged, [(base + 3, 0), (base, 2)]);
    for j in 0..4 {
        assert!(!w.model.irte(base + j).present());
        assert!(w.model.with(|u| !u.iec.contains_key(&(base + j))));
        assert_eq!(w.ir.entry_info(base + j), None);
    }
    assert_eq!(w.ir.used(), 1);
    // Forgotten: the function may reserve again, and gets the same place.
    assert_eq!(w.ir.reserve_block(&f, 4), Ok(base));
    w.ir.abandon_block(&f);
    assert_eq!(w.ir.reserve_block(&f, 8), Ok(8));
}

#[test]
fn a_block_must_be_a_power_of_two_up_to_32() {
    let w = world(ModelUnit::enabled(Unit::qemu(), 256, true), &[0]);
    let f = PciFunction::new(0, 0, 4, 0);
    for count in [0, 3, 6, 64] {
        assert_eq!(
            w.ir.reserve_block(&f, count),
            Err(IrqError::InvalidArgument)
        );
    }
    assert_eq!(w.ir.reserve_block(&f, 32), Ok(0));
}

// ----- free and refusals --------------------------------------------------------------

/// A freed entry is written not present and its cached copy invalidated: the device's
/// old message now faults (not present) instead of reaching the vector the irq had.
#[test]
fn a_freed_entry_is_not_present_and_not_cached() {
    for (name, preset) in presets() {
        let w = world(ModelUnit::enabled(preset(), 256, true), &[0, 1]);
        let msix = Storage::msix(4);
        let dom = w.msi_domain("dev", &msix);
        let virq = w.request(dom, &pci(DEV, 2), 1);
        let index = w.entry(virq);
        let msg = msix.message(2);
        assert!(w.fire(msg, 0x0018).is_ok());
        w.stop(virq);
        assert_eq!(w.model.irte(index), Irte::NOT_PRESENT, "{name}");
        assert!(w.model.with(|u| !u.iec.contains_key(&index)), "{name}");
        assert_eq!(
            w.model.deliver(msg, 0x0018).map(|d| d.vector),
            Err(0x22),
            "{name}"
        );
        assert_eq!((w.ir.used(), w.ir.entry_info(index)), (0, None));
        // The entry is free again.
        let again = w.request(dom, &pci(DEV, 2), 0);
        assert_eq!(w.entry(again), index);
    }
}

/// Through a binding that skips the invalidation, the freed entry is still served from
/// the cache: the check above can fail.
#[test]
fn a_free_without_invalidation_is_caught() {
    let w = world_with(
        ModelUnit::enabled(Unit::hardware(), 256, true),
        &[0, 1],
        StoreOnly,
    );
    let msix = Storage::msix(4);
    let dom = w.msi_domain("dev", &msix);
    let virq = w.request(dom, &pci(DEV, 2), 1);
    let msg = msix.message(2);
    let vector = w.target(virq).vector.0;
    assert!(w.fire(msg, 0x0018).is_ok());
    w.stop(virq);
    assert_eq!(w.model.deliver(msg, 0x0018).map(|d| d.vector), Ok(vector));
}

/// A full table refuses the next irq with `NoSpace` and nothing changes: the other irqs
/// keep their entries and the core keeps no half-made irq. Freeing one makes room.
#[test]
fn a_full_table_refuses_with_no_space() {
    let w = world(
        ModelUnit::enabled(Unit::hardware(), 16, true),
        &[0, 1, 2, 3],
    );
    let msix = Storage::msix(32);
    let dom = w.msi_domain("dev", &msix);
    let irqs: Vec<Virq> = (0..16)
        .map(|i| w.request(dom, &pci(DEV, i), i % 4))
        .collect();
    assert_eq!(w.ir.size(), 16);
    let descs = w.core.descs().len();
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(CpuMask::single(0))
    };
    assert_eq!(
        w.core.alloc_irq(dom, &pci(DEV, 16), &req),
        Err(IrqError::NoSpace)
    );
    assert_eq!(
        w.ir.reserve_block(&PciFunction::new(0, 0, 4, 0), 2),
        Err(IrqError::NoSpace)
    );
    assert_eq!((w.core.descs().len(), w.ir.used()), (descs, 16));
    for (i, &v) in irqs.iter().enumerate() {
        let t = w.target(v);
        assert_eq!(
            w.fire(msix.message(i as u32), 0x0018),
            Ok((t.cpu, t.vector.0, v))
        );
    }
    let freed = w.entry(irqs[9]);
    w.stop(irqs[9]);
    let v = w.request(dom, &pci(DEV, 16), 0);
    assert_eq!(w.entry(v), freed);
}

/// A unit that never confirms an invalidation: starting the irq fails with
/// `InvalidState` and the unit's error is reported, as is the one freeing it meets.
#[test]
fn unit_failures_are_returned_and_reported() {
    let w = world(ModelUnit::enabled(Unit::hardware(), 256, true), &[0, 1]);
    w.model.with(|u| u.drop_status_writes = true);
    let msix = Storage::msix(4);
    let dom = w.msi_domain("dev", &msix);
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(CpuMask::single(1))
    };
    let virq = w.core.alloc_irq(dom, &pci(DEV, 0), &req).unwrap();
    let index = w.entry(virq);
    assert_eq!(
        w.core.request_irq(virq, 0, "dev"),
        Err(IrqError::InvalidState)
    );
    w.core.free_irq(virq, 1).unwrap();
    let failures = w.platform.failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!("INTEL-IR-0: IRTE {index}: ")),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with(&format!("INTEL-IR-0: clearing IRTE {index}: ")),
        "{failures:?}"
    );
    // The entry is given back all the same.
    assert_eq!(w.ir.used(), 0);
}

/// The domain's size and name as the core lists them.
#[test]
fn the_domain_is_listed_with_its_table() {
    let w = world(ModelUnit::enabled(Unit::qemu(), 1024, true), &[0]);
    assert_eq!(w.ir.size(), 1024);
    assert_eq!(w.ir.domain_name(), "INTEL-IR-0");
    let info = w
        .core
        .domain_tree()
        .into_iter()
        .find(|d| d.name == "INTEL-IR-0")
        .unwrap();
    assert_eq!(info.size, 1024);
}

/// The entry allocation lock under the lock validator (sluice-sync's host platform: this
/// thread is a CPU). Activation and affinity changes read the entry's record under it
/// from interrupt handlers (a plan run by IPI, migration inside stop_machine); the
/// kernel's multi-message set-up and the shell take it from task context with
/// interrupts on. It must be interrupt-safe: no report.
#[test]
fn the_entry_lock_is_taken_in_an_interrupt_and_from_task_context_without_a_report() {
    let w = world(ModelUnit::enabled(Unit::qemu(), 256, true), &[0, 1]);
    let msix = Storage::msix(4);
    let dom = w.msi_domain("IR-PCI-MSIX-00:03.0", &msix);
    let virq = w.request(dom, &pci(DEV, 0), 0);
    sluice_sync::host::take_reports();
    // The plan, run where the IPI carrying it lands: in an interrupt handler.
    hardirq(|| w.move_to(virq, 1)).unwrap();
    // `irq N` and `iommu` from the shell, and a block reserved for multi-message MSI:
    // the domain itself, outside the core, in task context with interrupts on.
    let entry = w.entry(virq);
    sluice_sync::host::set_irqs_enabled(true);
    assert!(sluice_sync::irqs_enabled());
    assert_eq!(w.ir.entry_info(entry).map(|i| i.virq), Some(virq));
    assert_eq!(w.ir.used(), 1);
    let other = PciFunction { device: 4, ..DEV };
    w.ir.reserve_block(&other, 4).unwrap();
    w.ir.abandon_block(&other);
    let reports: Vec<String> = sluice_sync::host::take_reports()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        reports.is_empty(),
        "the validator reported: {}",
        reports.join("; ")
    );
    // Back to calling the core, as the kernel does, with interrupts off.
    sluice_sync::host::set_irqs_enabled(false);
    assert_eq!(
        w.fire(msix.message(0), 0x0018).map(|(cpu, _, v)| (cpu, v)),
        Ok((1, virq))
    );
}
