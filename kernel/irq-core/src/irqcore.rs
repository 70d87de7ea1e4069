//! [`IrqCore`]: the descriptor table, the domain registry and the vector domain of one
//! machine, and the operations that allocate, start and stop irqs.
//!
//! # Locking (DESIGN §3 and §5; Linux's model)
//!
//! | lock | protects | taken by |
//! |---|---|---|
//! | *domain lock* (`domains`) | the registry; virq allocation; multi-MSI block records | alloc/free irqs, block reserve/alloc-in/teardown, add/remove domains, listings |
//! | *descriptor lock* (one per irq, [`crate::desctable`]) | the descriptor; every chip operation and flow handler on that irq | everything about one irq, interrupt entry |
//! | every member's *descriptor lock* of a multi-MSI block, **ascending virq order** (`group.rs`) | the block's descriptors together | a block's affinity change, plan steps, abort, hotplug |
//! | *vector lock* (`vector`) | the matrix, per-irq vector records, blocks and their vector regions, cleanup lists, writes to the per-CPU routes | vector allocation, moves, move completion, cleanup |
//! | hotplug records (`hotplug`) | what an offline shut down or broke | hotplug, affinity changes |
//!
//! Order: domain lock → descriptor lock(s), ascending virq → vector lock; chip-internal
//! locks and the hotplug records are leaves (nothing is taken while holding them, and
//! neither is held while taking a descriptor lock). Every method is called with
//! interrupts off on the calling CPU (the kernel wraps them), so an interrupt handler
//! never spins on a lock its own CPU holds. The locks are sluice-sync locks whose classes
//! and order are in [`crate::locks`]: the lock validator checks both, and the calling
//! convention.
//!
//! Interrupt entry ([`IrqCore::begin_vector`]) reads the per-CPU route table without a
//! lock, finds the descriptor without a lock, and takes only that irq's descriptor lock
//! (plus the vector lock on the first interrupt after a move, to complete it). Driver
//! handlers run between [`IrqCore::begin_vector`] and [`IrqCore::end_irq`] with no lock
//! held; the descriptor's `in_progress` flag covers that window.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::chip::HwIrq;
use crate::cpumask::{CpuId, CpuMask};
use crate::desc::{DescState, FlowKind, IrqDesc, Level, StormPolicy};
use crate::desctable::DescTable;
use crate::domain::{DomainId, DomainInfo, DomainOps};
use crate::error::{IrqError, Result, Virq};
use crate::hotplug::HotplugState;
use crate::hw::LocalApic;
use crate::locks;
use crate::matrix::CpuVectorStats;
use crate::msi::DestFormat;
use crate::registry::Registry;
use crate::routes::{Routes, Slot};
use crate::source::IrqSource;
use crate::vecdomain::{VectorAlloc, VectorDomain, VectorIrq};
use crate::vector::Vector;
use sluice_sync::SpinLock;

/// How to allocate an irq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqAlloc {
    /// CPUs it may target.
    pub affinity: CpuMask,
    /// Managed (kernel-fixed affinity, vector reserved on every CPU of the mask).
    pub managed: bool,
    /// Reservation mode (MSI): a real vector only when started.
    pub reserve: bool,
    /// Consecutive irqs / vectors: 1, or a multi-MSI block of 2^k ≤ 32 (see
    /// [`IrqCore::alloc_irq`]).
    pub count: u32,
    /// Flow handler.
    pub flow: FlowKind,
    /// Use exactly this virq (legacy ISA irqs 0..15); `None` = lowest free at or above 16.
    pub virq: Option<Virq>,
}

impl IrqAlloc {
    /// One edge irq, any of `affinity`, not managed, no reservation.
    pub fn edge(affinity: CpuMask) -> Self {
        Self {
            affinity,
            managed: false,
            reserve: false,
            count: 1,
            flow: FlowKind::Edge,
            virq: None,
        }
    }
}

/// One level as shown by `irq N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelInfo {
    /// The domain, for callers that keep their own facts about it (its kind).
    pub domain_id: DomainId,
    /// Domain name.
    pub domain: String,
    /// Chip name (`APIC` for the root).
    pub chip: String,
    /// Hardware irq.
    pub hwirq: crate::chip::HwIrq,
}

/// First virq handed out when the caller does not ask for one (0..15 are legacy ISA).
pub const FIRST_DYNAMIC_VIRQ: Virq = 16;

/// Per-CPU accounting of interrupts that reached no handler (counted on interrupt entry,
/// lock-free).
struct SpuriousCount {
    /// On an unused vector.
    count: AtomicU64,
    logged: AtomicBool,
    /// On a vector that had been routed and no longer is, with nothing expected there:
    /// see [`IrqCore::stray_count`].
    stray: AtomicU64,
}

/// How many interrupts the core's IRR checks found pending and sent on since the core
/// was made ([`IrqCore::irr_catches`]): each is an interrupt that a move or an offline
/// put at risk and that would have been lost without the check. Monotonic; a harness
/// reads it before and after a run and takes the difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrrCatches {
    /// A two-step plan's IRR check ([`crate::affinity::Step::CheckIrrRetrigger`], or the
    /// member form for a block) found the new vector pending on the old CPU — the device
    /// sent its intermediate message between the two writes — and retriggered the irq at
    /// its new target.
    pub plans: u64,
    /// CPU offline's step 4 found a vector routed on the dying CPU pending in its IRR and
    /// retriggered its irq at the new target (`hotplug.rs`).
    pub redelivered: u64,
}

/// The generic interrupt layer of one machine. Shared by every CPU (`&self` throughout);
/// see the module docs for its locks.
pub struct IrqCore {
    pub(crate) descs: DescTable,
    pub(crate) domains: SpinLock<Registry>,
    /// The vector lock.
    pub(crate) vector: SpinLock<VectorDomain>,
    /// Written under the vector lock, read by interrupt entry without it.
    pub(crate) routes: Arc<Routes>,
    spurious: Vec<SpuriousCount>,
    storm_window: AtomicU32,
    storm_threshold: AtomicU32,
    storm_gap_ns: AtomicU64,
    ext_dest: AtomicBool,
    /// What CPU hotplug shut down or moved out of affinity, to undo on online.
    pub(crate) hotplug: SpinLock<HotplugState>,
    /// Irqs whose queued storage recorded changes the device has not confirmed
    /// (`queued.rs`): the deferred worker's list. A leaf lock.
    pub(crate) deferred: SpinLock<alloc::collections::BTreeSet<Virq>>,
    /// The id the next plan is stamped with ([`crate::affinity::PlanId`]); 0 is never one.
    next_plan: AtomicU64,
    /// [`IrrCatches`]: lock-free, counted where the check finds the bit.
    caught_by_plans: AtomicU64,
    redelivered: AtomicU64,
    /// Bugs put back on purpose for the simulator's counter-examples (`injected.rs`).
    #[cfg(feature = "inject-bugs")]
    pub(crate) injected: AtomicU32,
}

impl IrqCore {
    /// A core for `nr_cpus` possible CPUs (all offline: call [`Self::online_cpu`] for
    /// each CPU as it comes up).
    pub fn new(nr_cpus: usize) -> Result<Self> {
        let vector = VectorDomain::new(nr_cpus)?;
        let routes = vector.routes();
        let storm = StormPolicy::default();
        Ok(Self {
            descs: DescTable::new(),
            domains: SpinLock::new(&locks::DOMAINS, Registry::new()),
            vector: SpinLock::new(&locks::VECTOR, vector),
            routes,
            spurious: (0..nr_cpus)
                .map(|_| SpuriousCount {
                    count: AtomicU64::new(0),
                    logged: AtomicBool::new(false),
                    stray: AtomicU64::new(0),
                })
                .collect(),
            storm_window: AtomicU32::new(storm.window),
            storm_threshold: AtomicU32::new(storm.threshold),
            storm_gap_ns: AtomicU64::new(storm.unhandled_gap_ns),
            ext_dest: AtomicBool::new(false),
            hotplug: SpinLock::new(&locks::HOTPLUG, HotplugState::default()),
            deferred: SpinLock::new(&locks::DEFERRED, alloc::collections::BTreeSet::new()),
            next_plan: AtomicU64::new(1),
            caught_by_plans: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            #[cfg(feature = "inject-bugs")]
            injected: AtomicU32::new(0),
        })
    }

    /// A fresh plan id: unique for the life of the core, whatever irq it is for, so a
    /// plan for a freed irq can never pass for one of a later irq with its number.
    pub(crate) fn new_plan_id(&self) -> crate::affinity::PlanId {
        crate::affinity::PlanId(self.next_plan.fetch_add(1, Ordering::Relaxed))
    }

    /// Interrupts the IRR checks caught so far (see [`IrrCatches`]).
    pub fn irr_catches(&self) -> IrrCatches {
        IrrCatches {
            plans: self.caught_by_plans.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
        }
    }

    /// A plan's IRR check retriggered an interrupt it found pending.
    pub(crate) fn count_plan_catch(&self) {
        self.caught_by_plans.fetch_add(1, Ordering::Relaxed);
    }

    /// CPU offline re-delivered an interrupt pending in the dying CPU's IRR.
    pub(crate) fn count_redelivery(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Change storm-detection thresholds (at set-up, before interrupts flow).
    pub fn set_storm_policy(&self, p: StormPolicy) -> Result<()> {
        if p.window == 0 || p.threshold > p.window {
            return Err(IrqError::InvalidArgument);
        }
        self.storm_window.store(p.window, Ordering::Relaxed);
        self.storm_threshold.store(p.threshold, Ordering::Relaxed);
        self.storm_gap_ns
            .store(p.unhandled_gap_ns, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn storm(&self) -> StormPolicy {
        StormPolicy {
            window: self.storm_window.load(Ordering::Relaxed),
            threshold: self.storm_threshold.load(Ordering::Relaxed),
            unhandled_gap_ns: self.storm_gap_ns.load(Ordering::Relaxed),
        }
    }

    /// Destination format for compatibility-format messages composed at the root.
    pub fn set_dest_format(&self, f: DestFormat) {
        self.ext_dest
            .store(f == DestFormat::ExtDest15, Ordering::Relaxed);
    }

    pub(crate) fn dest_format(&self) -> DestFormat {
        if self.ext_dest.load(Ordering::Relaxed) {
            DestFormat::ExtDest15
        } else {
            DestFormat::XApic
        }
    }

    // ----- CPUs ----------------------------------------------------------------------

    /// Record a CPU's APIC id (from the MADT) before it comes online.
    pub fn set_apic_id(&self, cpu: CpuId, apic_id: u32) -> Result<()> {
        self.vector.lock().set_apic_id(cpu, apic_id)
    }

    /// Bring a CPU online at the vector level (see [`VectorDomain::online_cpu`]).
    pub fn online_cpu(&self, cpu: CpuId) -> Result<Vec<Virq>> {
        self.vector.lock().online_cpu(cpu)
    }

    /// Number of possible CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.routes.nr_cpus()
    }

    /// CPUs whose vectors are allocatable.
    pub fn online_mask(&self) -> CpuMask {
        *self.vector.lock().matrix().online_mask()
    }

    /// Vector counters of one CPU (the `vectors` command).
    pub fn cpu_vector_stats(&self, cpu: CpuId) -> Result<CpuVectorStats> {
        self.vector.lock().matrix().cpu_stats(cpu)
    }

    /// Is `cpu` online at the vector level?
    pub fn is_cpu_online(&self, cpu: CpuId) -> bool {
        self.vector.lock().matrix().is_online(cpu)
    }

    /// The vector matrix's consistency checks (tests, diagnostics).
    pub fn check_invariants(&self) -> core::result::Result<(), &'static str> {
        self.vector.lock().matrix().check_invariants()
    }

    /// A read-only look at the vector domain (diagnostics and tests): `f` runs under the
    /// vector lock, so it must not call back into the core.
    pub fn vector_view<R>(&self, f: impl FnOnce(&VectorDomain) -> R) -> R {
        f(&self.vector.lock())
    }

    /// The vector-level record of one irq (target, move state, affinity).
    pub fn vector_irq(&self, virq: Virq) -> Result<VectorIrq> {
        self.vector.lock().irq(virq).copied()
    }

    /// What `vector` on `cpu` routes to.
    pub fn slot(&self, cpu: CpuId, vector: Vector) -> Slot {
        self.routes.get(cpu, vector)
    }

    /// Count a spurious interrupt on `cpu`; true the first time (log it once).
    pub(crate) fn count_spurious(&self, cpu: CpuId) -> bool {
        let Some(s) = self.spurious.get(cpu as usize) else {
            return false;
        };
        s.count.fetch_add(1, Ordering::Relaxed);
        !s.logged.swap(true, Ordering::Relaxed)
    }

    /// Interrupts on unused vectors seen by `cpu`.
    pub fn spurious_count(&self, cpu: CpuId) -> u64 {
        self.spurious
            .get(cpu as usize)
            .map_or(0, |s| s.count.load(Ordering::Relaxed))
    }

    /// Count a stray interrupt on `cpu` (see [`Self::stray_count`]).
    pub(crate) fn count_stray(&self, cpu: CpuId) {
        if let Some(s) = self.spurious.get(cpu as usize) {
            s.stray.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// *Stray* interrupts seen by `cpu`: arrivals on a vector whose irq is gone
    /// ([`crate::routes::Slot::Shutdown`]: freed, shut down, a dropped old half, a
    /// multi-MSI member not allocated; or an irq freed as its interrupt came in) and on a
    /// slot a two-step move claimed ([`crate::routes::Slot::Retriggered`]) when no
    /// retriggered IRR bit was still due there. Like [`Self::spurious_count`] (unused
    /// vectors) these reached no handler and were acknowledged, but they are not noise on
    /// a free vector: a device sent to a vector that was routed a moment ago — a torn
    /// message of a non-atomic update, or an intermediate message that arrived after the
    /// IRR check meant to catch it — so each one is an interrupt lost or misdirected. Not
    /// counted: the one arrival a retrigger left behind
    /// ([`crate::routes::Slot::RetriggeredPending`]), which was handled at its new target.
    pub fn stray_count(&self, cpu: CpuId) -> u64 {
        self.spurious
            .get(cpu as usize)
            .map_or(0, |s| s.stray.load(Ordering::Relaxed))
    }

    // ----- domains -------------------------------------------------------------------

    /// Register a domain under `parent` (hierarchy builder). Names must be unique.
    pub fn add_domain(
        &self,
        name: &str,
        parent: DomainId,
        ops: Arc<dyn DomainOps>,
    ) -> Result<DomainId> {
        self.domains.lock().add(name, parent, ops)
    }

    /// Register a grouping node under `parent`: listed in the tree, never a level of an
    /// irq (the plan's `PCI-MSI`, under which each device's MSI domain is added).
    pub fn add_group(&self, name: &str, parent: DomainId) -> Result<DomainId> {
        self.domains.lock().add_group(name, parent)
    }

    /// Remove a domain with no irqs and no child domains (`Busy` otherwise).
    pub fn remove_domain(&self, id: DomainId) -> Result<()> {
        self.domains.lock().remove(id)
    }

    /// Find a domain by name.
    pub fn domain_by_name(&self, name: &str) -> Option<DomainId> {
        self.domains.lock().by_name(name)
    }

    /// The first domain whose `select` accepts `source`.
    pub fn select_domain(&self, source: &IrqSource) -> Option<DomainId> {
        self.domains.lock().select(source)
    }

    /// The domain tree in depth-first order, with sizes and allocation counts.
    pub fn domain_tree(&self) -> Vec<DomainInfo> {
        let root = self.nr_cpus() as u32 * crate::vector::NR_DEVICE_VECTORS;
        self.domains.lock().tree(root)
    }

    // ----- descriptors ---------------------------------------------------------------

    /// Run `f` on the descriptor of `virq` under its lock.
    pub(crate) fn with_desc<R>(
        &self,
        virq: Virq,
        f: impl FnOnce(&mut IrqDesc) -> Result<R>,
    ) -> Result<R> {
        let cell = self.descs.get(virq).ok_or(IrqError::UnknownIrq(virq))?;
        let mut g = cell.lock();
        let d = g.as_mut().ok_or(IrqError::UnknownIrq(virq))?;
        f(d)
    }

    /// A copy of a descriptor.
    pub fn desc(&self, virq: Virq) -> Result<IrqDesc> {
        self.with_desc(virq, |d| Ok(d.clone()))
    }

    /// Copies of every allocated descriptor, by virq.
    pub fn descs(&self) -> Vec<IrqDesc> {
        self.descs
            .cells()
            .filter_map(|(_, c)| c.lock().clone())
            .collect()
    }

    /// Runs a vector-domain operation for the locked descriptor `d` under the vector lock
    /// and refreshes `d`'s copy of its vector-level state (target, move in progress)
    /// before the lock is dropped — the one way the two are kept in step.
    pub(crate) fn vector_op<R>(
        &self,
        d: &mut IrqDesc,
        f: impl FnOnce(&mut VectorDomain) -> R,
    ) -> R {
        let mut vd = self.vector.lock();
        let r = f(&mut vd);
        if let Ok(i) = vd.irq(d.virq) {
            d.target = i.target;
            d.move_in_progress = i.move_in_progress;
        }
        r
    }

    pub(crate) fn free_virqs(&self, count: u32, at: Option<Virq>) -> Result<Virq> {
        let taken = |v: Virq| self.descs.taken(v);
        if let Some(v) = at {
            if (v..v + count).any(taken) {
                return Err(IrqError::Busy);
            }
            return Ok(v);
        }
        let last = crate::desctable::MAX_IRQS as Virq;
        (FIRST_DYNAMIC_VIRQ..last.saturating_sub(count))
            .find(|&base| !(base..base + count).any(taken))
            .ok_or(IrqError::NoSpace)
    }

    /// Allocate `req.count` irqs in `domain` for `source`: the vector level first, then
    /// every level outward. Undone completely on failure. Returns the first virq.
    ///
    /// A count > 1 is a multi-MSI block in one call (reserve + every member on
    /// consecutive virqs, torn down with its last member; see `block.rs`); a count
    /// that is not a power of two, or above 32, is `InvalidArgument` and changes nothing.
    pub fn alloc_irq(&self, domain: DomainId, source: &IrqSource, req: &IrqAlloc) -> Result<Virq> {
        let count = req.count.max(1);
        if count > 1 {
            return self.alloc_block_irqs(domain, source, req, count);
        }
        let mut reg = self.domains.lock();
        let chain = reg.chain(domain)?;
        let chips: Vec<Option<Arc<dyn DomainOps>>> = chain
            .iter()
            .map(|&id| reg.node(id).map(|n| n.ops.clone()))
            .collect::<Result<_>>()?;
        let virq = self.free_virqs(1, req.virq)?;
        // The cell first: a virq beyond the table fails before anything is allocated.
        let cell = self.descs.cell(virq)?;
        let trigger = match &chips[0] {
            Some(o) => o.translate(source)?.1,
            None => source.trigger(),
        };
        self.vector.lock().alloc(
            virq,
            &VectorAlloc {
                affinity: req.affinity,
                managed: req.managed,
                reserve: req.reserve,
                count: 1,
            },
        )?;
        let hw = match Self::alloc_levels(&chips, virq, 1, source) {
            Ok(hw) => hw,
            Err(e) => {
                let _ = self.vector.lock().free(virq);
                return Err(e);
            }
        };
        let levels = chain
            .iter()
            .enumerate()
            .map(|(i, &id)| Level {
                domain: id,
                hwirq: if i + 1 == chain.len() { 0 } else { hw[i] },
                chip: chips[i].clone(),
            })
            .collect();
        let target = self.vector.lock().irq(virq)?.target;
        let desc = self.new_desc(
            virq,
            *source,
            levels,
            req.flow,
            trigger,
            req.managed,
            target,
        );
        *cell.lock() = Some(desc);
        reg.count(&chain, 1);
        Ok(virq)
    }

    /// A fresh descriptor: masked, not requested.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_desc(
        &self,
        virq: Virq,
        source: IrqSource,
        levels: Vec<Level>,
        flow: FlowKind,
        trigger: crate::msi::Trigger,
        managed: bool,
        target: crate::hw::Target,
    ) -> IrqDesc {
        let queued = levels
            .iter()
            .any(|l| l.chip.as_deref().is_some_and(|c| c.queued()));
        IrqDesc {
            virq,
            name: String::new(),
            source,
            levels,
            flow,
            trigger,
            action: None,
            state: DescState {
                masked: true,
                ..DescState::default()
            },
            counts: alloc::vec![0; self.nr_cpus()],
            window_count: 0,
            window_unhandled: 0,
            last_unhandled_ns: None,
            unhandled_total: 0,
            managed,
            target,
            move_in_progress: false,
            queued,
        }
    }

    /// Hardware irqs of every level but the root, from the root's child outward (a
    /// remapping level chooses before the device level is asked); what was taken is
    /// given back if a level refuses.
    fn alloc_levels(
        chips: &[Option<Arc<dyn DomainOps>>],
        virq: Virq,
        count: u32,
        source: &IrqSource,
    ) -> Result<Vec<HwIrq>> {
        let levels = chips.len() - 1;
        let mut hw = alloc::vec![0; chips.len()];
        for i in (0..levels).rev() {
            let Some(ops) = &chips[i] else { continue };
            match ops.alloc(virq, count, source) {
                Ok(h) => hw[i] = h,
                Err(e) => {
                    for j in i + 1..levels {
                        if let Some(o) = &chips[j] {
                            o.free(virq, hw[j], count);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(hw)
    }

    /// Free `count` irqs from `virq` on, each on its own: irqs from [`Self::alloc_irq`]
    /// (pass the first virq and the same count), or one member of a multi-MSI block
    /// (`free_irq(member, 1)`: its vector stays in the block; a block made by
    /// `alloc_irq` goes back with its last member, one made by [`Self::reserve_block`]
    /// waits for [`Self::teardown_block`]). Refused (`Busy`) while any of them is
    /// requested, or still running a handler on some CPU (released meanwhile: retry once
    /// `end_irq` has run there, as Linux's `free_irq` waits for it).
    pub fn free_irq(&self, virq: Virq, count: u32) -> Result<()> {
        let mut reg = self.domains.lock();
        for k in 0..count {
            let d = self.desc(virq + k)?;
            if d.action.is_some() || d.state.in_progress {
                return Err(IrqError::Busy);
            }
        }
        // Empty the descriptors first: from here on a late arrival finds nothing and is
        // acknowledged, instead of reaching a chip whose entry is being freed.
        let mut taken = Vec::new();
        for k in 0..count {
            if let Some(c) = self.descs.get(virq + k)
                && let Some(d) = c.lock().take()
            {
                taken.push(d);
            }
        }
        for d in taken {
            if self.vector.lock().block_of(d.virq).is_some() {
                self.free_member_locked(&mut reg, d)?;
                continue;
            }
            for l in d.levels.iter().take(d.levels.len().saturating_sub(1)) {
                if let Some(o) = &l.chip {
                    o.free(d.virq, l.hwirq, 1);
                }
            }
            self.vector.lock().free(d.virq)?;
            let chain: Vec<DomainId> = d.levels.iter().map(|l| l.domain).collect();
            reg.count(&chain, -1);
            // A later irq with this number must not inherit hotplug records.
            self.hotplug.lock().forget(d.virq);
            self.deferred.lock().remove(&d.virq);
        }
        Ok(())
    }

    // ----- start, stop, mask ---------------------------------------------------------

    /// Attach a handler (identified by the kernel's `token`) and start the irq: activate
    /// (real vector), program every level, unmask.
    pub fn request_irq(&self, virq: Virq, token: u64, name: &str) -> Result<()> {
        self.with_desc(virq, |d| {
            if d.action.is_some() {
                return Err(IrqError::Busy);
            }
            if d.state.plan_pending {
                // Programming the new target now would skip the plan's safe order (a
                // non-maskable device, a block's shared message): after the plan ran.
                return Err(IrqError::Busy);
            }
            d.action = Some(token);
            d.name = String::from(name);
            let activated = self.vector_op(d, |vd| vd.activate(virq));
            if let Err(e) = activated.and_then(|_| self.program_levels(d, true)) {
                let _ = self.vector_op(d, |vd| vd.deactivate(virq));
                d.action = None;
                return Err(e);
            }
            d.state.started = true;
            d.state.disable_depth = 0;
            self.unmask_locked(d)
        })
    }

    /// Shut the irq down and detach its handler: mask, park every level on the shutdown
    /// vector, give the vector back (to a reservation where applicable).
    pub fn release_irq(&self, virq: Virq) -> Result<()> {
        self.with_desc(virq, |d| {
            if d.action.is_none() {
                return Err(IrqError::InvalidState);
            }
            self.mask_locked(d)?;
            // A block member keeps its vector (the block's alignment): masked is enough.
            let is_block = self.vector.lock().block_of(virq).is_some();
            if !is_block {
                self.vector_op(d, |vd| vd.deactivate(virq))?;
                self.program_levels(d, false)?;
            }
            d.action = None;
            // A handler still running on another CPU (its `end_irq` is to come, and
            // `free_irq` waits for it) outlives the handler's detachment. A plan still
            // to run is moot once the irq is parked (its move went with the vector; the
            // plan is refused if its IPI still comes), except a block's: the block keeps
            // its vectors and its move, for the members still requested.
            let (plan_pending, plan) = match is_block {
                true => (d.state.plan_pending, d.state.plan),
                false => (false, None),
            };
            d.state = DescState {
                masked: true,
                in_progress: d.state.in_progress,
                plan_pending,
                plan,
                queue_pending: d.state.queue_pending,
                ..DescState::default()
            };
            Ok(())
        })
    }

    pub(crate) fn mask_locked(&self, d: &mut IrqDesc) -> Result<()> {
        self.walk(d, |c, x| c.mask(x))?;
        d.state.masked = true;
        self.note_queued(d);
        Ok(())
    }

    pub(crate) fn unmask_locked(&self, d: &mut IrqDesc) -> Result<()> {
        self.walk(d, |c, x| c.unmask(x))?;
        d.state.masked = false;
        self.note_queued(d);
        Ok(())
    }

    /// Mask at the outermost level that can.
    pub fn mask(&self, virq: Virq) -> Result<()> {
        self.with_desc(virq, |d| self.mask_locked(d))
    }

    /// Unmask at the outermost level that can.
    pub fn unmask(&self, virq: Virq) -> Result<()> {
        self.with_desc(virq, |d| self.unmask_locked(d))
    }

    /// Retrigger: a chip that can re-raise at the source does; otherwise the root sends
    /// the irq's vector to its target CPU by IPI.
    pub fn retrigger(&self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        self.with_desc(virq, |d| self.retrigger_locked(d, apic))
    }

    pub(crate) fn retrigger_locked(&self, d: &mut IrqDesc, apic: &mut dyn LocalApic) -> Result<()> {
        if !self.walk(d, |c, x| c.retrigger(x))? {
            apic.send_ipi(d.target.cpu, d.target.vector);
        }
        Ok(())
    }

    /// Lazy disable: only mark. The line is masked if it fires while disabled.
    pub fn disable_irq(&self, virq: Virq) -> Result<()> {
        self.with_desc(virq, |d| {
            d.state.disable_depth += 1;
            Ok(())
        })
    }

    /// Undo one [`Self::disable_irq`]; at depth 0 unmask if the lazy path masked, and
    /// replay an interrupt that arrived while disabled.
    pub fn enable_irq(&self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        self.with_desc(virq, |d| {
            if d.state.disable_depth == 0 {
                return Err(IrqError::InvalidState);
            }
            d.state.disable_depth -= 1;
            if d.state.disable_depth > 0 {
                return Ok(());
            }
            d.state.storm_disabled = false;
            let (masked, pending) = (d.state.masked, d.state.pending);
            d.state.pending = false;
            if masked {
                self.unmask_locked(d)?;
            }
            if pending {
                self.retrigger_locked(d, apic)?;
            }
            Ok(())
        })
    }

    /// Names of the domains and chips of an irq, outermost first (`irq N`).
    pub fn irq_levels(&self, virq: Virq) -> Result<Vec<LevelInfo>> {
        let levels = self.desc(virq)?.levels;
        let reg = self.domains.lock();
        Ok(levels
            .iter()
            .map(|l| LevelInfo {
                domain_id: l.domain,
                domain: reg
                    .node(l.domain)
                    .map_or_else(|_| String::from("?"), |n| n.name.clone()),
                chip: l
                    .chip
                    .as_ref()
                    .map_or_else(|| String::from("APIC"), |c| String::from(c.name())),
                hwirq: l.hwirq,
            })
            .collect())
    }
}
