//! The FSB route storage against a model of the HPET's registers with real hardware's
//! semantics: one 32-bit write per method at the right offset, the interrupt core's
//! plan over it, and no comparator match lost in a masked window.

use std::sync::{Arc, Mutex};

use sluice_hpet::fsb::{FsbStorage, Retrigger};
use sluice_hpet::regs::{MAIN_COUNTER, TimerConf};
use sluice_irq_core::affinity::{Step, Word};
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::msi::{CompatMsi, MsiMsg, MsiStorage, decode};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqSource, Vector};
use sluice_regs::{RegisterBlock32, RegisterBlock64};

/// One bus access the storage made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read32(usize),
    Read64(usize),
    Write32(usize, u32),
}

const COMPARATORS: usize = 3;

/// A model HPET block with real hardware's semantics: the main counter advances one
/// tick after every register access; a one-shot 64-bit comparator matches when the
/// counter reaches its value, and then sends the message its FSB route holds *at that
/// moment* if its interrupt is enabled — or nothing, and forgets the match, if not.
#[derive(Default)]
struct Model {
    now: u64,
    conf: [u32; COMPARATORS],
    cmp: [u64; COMPARATORS],
    data: [u32; COMPARATORS],
    addr: [u32; COMPARATORS],
    log: Vec<Access>,
    /// Messages that reached the APIC: (comparator, message, sent by the hardware).
    sent: Vec<(u32, MsiMsg, bool)>,
}

impl Model {
    fn tick(&mut self) {
        self.now += 1;
        for n in 0..COMPARATORS {
            if self.cmp[n] == self.now
                && self.conf[n] & TimerConf::INT_ENABLE.bits() != 0
                && self.conf[n] & TimerConf::FSB_ENABLE.bits() != 0
            {
                let m = MsiMsg {
                    addr_lo: self.addr[n],
                    addr_hi: 0,
                    data: self.data[n],
                };
                self.sent.push((n as u32, m, true));
            }
        }
    }

    /// (comparator, register) an offset names.
    fn decode(offset: usize) -> (usize, usize) {
        assert!(
            (0x100..0x100 + 0x20 * COMPARATORS).contains(&offset)
                || offset == MAIN_COUNTER.offset()
        );
        ((offset - 0x100) / 0x20, (offset - 0x100) % 0x20)
    }
}

#[derive(Clone)]
struct ModelRegs(Arc<Mutex<Model>>);

impl RegisterBlock32 for ModelRegs {
    fn read32(&self, offset: usize) -> u32 {
        let mut m = self.0.lock().unwrap();
        m.log.push(Access::Read32(offset));
        let (n, r) = Model::decode(offset);
        let v = match r {
            0x00 => m.conf[n],
            0x10 => m.data[n],
            0x14 => m.addr[n],
            _ => panic!("32-bit read of {offset:#x}"),
        };
        m.tick();
        v
    }
    fn write32(&self, offset: usize, value: u32) {
        let mut m = self.0.lock().unwrap();
        m.log.push(Access::Write32(offset, value));
        let (n, r) = Model::decode(offset);
        match r {
            0x00 => m.conf[n] = value,
            0x10 => m.data[n] = value,
            0x14 => m.addr[n] = value,
            _ => panic!("32-bit write of {offset:#x}"),
        }
        m.tick();
    }
}

impl RegisterBlock64 for ModelRegs {
    fn read64(&self, offset: usize) -> u64 {
        let mut m = self.0.lock().unwrap();
        m.log.push(Access::Read64(offset));
        let v = if offset == MAIN_COUNTER.offset() {
            m.now
        } else {
            let (n, r) = Model::decode(offset);
            assert_eq!(r, 0x08, "64-bit read of {offset:#x}");
            m.cmp[n]
        };
        m.tick();
        v
    }
    fn write64(&self, offset: usize, _: u64) {
        panic!("64-bit write of {offset:#x}: the storage writes 32-bit registers only");
    }
}

/// The kernel's retrigger delivers the stored message again; here it is recorded.
struct Recorder(Arc<Mutex<Model>>);

impl Retrigger for Recorder {
    fn retrigger(&self, n: u32, msg: &MsiMsg) {
        self.0.lock().unwrap().sent.push((n, *msg, false));
    }
}

/// What real hardware does without the latch: nothing.
struct Nothing;

impl Retrigger for Nothing {
    fn retrigger(&self, _: u32, _: &MsiMsg) {}
}

/// A block of three FSB-capable 64-bit comparators, set up one-shot with FSB delivery.
fn model() -> Arc<Mutex<Model>> {
    let m = Arc::new(Mutex::new(Model::default()));
    {
        let mut g = m.lock().unwrap();
        let caps = TimerConf::SIZE_64_CAP | TimerConf::PERIODIC_CAP | TimerConf::FSB_CAP;
        g.conf = [(caps | TimerConf::FSB_ENABLE).bits(); COMPARATORS];
        g.cmp = [u64::MAX; COMPARATORS];
        g.now = 1000;
    }
    m
}

fn writes(m: &Arc<Mutex<Model>>) -> Vec<(usize, u32)> {
    let g = m.lock().unwrap();
    g.log
        .iter()
        .filter_map(|a| match *a {
            Access::Write32(o, v) => Some((o, v)),
            _ => None,
        })
        .collect()
}

/// What a storage method is, does, and the writes it must make.
type Case<'a> = (&'a str, &'a dyn Fn(), Vec<(usize, u32)>);

#[test]
fn every_method_is_one_32_bit_write_at_its_register() {
    let m = model();
    let s = FsbStorage::new(
        ModelRegs(m.clone()),
        COMPARATORS as u32,
        Recorder(m.clone()),
    );
    let caps = s.caps();
    assert!(caps.maskable && !caps.multi_vector && !caps.dynamic && !caps.addr64);
    assert_eq!(caps.nvec, COMPARATORS as u32);
    let cfg0 = m.lock().unwrap().conf[0];
    for n in 0..COMPARATORS as u32 {
        let base = 0x100 + 0x20 * n as usize;
        let cases: [Case; 5] = [
            (
                "address",
                &|| s.write_addr_lo(n, 0xfee0_3000),
                vec![(base + 0x14, 0xfee0_3000)],
            ),
            ("upper address", &|| s.write_addr_hi(n, 0), vec![]),
            ("data", &|| s.write_data(n, 0x41), vec![(base + 0x10, 0x41)]),
            (
                "unmask",
                &|| s.unmask(n).unwrap(),
                vec![(base, cfg0 | TimerConf::INT_ENABLE.bits())],
            ),
            ("mask", &|| s.mask(n).unwrap(), vec![(base, cfg0)]),
        ];
        for (what, f, want) in cases {
            m.lock().unwrap().log.clear();
            f();
            assert_eq!(writes(&m), want, "comparator {n}: {what}");
        }
        m.lock().unwrap().log.clear();
        assert_eq!(
            s.read(n),
            MsiMsg {
                addr_lo: 0xfee0_3000,
                addr_hi: 0,
                data: 0x41
            }
        );
        assert!(writes(&m).is_empty(), "read writes nothing");
    }
    // A comparator the block does not have: nothing is touched.
    m.lock().unwrap().log.clear();
    s.write_addr_lo(3, 1);
    s.write_data(3, 1);
    assert!(s.mask(3).is_err() && s.unmask(3).is_err());
    assert!(m.lock().unwrap().log.is_empty());
}

/// A flush reads the comparator's own configuration register back (a read of the block
/// returns only after its posted writes) and writes nothing; a comparator the block
/// does not have is not touched.
#[test]
fn flush_reads_the_comparators_configuration_back() {
    let m = model();
    let s = FsbStorage::new(
        ModelRegs(m.clone()),
        COMPARATORS as u32,
        Recorder(m.clone()),
    );
    for n in 0..COMPARATORS as u32 {
        m.lock().unwrap().log.clear();
        s.flush(n);
        let log = m.lock().unwrap().log.clone();
        let base = 0x100 + 0x20 * n as usize;
        assert!(
            log.iter()
                .any(|a| matches!(*a, Access::Read32(o) if o == base)
                    || matches!(*a, Access::Read64(o) if o == base)),
            "comparator {n}: no read of Tn_CONF in {log:?}"
        );
        assert!(
            writes(&m).is_empty(),
            "comparator {n}: a flush writes nothing"
        );
    }
    m.lock().unwrap().log.clear();
    s.flush(COMPARATORS as u32);
    assert!(m.lock().unwrap().log.is_empty());
}

/// The interrupt core over this storage: the irq's route holds the compatibility
/// message for its target after start-up, with the interrupt enabled; an affinity
/// change takes the maskable path (mask, the changed words, unmask), run where it is
/// asked; the route then holds the new target.
struct HostApic(CpuId);

impl LocalApic for HostApic {
    fn current_cpu(&self) -> CpuId {
        self.0
    }
    fn eoi(&mut self) {}
    fn irr_pending(&self, _: Vector) -> bool {
        false
    }
    fn send_ipi(&mut self, _: CpuId, _: Vector) {}
    fn now_ns(&self) -> u64 {
        0
    }
}

#[test]
fn the_core_programs_the_route_and_moves_it_masked() {
    let m = model();
    let core = IrqCore::new(2).unwrap();
    for cpu in 0..2 {
        core.set_apic_id(cpu, cpu + 4).unwrap();
        core.online_cpu(cpu).unwrap();
    }
    let storage = FsbStorage::new(
        ModelRegs(m.clone()),
        COMPARATORS as u32,
        Recorder(m.clone()),
    );
    let dom = Arc::new(MsiDomain::new("HPET-MSI", storage));
    let id = core
        .add_domain("HPET-MSI-0", DomainId::VECTOR, dom.clone())
        .unwrap();
    let src = IrqSource::Hpet {
        block: 0,
        comparator: 1,
    };
    let virq = core
        .alloc_irq(id, &src, &IrqAlloc::edge(CpuMask::single(0)))
        .unwrap();
    core.request_irq(virq, 1, "chain").unwrap();
    let t = core.vector_irq(virq).unwrap().target;
    let stored = dom.storage().read(1);
    assert_eq!(decode(&stored), Some(CompatMsi::fixed(4, t.vector)));
    assert_ne!(m.lock().unwrap().conf[1] & TimerConf::INT_ENABLE.bits(), 0);
    let levels = core.irq_levels(virq).unwrap();
    assert_eq!(levels[0].chip, "HPET-MSI");

    let plan = core
        .set_affinity(virq, &CpuMask::single(1), true)
        .unwrap()
        .unwrap();
    assert_eq!(plan.run_on, None, "maskable: runs wherever it is asked");
    assert_eq!(plan.steps.first(), Some(&Step::MaskForUpdate));
    assert_eq!(plan.steps.last(), Some(&Step::RestoreMask));
    assert!(
        plan.steps
            .contains(&Step::Write(Word::MsiAddrLo, 0xfee0_5000))
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Write(Word::MsiAddrHi, _)))
    );
    m.lock().unwrap().log.clear();
    core.run_plan(virq, &plan, &mut HostApic(0)).unwrap();
    let base = 0x120;
    let w: Vec<usize> = writes(&m).iter().map(|&(o, _)| o).collect();
    assert_eq!(w.first(), Some(&base), "masked first");
    assert_eq!(w.last(), Some(&base), "unmasked last");
    assert!(
        w[1..w.len() - 1]
            .iter()
            .all(|&o| o == base + 0x10 || o == base + 0x14)
    );
    let t = core.vector_irq(virq).unwrap().target;
    assert_eq!(
        decode(&dom.storage().read(1)),
        Some(CompatMsi::fixed(5, t.vector))
    );
    assert_ne!(m.lock().unwrap().conf[1] & TimerConf::INT_ENABLE.bits(), 0);
}

/// The masked window, at every point: the route moves from one message to another by
/// mask, address, data, unmask while the comparator matches at any tick from well before
/// to well after. Real hardware forgets a match while masked; with the latch the message
/// is delivered at least once, at most twice, and never torn; without it (what the
/// hardware alone does) every match inside the window is lost.
#[test]
fn no_match_is_lost_in_a_masked_window() {
    let old = MsiMsg {
        addr_lo: 0xfee0_0000,
        addr_hi: 0,
        data: 0x30,
    };
    let new = MsiMsg {
        addr_lo: 0xfee0_1000,
        addr_hi: 0,
        data: 0x41,
    };
    let run = |latch: bool, at: u64| -> Vec<(u32, MsiMsg, bool)> {
        let m = model();
        let n = 2u32;
        {
            let mut g = m.lock().unwrap();
            g.addr[2] = old.addr_lo;
            g.data[2] = old.data;
            g.conf[2] |= TimerConf::INT_ENABLE.bits();
            g.cmp[2] = g.now + at;
        }
        let regs = ModelRegs(m.clone());
        let steps = |s: &dyn MsiStorage| {
            s.mask(n).unwrap();
            s.write_addr_lo(n, new.addr_lo);
            s.write_data(n, new.data);
            s.unmask(n).unwrap();
        };
        if latch {
            steps(&FsbStorage::new(regs.clone(), 3, Recorder(m.clone())));
        } else {
            steps(&FsbStorage::new(regs.clone(), 3, Nothing));
        }
        // Let the counter run past every placement.
        for _ in 0..32 {
            let _ = MAIN_COUNTER.read(&regs);
        }
        let g = m.lock().unwrap();
        g.sent.clone()
    };
    let (mut in_window, mut twice) = (0, 0);
    for at in 1..30 {
        let sent = run(true, at);
        assert!(!sent.is_empty(), "match at +{at} lost");
        assert!(
            sent.len() <= 2,
            "match at +{at} delivered {} times",
            sent.len()
        );
        for (_, msg, _) in &sent {
            assert!(*msg == old || *msg == new, "torn message {msg:x?} at +{at}");
        }
        if sent.iter().any(|&(_, _, hw)| !hw) {
            in_window += 1;
        }
        if sent.len() == 2 {
            twice += 1;
        }
        // Hardware alone: the matches the latch caught are gone.
        let bare = run(false, at);
        if sent.iter().all(|&(_, _, hw)| hw) {
            assert_eq!(bare.len(), sent.len(), "+{at}");
        } else {
            assert!(
                bare.len() < sent.len(),
                "+{at}: the latch delivered what the hardware did not lose"
            );
        }
    }
    println!("masked-window placements: {in_window} delivered by the latch, {twice} twice");
    assert!(
        in_window >= 4,
        "the window is several accesses wide: {in_window}"
    );
}

/// In 32-bit mode the comparator compares the counter's low half: a window across the
/// 32-bit wrap still finds the match in it.
#[test]
fn a_32_bit_comparator_across_the_wrap() {
    let m = model();
    {
        let mut g = m.lock().unwrap();
        g.conf[0] |= TimerConf::MODE_32.bits();
        g.now = 0xffff_fffe;
        // Matches three ticks on, after the low half wrapped (the model compares the
        // full value; the storage must compare the low halves).
        g.cmp[0] = 0x1;
    }
    let s = FsbStorage::new(ModelRegs(m.clone()), 3, Recorder(m.clone()));
    s.mask(0).unwrap();
    for _ in 0..4 {
        let _ = MAIN_COUNTER.read(&ModelRegs(m.clone()));
    }
    s.unmask(0).unwrap();
    assert_eq!(s.retriggered(), 1);
    // A value not reached in the window: nothing.
    m.lock().unwrap().cmp[1] = 0x1_0000_0000 + 0x10_0000;
    s.mask(1).unwrap();
    s.unmask(1).unwrap();
    assert_eq!(s.retriggered(), 1);
}
