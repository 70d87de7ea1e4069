//! Two CPUs in the same irq's flow at once, while its affinity changes — every
//! interleaving explored.
//!
//! With one lock per descriptor, a CPU runs an irq's handler with no lock held, between
//! the entry half (`begin_vector`) and the exit half (`end_irq`). So while CPU 0 is still
//! in the handler, the affinity change can move the irq to CPU 1 and the device's next
//! interrupt can enter the flow there: the flow sees "in progress", leaves it pending,
//! and CPU 0's exit half runs the handler again. Here each CPU's entry and exit are
//! separate events, so the explorer interleaves CPU 0's handler, CPU 1's entry, the
//! device firing, the affinity change and each step of its plan (which runs on CPU 0 only
//! when it is not inside a handler: the IPI waits for the handler to return) in every
//! order, and checks every interrupt is handled exactly once by the right handler, the
//! move completes and is cleaned up, and the line ends unmasked and idle.

mod sim;

use std::collections::VecDeque;
use std::sync::Arc;

use sim::{
    Explorer, InFlight, Machine, Shared, SimApic, SimIrDomain, SimMsiStorage, SimRteStorage, Wire,
    begin_delivery, end_delivery, explore,
};
use sluice_irq_core::affinity::StepPlan;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::{DomainId, DomainOps};
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::msi::Trigger;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqSource, PciFunction, Polarity, Virq};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    NonMaskableMsi,
    MaskableMsi,
    Remapped,
    IoApic,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    kind: Kind,
    flow: FlowKind,
    fires: u32,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    SetAffinity,
    IrqsOff(usize),
    Step(usize),
    IrqsOn(usize),
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Script,
    Fire,
    Begin(usize),
    End(usize),
    Tick(usize),
}

fn build(s: &Scenario) -> (Shared, IrqCore, Virq) {
    let m = Machine::new(2);
    let core = IrqCore::new(2).unwrap();
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let msi = |maskable: bool| {
        let dev = m.lock().unwrap().add_device(maskable);
        MsiDomain::new(
            "PCI-MSI",
            SimMsiStorage {
                m: m.clone(),
                dev,
                maskable,
            },
        )
    };
    let pci = IrqSource::Pci {
        function: PciFunction::new(0, 0, 3, 0),
        index: 0,
    };
    let (dom, parent, source): (Arc<dyn DomainOps>, DomainId, IrqSource) = match s.kind {
        Kind::NonMaskableMsi => (Arc::new(msi(false)), DomainId::VECTOR, pci),
        Kind::MaskableMsi => (Arc::new(msi(true)), DomainId::VECTOR, pci),
        Kind::Remapped => {
            let ir = core
                .add_domain(
                    "INTEL-IR-0",
                    DomainId::VECTOR,
                    Arc::new(SimIrDomain::new(&m)),
                )
                .unwrap();
            (Arc::new(msi(false)), ir, pci)
        }
        Kind::IoApic => {
            let dev = m.lock().unwrap().add_ioapic_line(Wire::default());
            let io = IoApicDomain::new(0, SimRteStorage { m: m.clone(), dev });
            let line = IrqSource::IoApic {
                id: 0,
                pin: 1,
                trigger: Trigger::Edge,
                polarity: Polarity::ActiveHigh,
            };
            (Arc::new(io), DomainId::VECTOR, line)
        }
    };
    let d = core.add_domain("DEV", parent, dom).unwrap();
    let virq = core
        .alloc_irq(
            d,
            &source,
            &IrqAlloc {
                flow: s.flow,
                ..IrqAlloc::edge(CpuMask::single(0))
            },
        )
        .unwrap();
    core.request_irq(virq, 0, "dev").unwrap();
    (m, core, virq)
}

struct Run {
    m: Shared,
    core: IrqCore,
    virq: Virq,
    script: VecDeque<Act>,
    plan: Option<StepPlan>,
    in_flight: [Option<InFlight>; 2],
    fires_left: u32,
    /// A CPU entered the irq's flow while the other CPU was running its handler.
    entered_while_running: bool,
}

impl Run {
    fn enabled(&self) -> Vec<Ev> {
        let mut en = Vec::new();
        // The plan's IPI is taken on CPU 0 only once its handler has returned.
        let script_ready = match self.script.front() {
            None => false,
            Some(Act::IrqsOff(c)) => self.in_flight[*c].is_none(),
            Some(_) => true,
        };
        if script_ready {
            en.push(Ev::Script);
        }
        if self.fires_left > 0 {
            en.push(Ev::Fire);
        }
        let mm = self.m.lock().unwrap();
        for c in 0..2 {
            if self.in_flight[c].is_some() {
                en.push(Ev::End(c));
            } else if mm.deliverable(c).is_some() {
                en.push(Ev::Begin(c));
            } else if mm.cleanup_pending_timer[c] && mm.cpus[c].irqs_on {
                en.push(Ev::Tick(c));
            }
        }
        en
    }

    fn script(&mut self) -> Result<(), String> {
        match self.script.pop_front().ok_or("empty script")? {
            Act::SetAffinity => {
                let p = self
                    .core
                    .set_affinity(self.virq, &CpuMask::single(1), false)
                    .map_err(|e| e.to_string())?
                    .ok_or("expected a plan")?;
                let cpu = p.run_on.unwrap_or(0) as usize;
                if p.irqs_off {
                    self.script.push_back(Act::IrqsOff(cpu));
                }
                self.script.extend((0..p.steps.len()).map(Act::Step));
                if p.irqs_off {
                    self.script.push_back(Act::IrqsOn(cpu));
                }
                self.plan = Some(p);
            }
            Act::IrqsOff(c) => self.m.lock().unwrap().cpus[c].irqs_on = false,
            Act::IrqsOn(c) => self.m.lock().unwrap().cpus[c].irqs_on = true,
            Act::Step(i) => {
                let p = self.plan.as_ref().ok_or("no plan")?;
                let cpu = p.run_on.unwrap_or(0) as usize;
                let mut apic = SimApic {
                    m: self.m.clone(),
                    cpu,
                };
                self.core
                    .run_step(self.virq, p, i, &mut apic)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn event(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Script => self.script()?,
            Ev::Fire => {
                self.fires_left -= 1;
                self.m.lock().unwrap().fire(0);
            }
            Ev::Begin(c) => {
                let vector = self
                    .m
                    .lock()
                    .unwrap()
                    .deliverable(c)
                    .ok_or("not deliverable")?;
                let ours = self.core.slot(c as u32, sluice_irq_core::Vector(vector))
                    == sluice_irq_core::routes::Slot::Irq(self.virq);
                self.entered_while_running |= ours && self.in_flight[1 - c].is_some();
                if let Some(Some(f)) = begin_delivery(&self.core, &self.m, c) {
                    self.in_flight[c] = Some(f);
                }
            }
            Ev::End(c) => {
                let f = self.in_flight[c].take().ok_or("nothing in flight")?;
                end_delivery(&self.core, &self.m, f);
            }
            Ev::Tick(c) => {
                let mut apic = SimApic {
                    m: self.m.clone(),
                    cpu: c,
                };
                let out = self.core.vector_cleanup(&mut apic);
                self.m.lock().unwrap().cleanup_pending_timer[c] = out.retry > 0;
            }
        }
        Ok(())
    }
}

fn run_once(ex: &mut Explorer, s: &Scenario, overlaps: &mut u32) -> Result<(), String> {
    let (m, core, virq) = build(s);
    let mut r = Run {
        m,
        core,
        virq,
        script: VecDeque::from([Act::SetAffinity]),
        plan: None,
        in_flight: [None, None],
        fires_left: s.fires,
        entered_while_running: false,
    };
    let mut trail = String::new();
    for _ in 0..400 {
        let en = r.enabled();
        if en.is_empty() {
            break;
        }
        let ev = en[ex.pick(en.len())];
        trail.push_str(&format!("{ev:?} "));
        r.event(ev)
            .map_err(|e| format!("{s:?}: {e}; trail {trail}"))?;
    }
    if !r.enabled().is_empty() {
        return Err(format!("{s:?}: livelock; trail {trail}"));
    }
    if r.entered_while_running {
        *overlaps += 1;
    }
    let mut bad = sim::verdict(&r.m.lock().unwrap(), &r.core);
    let d = r.core.desc(virq).map_err(|e| e.to_string())?;
    if d.state.in_progress || d.state.pending || d.state.masked {
        bad.push(format!("irq left {:?}", d.state));
    }
    let st = r.core.vector_irq(virq).map_err(|e| e.to_string())?;
    if !st.move_in_progress && st.prev.is_some() {
        bad.push(format!("move completed but never cleaned up: {st:?}"));
    }
    r.core.check_invariants().map_err(|e| e.to_string())?;
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?}: {}; trail {trail}", bad.join("; ")))
    }
}

/// Schedules over all scenarios, and those in which one CPU entered the irq's flow while
/// the other ran its handler — asserted so that a change that explores less fails here.
/// (20,818 and 3,872 while a remapped move waited for its first interrupt before its
/// cleanup; now the IRTE update completes it and the cleanup IPI is one more event.)
const SCHEDULES: usize = 22_322;
const OVERLAPPING: u32 = 4_314;

#[test]
fn two_cpus_in_one_irqs_flow_during_a_move_lose_nothing() {
    let (mut total, mut overlaps) = (0, 0);
    for kind in [
        Kind::NonMaskableMsi,
        Kind::MaskableMsi,
        Kind::Remapped,
        Kind::IoApic,
    ] {
        for flow in [FlowKind::Edge, FlowKind::FastEoi] {
            for fires in 1..=3 {
                let s = Scenario { kind, flow, fires };
                let (runs, fails) = explore(|ex| run_once(ex, &s, &mut overlaps), 200_000);
                assert!(runs < 200_000, "{s:?}: exploration did not finish");
                assert!(
                    fails.is_empty(),
                    "{s:?}: {} of {runs} schedules failed, e.g. {}",
                    fails.len(),
                    fails[0]
                );
                total += runs;
            }
        }
    }
    eprintln!(
        "{total} schedules, {overlaps} with one CPU entering the flow while the other ran the handler; none lost"
    );
    assert_eq!((total, overlaps), (SCHEDULES, OVERLAPPING));
}
