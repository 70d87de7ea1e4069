//! [`IrqCore`]: descriptors + domain tree + vector domain, and the operations that walk a
//! hierarchy (allocate, start, mask, retarget, execute plans).
//!
//! Locking (DESIGN §5): the kernel holds the core behind a lock. Conceptually the
//! descriptor table is the *descriptor lock* domain and [`IrqCore::vector`] the *vector
//! lock* domain; every method that needs both takes them in that order (descriptor first),
//! which is what a future split into per-descriptor locks must preserve. Driver handlers
//! run outside: [`IrqCore::begin_vector`] returns what to run and [`IrqCore::end_irq`] finishes
//! the flow, so the kernel can drop the lock in between.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::affinity::{Step, StepPlan};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use crate::cpumask::{CpuId, CpuMask};
use crate::desc::{DescState, FlowKind, IrqDesc, Level, StormPolicy};
use crate::domain::{DomainId, DomainInfo, DomainOps, FwSpec};
use crate::error::{IrqError, Result, Virq};
use crate::hw::{LocalApic, Target};
use crate::msi::{CompatMsi, DestFormat, MsiMsg, Trigger, compose};
use crate::vecdomain::{CleanupOutcome, MoveOutcome, VectorAlloc, VectorDomain};

struct DomainNode {
    name: String,
    parent: Option<DomainId>,
    /// `None` only for the root (vector domain, built in).
    ops: Option<Box<dyn DomainOps>>,
}

/// How to allocate an irq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqAlloc {
    /// CPUs it may target.
    pub affinity: CpuMask,
    /// Managed (kernel-fixed affinity, vector reserved on every CPU of the mask).
    pub managed: bool,
    /// Reservation mode (MSI): a real vector only when started.
    pub reserve: bool,
    /// Consecutive irqs / vectors (multi-MSI: power of two).
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
    /// Domain name.
    pub domain: String,
    /// Chip name (`APIC` for the root).
    pub chip: String,
    /// Hardware irq.
    pub hwirq: HwIrq,
}

/// First virq handed out when the caller does not ask for one (0..15 are legacy ISA).
pub const FIRST_DYNAMIC_VIRQ: Virq = 16;

/// The generic interrupt layer of one machine.
pub struct IrqCore {
    /// Descriptors by virq (descriptor lock).
    pub(crate) descs: Vec<Option<IrqDesc>>,
    domains: Vec<DomainNode>,
    /// The root domain (vector lock).
    pub vector: VectorDomain,
    pub(crate) storm: StormPolicy,
    dest_format: DestFormat,
    /// What CPU hotplug shut down or moved out of affinity, to undo on online.
    pub(crate) hotplug: crate::hotplug::HotplugState,
}

impl IrqCore {
    /// A core for `nr_cpus` possible CPUs (all offline: call [`Self::online_cpu`] for
    /// each CPU as it comes up).
    pub fn new(nr_cpus: usize) -> Result<Self> {
        Ok(Self {
            descs: Vec::new(),
            domains: alloc::vec![DomainNode {
                name: String::from("VECTOR"),
                parent: None,
                ops: None
            }],
            vector: VectorDomain::new(nr_cpus)?,
            storm: StormPolicy::default(),
            dest_format: DestFormat::XApic,
            hotplug: crate::hotplug::HotplugState::default(),
        })
    }

    /// Change storm-detection thresholds.
    pub fn set_storm_policy(&mut self, p: StormPolicy) -> Result<()> {
        if p.window == 0 || p.threshold > p.window {
            return Err(IrqError::InvalidArgument);
        }
        self.storm = p;
        Ok(())
    }

    /// Destination format for compatibility-format messages composed at the root.
    pub fn set_dest_format(&mut self, f: DestFormat) {
        self.dest_format = f;
    }

    /// Bring a CPU online at the vector level (see [`VectorDomain::online_cpu`]).
    pub fn online_cpu(&mut self, cpu: CpuId) -> Result<Vec<Virq>> {
        self.vector.online_cpu(cpu)
    }

    // ----- domains -------------------------------------------------------------------

    /// Register a domain under `parent` (hierarchy builder). Names must be unique.
    pub fn add_domain(
        &mut self,
        name: &str,
        parent: DomainId,
        ops: Box<dyn DomainOps>,
    ) -> Result<DomainId> {
        if parent.0 as usize >= self.domains.len() {
            return Err(IrqError::UnknownDomain);
        }
        if self.domains.iter().any(|d| d.name == name) {
            return Err(IrqError::Busy);
        }
        self.domains.push(DomainNode {
            name: String::from(name),
            parent: Some(parent),
            ops: Some(ops),
        });
        Ok(DomainId(self.domains.len() as u32 - 1))
    }

    /// Find a domain by name.
    pub fn domain_by_name(&self, name: &str) -> Option<DomainId> {
        self.domains
            .iter()
            .position(|d| d.name == name)
            .map(|i| DomainId(i as u32))
    }

    /// The first domain whose `select` accepts `spec`.
    pub fn select_domain(&self, spec: &FwSpec) -> Option<DomainId> {
        self.domains
            .iter()
            .position(|d| d.ops.as_ref().is_some_and(|o| o.select(spec)))
            .map(|i| DomainId(i as u32))
    }

    /// The domain tree in depth-first order, with sizes and allocation counts.
    pub fn domain_tree(&self) -> Vec<DomainInfo> {
        let mut out = Vec::new();
        self.tree_from(DomainId::VECTOR, 0, &mut out);
        out
    }

    fn tree_from(&self, id: DomainId, depth: usize, out: &mut Vec<DomainInfo>) {
        let n = &self.domains[id.0 as usize];
        let allocated = self
            .descs
            .iter()
            .flatten()
            .filter(|d| d.levels.iter().any(|l| l.domain == id))
            .count() as u32;
        let size = match &n.ops {
            Some(o) => o.size(),
            None => self.vector.matrix().nr_cpus() as u32 * crate::vector::NR_DEVICE_VECTORS,
        };
        out.push(DomainInfo {
            id,
            name: n.name.clone(),
            parent: n.parent,
            depth,
            size,
            allocated,
        });
        for (i, c) in self.domains.iter().enumerate() {
            if c.parent == Some(id) {
                self.tree_from(DomainId(i as u32), depth + 1, out);
            }
        }
    }

    /// Chain of domains from `d` to the root (inclusive).
    fn chain(&self, d: DomainId) -> Result<Vec<DomainId>> {
        let mut v = Vec::new();
        let mut cur = Some(d);
        while let Some(id) = cur {
            let n = self
                .domains
                .get(id.0 as usize)
                .ok_or(IrqError::UnknownDomain)?;
            v.push(id);
            cur = n.parent;
            if v.len() > self.domains.len() {
                return Err(IrqError::InvalidState);
            }
        }
        Ok(v)
    }

    // ----- descriptors ---------------------------------------------------------------

    /// A descriptor.
    pub fn desc(&self, virq: Virq) -> Result<&IrqDesc> {
        self.descs
            .get(virq as usize)
            .and_then(|d| d.as_ref())
            .ok_or(IrqError::UnknownIrq(virq))
    }

    pub(crate) fn desc_mut(&mut self, virq: Virq) -> Result<&mut IrqDesc> {
        self.descs
            .get_mut(virq as usize)
            .and_then(|d| d.as_mut())
            .ok_or(IrqError::UnknownIrq(virq))
    }

    /// All descriptors.
    pub fn descs(&self) -> impl Iterator<Item = &IrqDesc> {
        self.descs.iter().flatten()
    }

    fn free_virqs(&self, count: u32, at: Option<Virq>) -> Result<Virq> {
        let taken = |v: Virq| self.descs.get(v as usize).is_some_and(|d| d.is_some());
        if let Some(v) = at {
            if (v..v + count).any(taken) {
                return Err(IrqError::Busy);
            }
            return Ok(v);
        }
        let mut base = FIRST_DYNAMIC_VIRQ;
        loop {
            if !(base..base + count).any(taken) {
                return Ok(base);
            }
            base += 1;
        }
    }

    /// Allocate `req.count` irqs in `domain` for `spec`: the vector level first, then every
    /// level outward. Undone completely on failure. Returns the first virq.
    pub fn alloc_irq(&mut self, domain: DomainId, spec: &FwSpec, req: &IrqAlloc) -> Result<Virq> {
        let chain = self.chain(domain)?;
        let virq = self.free_virqs(req.count.max(1), req.virq)?;
        let trigger = match &self.domains[domain.0 as usize].ops {
            Some(o) => o.translate(spec)?.1,
            None => Trigger::Edge,
        };
        let valloc = VectorAlloc {
            affinity: req.affinity,
            managed: req.managed,
            reserve: req.reserve,
            count: req.count,
        };
        self.vector.alloc(virq, &valloc)?;
        // Levels from the root's child outward.
        let mut hw: Vec<HwIrq> = alloc::vec![0; chain.len()];
        for i in (0..chain.len() - 1).rev() {
            let Some(ops) = self.domains[chain[i].0 as usize].ops.as_mut() else {
                continue;
            };
            match ops.alloc(virq, req.count, spec) {
                Ok(h) => hw[i] = h,
                Err(e) => {
                    for j in i + 1..chain.len() - 1 {
                        if let Some(o) = self.domains[chain[j].0 as usize].ops.as_mut() {
                            o.free(virq, hw[j], req.count);
                        }
                    }
                    let _ = self.vector.free(virq);
                    return Err(e);
                }
            }
        }
        let nr_cpus = self.vector.nr_cpus();
        let last = (virq + req.count) as usize;
        if self.descs.len() < last {
            self.descs.resize_with(last, || None);
        }
        for k in 0..req.count {
            let levels = chain
                .iter()
                .enumerate()
                .map(|(i, &d)| Level {
                    domain: d,
                    hwirq: if i + 1 == chain.len() {
                        0
                    } else {
                        hw[i] + k as u64
                    },
                })
                .collect();
            self.descs[(virq + k) as usize] = Some(IrqDesc {
                virq: virq + k,
                name: String::new(),
                levels,
                flow: req.flow,
                trigger,
                action: None,
                state: DescState {
                    masked: true,
                    ..DescState::default()
                },
                counts: alloc::vec![0; nr_cpus],
                window_count: 0,
                window_unhandled: 0,
                last_unhandled_ns: None,
                unhandled_total: 0,
                managed: req.managed,
            });
        }
        Ok(virq)
    }

    /// Free irqs from [`Self::alloc_irq`] (pass the first virq and the same count).
    /// Refused while requested.
    pub fn free_irq(&mut self, virq: Virq, count: u32) -> Result<()> {
        for k in 0..count {
            if self.desc(virq + k)?.action.is_some() {
                return Err(IrqError::Busy);
            }
        }
        let levels = self.desc(virq)?.levels.clone();
        for l in &levels[..levels.len() - 1] {
            if let Some(o) = self.domains[l.domain.0 as usize].ops.as_mut() {
                o.free(virq, l.hwirq, count);
            }
        }
        // A multi-vector block is freed as one (the vector domain frees the whole block).
        self.vector.free(virq)?;
        for k in 0..count {
            self.descs[(virq + k) as usize] = None;
            // A later irq with this number must not inherit hotplug records.
            self.hotplug.forget(virq + k);
        }
        Ok(())
    }

    fn ctx(&self, virq: Virq, level: usize) -> Result<LevelCtx> {
        let d = self.desc(virq)?;
        let l = d.levels.get(level).ok_or(IrqError::InvalidArgument)?;
        let target = self.vector.irq(virq)?.target;
        Ok(LevelCtx {
            virq,
            hwirq: l.hwirq,
            level,
            target,
            trigger: d.trigger,
        })
    }

    fn ops_for(&mut self, virq: Virq, level: usize) -> Result<Option<&mut Box<dyn DomainOps>>> {
        let dom = self
            .desc(virq)?
            .levels
            .get(level)
            .ok_or(IrqError::InvalidArgument)?
            .domain;
        Ok(self.domains[dom.0 as usize].ops.as_mut())
    }

    /// Walk a chip operation from the outermost level towards the root until a level
    /// returns [`ChipOp::Done`]. Returns whether some level (not the root) handled it.
    pub(crate) fn walk(
        &mut self,
        virq: Virq,
        mut f: impl FnMut(&mut dyn Chip, &LevelCtx) -> Result<ChipOp>,
    ) -> Result<bool> {
        let n = self.desc(virq)?.levels.len();
        for i in 0..n - 1 {
            let ctx = self.ctx(virq, i)?;
            if let Some(o) = self.ops_for(virq, i)? {
                let chip: &mut dyn Chip = o.as_mut();
                if f(chip, &ctx)? == ChipOp::Done {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Compose the message that reaches `target` as seen from above `level`.
    pub fn compose_below(&mut self, virq: Virq, level: usize, target: &Target) -> Result<MsiMsg> {
        let n = self.desc(virq)?.levels.len();
        for i in level + 1..n - 1 {
            let ctx = self.ctx(virq, i)?;
            if let Some(o) = self.ops_for(virq, i)?
                && let Some(m) = o.compose_msi_msg(&ctx, target)?
            {
                return Ok(m);
            }
        }
        let trigger = self.desc(virq)?.trigger;
        compose(
            &CompatMsi {
                trigger,
                ..CompatMsi::fixed(target.apic_id, target.vector)
            },
            self.dest_format,
        )
    }

    /// Mask at the outermost level that can.
    pub fn mask(&mut self, virq: Virq) -> Result<()> {
        self.walk(virq, |c, d| c.mask(d))?;
        self.desc_mut(virq)?.state.masked = true;
        Ok(())
    }

    /// Unmask at the outermost level that can.
    pub fn unmask(&mut self, virq: Virq) -> Result<()> {
        self.walk(virq, |c, d| c.unmask(d))?;
        self.desc_mut(virq)?.state.masked = false;
        Ok(())
    }

    /// Retrigger: a chip that can re-raise at the source does; otherwise the root sends
    /// the irq's vector to its target CPU by IPI.
    pub fn retrigger(&mut self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        if !self.walk(virq, |c, d| c.retrigger(d))? {
            let t = self.vector.irq(virq)?.target;
            apic.send_ipi(t.cpu, t.vector);
        }
        Ok(())
    }

    /// Program every level for the current target, innermost first.
    pub(crate) fn program_levels(&mut self, virq: Virq, activate: bool) -> Result<()> {
        let n = self.desc(virq)?.levels.len();
        let target = self.vector.irq(virq)?.target;
        for i in (0..n - 1).rev() {
            let msg = self.compose_below(virq, i, &target)?;
            let ctx = self.ctx(virq, i)?;
            if let Some(o) = self.ops_for(virq, i)? {
                if activate {
                    o.activate(&ctx, &msg)?
                } else {
                    o.deactivate(&ctx, &msg)?
                }
            }
        }
        Ok(())
    }

    /// Attach a handler (identified by the kernel's `token`) and start the irq: activate
    /// (real vector), program every level, unmask.
    pub fn request_irq(&mut self, virq: Virq, token: u64, name: &str) -> Result<()> {
        let d = self.desc_mut(virq)?;
        if d.action.is_some() {
            return Err(IrqError::Busy);
        }
        d.action = Some(token);
        d.name = String::from(name);
        if let Err(e) = self
            .vector
            .activate(virq)
            .and_then(|_| self.program_levels(virq, true))
        {
            let _ = self.vector.deactivate(virq);
            self.desc_mut(virq)?.action = None;
            return Err(e);
        }
        let d = self.desc_mut(virq)?;
        d.state.started = true;
        d.state.disable_depth = 0;
        self.unmask(virq)
    }

    /// Shut the irq down and detach its handler: mask, park every level on the shutdown
    /// vector, give the vector back (to a reservation where applicable).
    pub fn release_irq(&mut self, virq: Virq) -> Result<()> {
        if self.desc(virq)?.action.is_none() {
            return Err(IrqError::InvalidState);
        }
        self.mask(virq)?;
        if self.vector.irq(virq)?.block.1 == 1 {
            self.vector.deactivate(virq)?;
            self.program_levels(virq, false)?;
        }
        let d = self.desc_mut(virq)?;
        d.action = None;
        d.state = DescState {
            masked: true,
            ..DescState::default()
        };
        Ok(())
    }

    /// Lazy disable: only mark. The line is masked if it fires while disabled.
    pub fn disable_irq(&mut self, virq: Virq) -> Result<()> {
        self.desc_mut(virq)?.state.disable_depth += 1;
        Ok(())
    }

    /// Undo one [`Self::disable_irq`]; at depth 0 unmask if the lazy path masked, and
    /// replay an interrupt that arrived while disabled.
    pub fn enable_irq(&mut self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        let d = self.desc_mut(virq)?;
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
            self.unmask(virq)?;
        }
        if pending {
            self.retrigger(virq, apic)?;
        }
        Ok(())
    }

    // ----- affinity ------------------------------------------------------------------

    /// Change an irq's affinity. Returns the plan that retargets its hardware, to be run
    /// with [`Self::run_plan`] on `plan.run_on` (if set) with interrupts off (if
    /// `plan.irqs_off`), or `None` if nothing had to be rewritten. `force_new_vector`
    /// moves even if the current CPU is in `mask` (single-CPU demonstration).
    pub fn set_affinity(
        &mut self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<Option<StepPlan>> {
        if self.desc(virq)?.managed {
            return Err(IrqError::ManagedAffinity);
        }
        let outcome = self.vector.set_affinity(virq, mask, force_new_vector)?;
        // The user chose a new affinity: an offline CPU's irq no longer waits to go back.
        self.hotplug.broken.remove(&virq);
        match outcome {
            MoveOutcome::Unchanged => Ok(None),
            MoveOutcome::Moved { old, new } => self.plan_retarget(virq, old, new),
        }
    }

    /// Ask the levels, innermost first, which one must rewrite its hardware for a move.
    pub fn plan_retarget(
        &mut self,
        virq: Virq,
        old: Target,
        new: Target,
    ) -> Result<Option<StepPlan>> {
        let n = self.desc(virq)?.levels.len();
        for i in (0..n - 1).rev() {
            let mid = Target {
                vector: new.vector,
                ..old
            };
            let msgs = AffinityMsgs {
                old: self.compose_below(virq, i, &old)?,
                new: self.compose_below(virq, i, &new)?,
                intermediate: self.compose_below(virq, i, &mid)?,
            };
            let ctx = self.ctx(virq, i)?;
            if let Some(o) = self.ops_for(virq, i)?
                && let Some(mut plan) = o.set_affinity(&ctx, &old, &new, &msgs)?
            {
                // A chip's mask-write-unmask plan ends unmasked; an irq that was masked
                // (disabled, lazily masked, parked) must stay masked after the move.
                if self.desc(virq)?.state.masked {
                    plan.steps.retain(|s| *s != Step::Unmask);
                }
                return Ok(Some(plan));
            }
        }
        Ok(None)
    }

    /// Execute step `i` of `plan` on the calling CPU (same code for kernel and simulator).
    pub fn run_step(
        &mut self,
        virq: Virq,
        plan: &StepPlan,
        i: usize,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        let step = plan.steps.get(i).ok_or(IrqError::InvalidArgument)?;
        match *step {
            Step::ClaimTransient(v) => {
                self.vector.claim_transient(apic.current_cpu(), v);
                Ok(())
            }
            Step::CheckIrrRetrigger(v) => {
                if apic.irr_pending(v) {
                    self.retrigger(virq, apic)?;
                }
                Ok(())
            }
            _ => {
                let target = self.vector.irq(virq)?.target;
                let msg = self.compose_below(virq, plan.level, &target)?;
                let ctx = self.ctx(virq, plan.level)?;
                match self.ops_for(virq, plan.level)? {
                    Some(o) => o.exec_step(&ctx, plan.index, step, &msg),
                    None => Err(IrqError::InvalidArgument),
                }
            }
        }
    }

    /// Execute a whole plan. Refuses (doing nothing) if it must run on another CPU.
    pub fn run_plan(
        &mut self,
        virq: Virq,
        plan: &StepPlan,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        if let Some(cpu) = plan.run_on
            && cpu != apic.current_cpu()
        {
            return Err(IrqError::InvalidCpu(cpu));
        }
        for i in 0..plan.steps.len() {
            self.run_step(virq, plan, i, apic)?;
        }
        Ok(())
    }

    /// The cleanup IPI handler ([`crate::vector::VECTOR_CLEANUP_VECTOR`]): free old vectors
    /// on this CPU. If `retry > 0`, re-arm from a timer, not a self-IPI: the cleanup vector
    /// outranks device vectors, so an immediate self-IPI would be served before the pending
    /// device interrupt it waits for, for ever.
    pub fn vector_cleanup(&mut self, apic: &mut dyn LocalApic) -> CleanupOutcome {
        let cpu = apic.current_cpu();
        self.vector.cleanup(cpu, &|v| apic.irr_pending(v))
    }

    /// Names of the domains and chips of an irq, outermost first (`irq N`).
    pub fn irq_levels(&self, virq: Virq) -> Result<Vec<LevelInfo>> {
        let d = self.desc(virq)?;
        Ok(d.levels
            .iter()
            .map(|l| {
                let n = &self.domains[l.domain.0 as usize];
                LevelInfo {
                    domain: n.name.clone(),
                    chip: n
                        .ops
                        .as_ref()
                        .map(|o| String::from(o.name()))
                        .unwrap_or_else(|| String::from("APIC")),
                    hwirq: l.hwirq,
                }
            })
            .collect())
    }
}
