//! One schedule's run: the events that can happen next on the machine, the explorer's
//! pick among them, and the hardware events run as picked. A test owns its script (and
//! its waiting plans) and offers them as [`Event::Script`] / [`Event::Plan`] beside the
//! hardware's events; everything else happens here.
//!
//! **Reduction.** A message's arrival ([`Event::Land`]) commutes with most of what can
//! happen around it, and exploring every place it could go among those would multiply
//! the schedules for nothing. Two adjacent events that do not affect each other give the
//! same machine in either order, so of the two orders only one is explored: a firing, a
//! posted write's landing or a queued command's completion never directly follows an
//! arrival (none of them reads an IRR or the unit); arrivals in a row
//! come in ascending device order; and a CPU's event (a delivery, a handler's end, a
//! cleanup tick) never directly follows an arrival it did not look at: one whose IRR
//! bit the event neither took nor checked nor moved (every IRR read is recorded), and
//! that did not make the same device's messages arrive itself (a flush by a mask or
//! unmask in the flow) — the run checks both after the event. The same holds for the
//! test's own events (the core's calls): one that directly follows an arrival must have
//! looked at its bit, made its device's messages arrive, stored an IRTE (which changes
//! where a message arriving after it goes), disabled that APIC or cleared the bit, or
//! waited while other events ran. A schedule with the other order is
//! dropped where it is found ([`Explorer::prune`]). Every schedule is still represented:
//! swapping such pairs until none is left turns any schedule into one that is explored,
//! with the same outcome. Scripts and plans (the core's own calls) commute with nothing.

use sluice_irq_core::IrqCore;
use sluice_irq_core::IrqError;
use sluice_irq_core::queued::BusWait;

use crate::apic::SimApic;
use crate::bus::Timing;
use crate::delivery::{Running, begin_delivery, deliver, end_delivery};
use crate::explorer::Explorer;
use crate::lockdep::in_irq;
use crate::machine::{Shared, Source};

/// One thing that can happen next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The test's script moves a step.
    Script,
    /// The test's `k`-th waiting plan is run by its IPI.
    Plan(usize),
    /// A source fires (its message goes on the bus).
    Fire(Source),
    /// The oldest write posted to device `d` (a PCI function) reaches it.
    Apply(usize),
    /// The oldest message device `d` has in flight arrives.
    Land(usize),
    /// The oldest queued command completes.
    Complete,
    /// CPU `c` takes its highest pending interrupt, entry and exit back to back.
    Deliver(usize),
    /// CPU `c` enters its highest pending interrupt; its handler then runs.
    Begin(usize),
    /// CPU `c`'s handler returns and the flow's exit half runs.
    End(usize),
    /// CPU `c`'s timer tick retries a deferred vector cleanup.
    CleanupTimer(usize),
}

impl Event {
    /// One letter per event, for a schedule's trail in failure messages.
    pub fn letter(self) -> char {
        match self {
            Event::Script => 'S',
            Event::Plan(_) => 'P',
            Event::Fire(Source::Device(0)) => 'F',
            Event::Fire(Source::Device(_)) => 'z',
            Event::Fire(Source::Member(_, j)) => char::from(b'a' + j as u8),
            Event::Apply(_) => 'W',
            Event::Land(_) => 'L',
            Event::Complete => 'C',
            Event::Deliver(c) => char::from(b'0' + c as u8),
            Event::Begin(_) => 'b',
            Event::End(_) => 'e',
            Event::CleanupTimer(_) => 'T',
        }
    }
}

/// A schedule in progress.
pub struct Run<'a> {
    /// The interrupt core under test.
    pub core: &'a IrqCore,
    /// The machine.
    pub m: Shared,
    /// Firings the schedule may still make, out of one budget for every source.
    pub fires_left: u32,
    /// Who may fire.
    pub sources: Vec<Source>,
    /// Sources may fire now (a test holds a device back until it is enabled).
    pub can_fire: bool,
    /// Deliveries as two events, [`Event::Begin`] and [`Event::End`], with the handler
    /// running in between; else one [`Event::Deliver`].
    pub split: bool,
    /// Per CPU, the interrupt whose handler runs (split deliveries).
    pub running: Vec<Option<Running>>,
    /// Events left before the schedule counts as a livelock.
    pub budget: u32,
    /// One letter per event so far.
    pub trail: String,
    /// Drop schedules that only reorder independent events (module docs); on unless a
    /// test checks the reduction itself.
    pub reduce: bool,
    /// The previous event, if it was an arrival: the device, and the IRR bit it set.
    last_land: Option<(usize, Option<(usize, u8)>)>,
    /// The test's event just picked right after an arrival, checked when the test asks
    /// for the next event (by then it has run it).
    owed: Option<Owed>,
    /// Hardware events run so far (also inside a waiting call of the core).
    taken: u64,
}

/// What the machine looked like before a test's event that followed an arrival: enough
/// to tell, once the event ran, whether it and the arrival could have come the other way
/// round.
struct Owed {
    device: usize,
    bit: Option<(usize, u8)>,
    landed: u64,
    stores: u64,
    apic_enabled: bool,
    taken: u64,
}

/// What a dropped schedule's run returns (it is neither counted nor judged).
pub const PRUNED: &str = "pruned: a reordering of an explored schedule";

impl<'a> Run<'a> {
    /// A run on `m` in which `sources` may fire `fires` times in all.
    pub fn new(core: &'a IrqCore, m: &Shared, fires: u32, sources: &[Source]) -> Run<'a> {
        let cpus = m.lock().unwrap().cpus.len();
        Run {
            core,
            m: m.clone(),
            fires_left: fires,
            sources: sources.to_vec(),
            can_fire: true,
            split: false,
            running: vec![None; cpus],
            budget: 1_000,
            trail: String::new(),
            reduce: true,
            last_land: None,
            owed: None,
            taken: 0,
        }
    }

    /// The hardware events enabled now. A cleanup tick is only enabled once the CPU has
    /// no interrupt left to take: fairness, since a tick comes long after pending
    /// interrupts were taken.
    pub fn hardware_events(&self) -> Vec<Event> {
        let mut en = Vec::new();
        if self.can_fire && self.fires_left > 0 {
            en.extend(self.sources.iter().map(|&s| Event::Fire(s)));
        }
        let mm = self.m.lock().unwrap();
        en.extend(mm.posted().into_iter().map(Event::Apply));
        en.extend(mm.in_flight().into_iter().map(Event::Land));
        if !mm.commands.is_empty() {
            en.push(Event::Complete);
        }
        for c in 0..mm.cpus.len() {
            let deliverable = mm.deliverable(c).is_some();
            if self.split && self.running[c].is_some() {
                en.push(Event::End(c));
                continue;
            }
            if deliverable {
                en.push(if self.split {
                    Event::Begin(c)
                } else {
                    Event::Deliver(c)
                });
            } else if mm.cleanup_pending_timer[c] && mm.cpus[c].irqs_on {
                en.push(Event::CleanupTimer(c));
            }
        }
        en
    }

    /// Runs a hardware event.
    pub fn run(&mut self, ev: Event) -> Result<(), String> {
        self.taken += 1;
        match ev {
            Event::Script | Event::Plan(_) => {
                return Err(format!("{ev:?} belongs to the test"));
            }
            Event::Fire(s) => {
                self.fires_left -= 1;
                self.m.lock().unwrap().fire_source(s);
            }
            Event::Apply(d) => {
                self.m.lock().unwrap().land_write(d);
            }
            Event::Land(d) => {
                let bit = self.m.lock().unwrap().land(d);
                self.last_land = bit.map(|b| (d, b));
            }
            Event::Complete => {
                self.m.lock().unwrap().complete_command();
            }
            Event::Deliver(c) => {
                deliver(self.core, &self.m, c);
            }
            Event::Begin(c) => {
                if let Some(Some(r)) = begin_delivery(self.core, &self.m, c) {
                    self.running[c] = Some(r);
                }
            }
            Event::End(c) => {
                let r = self.running[c].take().ok_or("no handler running")?;
                end_delivery(self.core, &self.m, r);
            }
            Event::CleanupTimer(c) => {
                // The timer's interrupt handler.
                let out = in_irq(c, || self.core.vector_cleanup(&mut SimApic::on(&self.m, c)));
                self.m.lock().unwrap().cleanup_pending_timer[c] = out.retry > 0;
            }
        }
        Ok(())
    }

    fn spend(&mut self) -> Result<(), String> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| format!("livelock, trail {}", self.trail))?;
        Ok(())
    }

    /// Picks the next event among the test's own (`mine`: [`Event::Script`] when its
    /// script is ready, [`Event::Plan`] for plans waiting) and the hardware's, and runs
    /// it if it is the hardware's. `None` when nothing is enabled: the schedule is over.
    /// `Err(PRUNED)` when the pick only reorders a schedule explored anyway.
    pub fn next(&mut self, ex: &mut Explorer, mine: &[Event]) -> Result<Option<Event>, String> {
        if ex.is_pruned() {
            return Err(PRUNED.into());
        }
        self.settle_owed(ex)?;
        self.spend()?;
        let mut en = mine.to_vec();
        en.extend(self.hardware_events());
        if en.is_empty() {
            return Ok(None);
        }
        let ev = en[ex.pick(en.len())];
        self.take(ex, ev)?;
        Ok(Some(ev))
    }

    /// A test's event (the core's own call) that followed an arrival has run: drop the
    /// schedule if the two could have come the other way round — the call looked at no
    /// IRR bit the arrival set, made none of that device's messages arrive, stored no
    /// IRTE (which changes where a message arriving later goes), left that CPU's APIC
    /// and the bit as they were, and let nothing else happen while it waited.
    fn settle_owed(&mut self, ex: &mut Explorer) -> Result<(), String> {
        let Some(o) = self.owed.take() else {
            return Ok(());
        };
        let mm = self.m.lock().unwrap();
        let same = o.bit.is_none_or(|(t, v)| {
            !mm.irr_reads.contains(&(t, v))
                && mm.cpus[t].irr.contains_key(&v)
                && mm.cpus[t].apic_enabled == o.apic_enabled
        }) && o.bit.is_some()
            && mm.landed(o.device) == o.landed
            && mm.bus.stores == o.stores
            && self.taken == o.taken;
        drop(mm);
        if same {
            ex.prune();
            return Err(PRUNED.into());
        }
        Ok(())
    }

    /// The event `ev` was picked: run it if it is the hardware's, and drop the schedule
    /// if it only reorders one explored anyway (module docs, "Reduction").
    fn take(&mut self, ex: &mut Explorer, ev: Event) -> Result<(), String> {
        self.trail.push(ev.letter());
        let after = self.last_land.take().filter(|_| self.reduce);
        let cpu = match ev {
            Event::Script | Event::Plan(_) => {
                if let Some((device, bit)) = after {
                    let mut mm = self.m.lock().unwrap();
                    mm.irr_reads.clear();
                    self.owed = Some(Owed {
                        device,
                        bit,
                        landed: mm.landed(device),
                        stores: mm.bus.stores,
                        apic_enabled: bit.is_some_and(|(t, _)| mm.cpus[t].apic_enabled),
                        taken: self.taken,
                    });
                }
                return Ok(());
            }
            Event::Fire(_) | Event::Apply(_) | Event::Complete if after.is_some() => None,
            Event::Land(d) if after.is_some_and(|(prev, _)| d < prev) => None,
            Event::Fire(_) | Event::Apply(_) | Event::Complete | Event::Land(_) => {
                return self.run(ev);
            }
            Event::Deliver(c) | Event::Begin(c) | Event::End(c) | Event::CleanupTimer(c) => Some(c),
        };
        if cpu.is_none() {
            ex.prune();
            return Err(PRUNED.into());
        }
        let Some((d, bit)) = after else {
            return self.run(ev);
        };
        let landed = {
            let mut mm = self.m.lock().unwrap();
            mm.irr_reads.clear();
            mm.landed(d)
        };
        self.run(ev)?;
        let mm = self.m.lock().unwrap();
        let looked = bit.is_some_and(|b| mm.irr_reads.contains(&b));
        if !looked && mm.landed(d) == landed {
            drop(mm);
            ex.prune();
            return Err(PRUNED.into());
        }
        Ok(())
    }

    /// Before one atomic call of the core (a plan run by its IPI, a migration, a
    /// restore): if firings are left, the explorer picks whether a source fires right
    /// after one of the call's first `points` hardware writes or IRR reads, and after
    /// which; and, on a machine with a remapping unit whose messages are in flight,
    /// whether what is in flight then arrives at the call's first IRTE store, before its
    /// invalidation (`bus.rs`, the stale window). Returns the token count to hand to
    /// [`Run::fired_inside`].
    pub fn let_fire_inside(&mut self, ex: &mut Explorer, points: usize) -> usize {
        let n = self.sources.len();
        let at = if self.can_fire && self.fires_left > 0 && n > 0 {
            ex.pick(1 + points * n)
        } else {
            0
        };
        let mut mm = self.m.lock().unwrap();
        if at > 0 {
            let k = mm.writes + (at - 1) / n + 1;
            mm.fire_after_write.push((k, self.sources[(at - 1) % n]));
        }
        let something = at > 0 || mm.in_flight_count() > 0;
        if mm.bus.unit.is_some() && mm.bus.timing == Timing::InFlight && something {
            drop(mm);
            let land = ex.pick(2) == 1;
            mm = self.m.lock().unwrap();
            mm.bus.land_at_store = land;
        }
        mm.token_dev.len()
    }

    /// After the call: did a source fire inside it? A pick beyond the call's last write
    /// (or a stale window the call never opened) is dropped.
    pub fn fired_inside(&mut self, before: usize) -> bool {
        let mut mm = self.m.lock().unwrap();
        mm.fire_after_write.clear();
        mm.bus.land_at_store = false;
        let fired = mm.token_dev.len() > before;
        if fired {
            self.fires_left -= 1;
        }
        fired
    }

    /// A caller that may wait on this schedule's machine ([`SimWait`]).
    pub fn waiter<'w>(&'w mut self, ex: &'w mut Explorer) -> SimWait<'w, 'a> {
        SimWait { ex, run: self }
    }
}

/// A caller that may wait (`BusWait`): while it waits, the machine runs, every choice of
/// hardware event explored; a wait with nothing left that could end it times out.
pub struct SimWait<'w, 'a> {
    ex: &'w mut Explorer,
    run: &'w mut Run<'a>,
}

impl BusWait for SimWait<'_, '_> {
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> sluice_irq_core::Result<()> {
        loop {
            if done() {
                return Ok(());
            }
            let en = self.run.hardware_events();
            if en.is_empty() {
                return Err(IrqError::Timeout);
            }
            let ev = en[self.ex.pick(en.len())];
            self.run.spend().map_err(|_| IrqError::Timeout)?;
            self.run.take(self.ex, ev).map_err(|_| IrqError::Timeout)?;
        }
    }
}

/// Set-up, not explored: queued commands complete as soon as they are waited for.
pub struct Completer(pub Shared);

impl BusWait for Completer {
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> sluice_irq_core::Result<()> {
        while !done() {
            if !self.0.lock().unwrap().complete_command() {
                return Err(IrqError::Timeout);
            }
        }
        Ok(())
    }
}
