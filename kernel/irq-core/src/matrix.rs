//! The per-CPU vector matrix: who owns which vector on which CPU.
//!
//! This is bookkeeping only — it knows nothing of descriptors or hardware. The vector
//! domain ([`crate::vecdomain`]) drives it. Rules (Linux behaviours, REFERENCE.md §Linux):
//!
//! * System vectors ([`crate::vector::SYSTEM_VECTORS`]) and 0x00..0x1f are never handed out.
//! * Unmanaged allocation: the online CPU of the requested mask with the most available
//!   vectors (ties: lowest CPU number), and on it the lowest free vector.
//! * Managed interrupts reserve one vector on *every* CPU of their mask up front (online or
//!   not), so bringing a CPU back or moving within the mask never fails for lack of space;
//!   activation then allocates one of those reserved vectors.
//! * Reservations (reservation mode for MSI): a global count of "some vector on some online
//!   CPU will be there when this irq starts". Unreserved allocations may not eat into it:
//!   `global_available >= global_reserved` is kept by every operation except a forced
//!   [`VectorMatrix::offline`], which is why [`VectorMatrix::can_offline`] exists.
//! * Multi-vector blocks: 2^k contiguous vectors aligned to 2^k on one CPU (a multi-MSI
//!   device ORs the message number into the low data bits, so the base must be aligned).
//! * Steering ([`Steer`], hotplug only): the CPU is chosen exactly as above; on it, the
//!   vector (or block base) is the preferred one if free, else the lowest free one not in
//!   the avoid set, else the lowest free one — each among the vectors with no retriggered
//!   IRR bit due there if there is any. Where on the CPU a vector sits changes nothing in
//!   these counts, so a steered allocation succeeds exactly when an unsteered one would.
//!
//! Locking: the matrix is part of the vector domain and protected by the vector lock.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::cpumask::{CpuId, CpuMask, MAX_CPUS};
use crate::error::{IrqError, Result};
use crate::routes::{Routes, Slot};
use crate::vector::{VecMap, Vector};

/// Per-CPU state.
#[derive(Clone, Copy, Debug, Default)]
struct CpuVectors {
    online: bool,
    /// Vectors handed out (managed or not). Never intersects the system vectors.
    alloc: VecMap,
    /// Vectors set aside for managed irqs (allocated or not).
    managed: VecMap,
    /// `|device & !alloc & !managed|`: what an unmanaged allocation could still get here.
    available: u32,
}

/// Counters for one CPU, as shown by the `vectors` shell command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuVectorStats {
    /// Is the CPU's matrix online?
    pub online: bool,
    /// Vectors in use (managed + unmanaged).
    pub allocated: u32,
    /// Vectors still available for unmanaged allocation.
    pub available: u32,
    /// Vectors reserved for managed irqs.
    pub managed: u32,
    /// Of those, how many are in use.
    pub managed_allocated: u32,
}

/// Which vector to take on the chosen CPU, for an irq whose two-step move passes through
/// its old CPU (see `hotplug.rs`): `prefer` (the vector, or block base, it has now —
/// taking the same one there means only the destination word changes, so there is no
/// intermediate message at all), else one outside `avoid` (vectors that something else
/// could raise on the old CPU, where the intermediate message would share an IRR bit).
/// Whatever it picks, a vector whose slot on the chosen CPU still has a retriggered IRR
/// bit due ([`Slot::RetriggeredPending`], read from `due`) is taken only if nothing else
/// is free there: that bit would arrive as the new owner's interrupt.
#[derive(Clone, Default)]
pub struct Steer {
    /// Take this vector (this base, for a block) if it is free.
    pub prefer: Option<Vector>,
    /// Else keep clear of these (a block: of every vector of its run).
    pub avoid: VecMap,
    /// The per-CPU tables, to keep clear of slots with a retriggered bit due.
    pub due: Option<Arc<Routes>>,
}

impl core::fmt::Debug for Steer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Steer")
            .field("prefer", &self.prefer)
            .field("avoid", &self.avoid)
            .field("due", &self.due.is_some())
            .finish()
    }
}

impl Steer {
    /// `free` on `cpu` without the vectors whose slot has a retriggered bit due.
    fn usable(&self, cpu: CpuId, free: &VecMap) -> VecMap {
        let Some(routes) = &self.due else {
            return *free;
        };
        let mut out = *free;
        for v in free.iter() {
            if routes.get(cpu, v) == Slot::RetriggeredPending {
                out.clear(v);
            }
        }
        out
    }

    /// The vector to take among `free` on `cpu` (non-empty): see [`Steer`].
    fn pick(&self, cpu: CpuId, free: &VecMap) -> Option<Vector> {
        let usable = self.usable(cpu, free);
        let free = if usable.first().is_some() {
            &usable
        } else {
            free
        };
        if let Some(p) = self.prefer.filter(|&p| free.test(p)) {
            return Some(p);
        }
        free.and_not(&self.avoid).first().or_else(|| free.first())
    }

    /// The base of a free aligned run of `count` among `free` on `cpu`: see [`Steer`].
    fn pick_run(&self, cpu: CpuId, free: &VecMap, count: u32) -> Option<u8> {
        let usable = self.usable(cpu, free);
        self.pick_run_in(&usable, count)
            .or_else(|| self.pick_run_in(free, count))
    }

    fn pick_run_in(&self, free: &VecMap, count: u32) -> Option<u8> {
        let fits = |b: u32| free.has_range(b as u8, count);
        let runs = || (0x20u32..=256 - count).step_by(count as usize);
        if let Some(p) = self.prefer.map(|p| u32::from(p.0))
            && p.is_multiple_of(count)
            && (0x20..=256 - count).contains(&p)
            && fits(p)
        {
            return Some(p as u8);
        }
        let clear = |b: u32| (0..count).all(|i| !self.avoid.test(Vector((b + i) as u8)));
        runs()
            .find(|&b| fits(b) && clear(b))
            .or_else(|| runs().find(|&b| fits(b)))
            .map(|b| b as u8)
    }
}

/// The vector matrix of a machine with `nr_cpus` possible CPUs.
#[derive(Clone, Debug)]
pub struct VectorMatrix {
    cpus: Vec<CpuVectors>,
    /// Vectors an external interrupt may use (0x20..=0xff minus system vectors).
    device: VecMap,
    online: CpuMask,
    /// Online CPUs on their way out (CPU offline's first stage): nothing new is placed
    /// on them, whatever the mask asked for. Cleared when the CPU goes offline or the
    /// offline is called off.
    draining: CpuMask,
    /// Sum of `available` over online CPUs.
    global_available: u32,
    /// Outstanding reservations (not yet backed by a vector).
    global_reserved: u32,
    /// Vectors handed out on all CPUs.
    total_allocated: u32,
}

impl VectorMatrix {
    /// A matrix for `nr_cpus` possible CPUs, all offline.
    pub fn new(nr_cpus: usize) -> Result<Self> {
        if nr_cpus == 0 || nr_cpus > MAX_CPUS {
            return Err(IrqError::InvalidArgument);
        }
        let device = VecMap::device_vectors();
        let cpu = CpuVectors {
            online: false,
            alloc: VecMap::new(),
            managed: VecMap::new(),
            available: device.count(),
        };
        Ok(Self {
            cpus: alloc::vec![cpu; nr_cpus],
            device,
            online: CpuMask::new(),
            draining: CpuMask::new(),
            global_available: 0,
            global_reserved: 0,
            total_allocated: 0,
        })
    }

    /// Number of possible CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// CPUs whose matrix is online.
    pub fn online_mask(&self) -> &CpuMask {
        &self.online
    }

    /// Is `cpu` online in the matrix?
    pub fn is_online(&self, cpu: CpuId) -> bool {
        self.online.contains(cpu)
    }

    /// May something new be placed on `cpu` (online and not draining)?
    pub fn is_placeable(&self, cpu: CpuId) -> bool {
        self.online.contains(cpu) && !self.draining.contains(cpu)
    }

    /// Online CPUs on their way out.
    pub fn draining_mask(&self) -> &CpuMask {
        &self.draining
    }

    /// Mark an online `cpu` as draining (or not): allocation and moves leave it alone.
    pub fn set_draining(&mut self, cpu: CpuId, on: bool) -> Result<()> {
        let c = self.cpu(cpu)?;
        if on && !c.online {
            return Err(IrqError::OfflineTarget(cpu));
        }
        if on {
            self.draining.set(cpu);
        } else {
            self.draining.clear(cpu);
        }
        Ok(())
    }

    fn cpu(&self, cpu: CpuId) -> Result<&CpuVectors> {
        self.cpus.get(cpu as usize).ok_or(IrqError::InvalidCpu(cpu))
    }

    fn cpu_mut(&mut self, cpu: CpuId) -> Result<&mut CpuVectors> {
        self.cpus
            .get_mut(cpu as usize)
            .ok_or(IrqError::InvalidCpu(cpu))
    }

    /// Bring a CPU's vectors into service. Idempotent.
    pub fn online(&mut self, cpu: CpuId) -> Result<()> {
        let c = self.cpu_mut(cpu)?;
        if c.online {
            return Ok(());
        }
        c.online = true;
        let avail = c.available;
        self.global_available += avail;
        self.online.set(cpu);
        self.draining.clear(cpu);
        Ok(())
    }

    /// Take a CPU's vectors out of service. Vectors still allocated on it stay recorded
    /// until freed (hotplug migration frees them). Call [`Self::can_offline`] first: this
    /// does not refuse. Idempotent.
    pub fn offline(&mut self, cpu: CpuId) -> Result<()> {
        let c = self.cpu_mut(cpu)?;
        if !c.online {
            return Ok(());
        }
        c.online = false;
        let avail = c.available;
        self.global_available -= avail;
        self.online.clear(cpu);
        self.draining.clear(cpu);
        Ok(())
    }

    /// Can `cpu` go offline? The other online CPUs must absorb its unmanaged vectors while
    /// still honouring every outstanding reservation. (Managed vectors need no new room:
    /// they either have a reservation on another CPU of their mask or are shut down.)
    pub fn can_offline(&self, cpu: CpuId) -> Result<()> {
        let c = self.cpu(cpu)?;
        if !c.online {
            return Err(IrqError::OfflineTarget(cpu));
        }
        if self.online.weight() <= 1 {
            return Err(IrqError::LastCpu);
        }
        let to_move = c.alloc.and_not(&c.managed).count();
        let others = self.global_available - c.available;
        if others < to_move + self.global_reserved {
            return Err(IrqError::NoSpace);
        }
        Ok(())
    }

    /// Take one reservation (reservation mode MSI): a promise that one unmanaged vector
    /// will be available on some online CPU when the irq starts.
    pub fn reserve(&mut self) -> Result<()> {
        if self.global_available <= self.global_reserved {
            return Err(IrqError::NoSpace);
        }
        self.global_reserved += 1;
        Ok(())
    }

    /// Give back a reservation that was never turned into a vector.
    pub fn remove_reserved(&mut self) -> Result<()> {
        if self.global_reserved == 0 {
            return Err(IrqError::InvalidState);
        }
        self.global_reserved -= 1;
        Ok(())
    }

    /// Pick the online CPU of `mask` among those for which `ok` holds, with the largest
    /// `score` (lowest id on ties).
    fn pick_cpu(
        &self,
        mask: &CpuMask,
        ok: impl Fn(&CpuVectors) -> bool,
        score: impl Fn(&CpuVectors) -> i64,
    ) -> Result<CpuId> {
        if mask.is_empty() {
            return Err(IrqError::InvalidMask);
        }
        let cand = mask.and(&self.online).and_not(&self.draining);
        let mut best: Option<(CpuId, i64)> = None;
        for cpu in cand.iter() {
            let Some(c) = self.cpus.get(cpu as usize) else {
                break;
            };
            if ok(c) && best.is_none_or(|(_, b)| score(c) > b) {
                best = Some((cpu, score(c)));
            }
        }
        match best {
            Some((cpu, _)) => Ok(cpu),
            None if cand.is_empty() => {
                let first = mask.first().unwrap_or(0);
                if first as usize >= self.cpus.len() {
                    Err(IrqError::InvalidMask)
                } else {
                    Err(IrqError::OfflineTarget(first))
                }
            }
            None => Err(IrqError::NoSpace),
        }
    }

    /// Pick the online CPU of `mask` with the most available vectors (lowest id on ties)
    /// among those for which `ok` holds.
    fn best_cpu(&self, mask: &CpuMask, ok: impl Fn(&CpuVectors) -> bool) -> Result<CpuId> {
        self.pick_cpu(mask, ok, |c| i64::from(c.available))
    }

    /// Allocate one unmanaged vector on the online CPU of `mask` with the most available
    /// vectors. `reserved` consumes one earlier [`Self::reserve`]; an unreserved
    /// allocation is refused if it would break outstanding reservations.
    pub fn alloc(&mut self, mask: &CpuMask, reserved: bool) -> Result<(CpuId, Vector)> {
        self.alloc_steered(mask, reserved, &Steer::default())
    }

    /// [`Self::alloc`], the vector on the chosen CPU picked as `steer` says.
    pub fn alloc_steered(
        &mut self,
        mask: &CpuMask,
        reserved: bool,
        steer: &Steer,
    ) -> Result<(CpuId, Vector)> {
        if reserved && self.global_reserved == 0 {
            return Err(IrqError::InvalidState);
        }
        if !reserved && self.global_available <= self.global_reserved {
            return Err(IrqError::NoSpace);
        }
        let cpu = self.best_cpu(mask, |c| c.available > 0)?;
        let device = self.device;
        let c = &mut self.cpus[cpu as usize];
        let free = device.and_not(&c.alloc).and_not(&c.managed);
        let v = steer.pick(cpu, &free).ok_or(IrqError::NoSpace)?;
        c.alloc.set(v);
        c.available -= 1;
        self.global_available -= 1;
        self.total_allocated += 1;
        if reserved {
            self.global_reserved -= 1;
        }
        Ok((cpu, v))
    }

    /// Allocate `count` (a power of two, 1..=32) contiguous vectors aligned to `count` on a
    /// single online CPU of `mask` — multi-MSI without interrupt remapping. Prefers the CPU
    /// with the most available vectors that has such a block. Returns the base vector.
    pub fn alloc_block(&mut self, mask: &CpuMask, count: u32) -> Result<(CpuId, Vector)> {
        self.alloc_block_steered(mask, count, &Steer::default())
    }

    /// [`Self::alloc_block`], the run on the chosen CPU picked as `steer` says.
    pub fn alloc_block_steered(
        &mut self,
        mask: &CpuMask,
        count: u32,
        steer: &Steer,
    ) -> Result<(CpuId, Vector)> {
        if !count.is_power_of_two() || count > 32 {
            return Err(IrqError::InvalidArgument);
        }
        if self.global_available < self.global_reserved + count {
            return Err(IrqError::NoSpace);
        }
        let device = self.device;
        let find = |c: &CpuVectors| -> Option<u8> {
            if c.available < count {
                return None;
            }
            let free = device.and_not(&c.alloc).and_not(&c.managed);
            (0x20u32..=256 - count)
                .step_by(count as usize)
                .find(|&b| free.has_range(b as u8, count))
                .map(|b| b as u8)
        };
        let cpu = self.best_cpu(mask, |c| find(c).is_some())?;
        let c = &mut self.cpus[cpu as usize];
        let free = device.and_not(&c.alloc).and_not(&c.managed);
        let base = steer.pick_run(cpu, &free, count).ok_or(IrqError::NoSpace)?;
        for i in 0..count {
            c.alloc.set(Vector(base + i as u8));
        }
        c.available -= count;
        self.global_available -= count;
        self.total_allocated += count;
        Ok((cpu, Vector(base)))
    }

    /// Free a block from [`Self::alloc_block`] in one go.
    pub fn free_block(&mut self, cpu: CpuId, base: Vector, count: u32) -> Result<()> {
        if !count.is_power_of_two() || count > 32 || !(base.0 as u32).is_multiple_of(count) {
            return Err(IrqError::InvalidArgument);
        }
        let c = self.cpu(cpu)?;
        for i in 0..count {
            let v = Vector(base.0 + i as u8);
            if !c.alloc.test(v) || c.managed.test(v) {
                return Err(IrqError::InvalidVector(v));
            }
        }
        for i in 0..count {
            self.free(cpu, Vector(base.0 + i as u8))?;
        }
        Ok(())
    }

    /// Reserve one vector on every CPU of `mask` for a managed irq. All or nothing.
    pub fn reserve_managed(&mut self, mask: &CpuMask) -> Result<()> {
        if mask.is_empty() {
            return Err(IrqError::InvalidMask);
        }
        let mut online_cost = 0;
        for cpu in mask.iter() {
            let c = self.cpu(cpu).map_err(|_| IrqError::InvalidMask)?;
            if c.available == 0 {
                return Err(IrqError::NoSpace);
            }
            if c.online {
                online_cost += 1;
            }
        }
        if self.global_available < self.global_reserved + online_cost {
            return Err(IrqError::NoSpace);
        }
        let device = self.device;
        for cpu in mask.iter() {
            let c = &mut self.cpus[cpu as usize];
            // `available > 0` was checked above, so a free vector exists.
            if let Some(v) = device.and_not(&c.alloc).and_not(&c.managed).first() {
                c.managed.set(v);
                c.available -= 1;
                if c.online {
                    self.global_available -= 1;
                }
            }
        }
        Ok(())
    }

    /// Release the managed reservations taken by [`Self::reserve_managed`] for `mask`.
    /// Each CPU must still have an unallocated managed vector (free the irq first).
    pub fn remove_managed(&mut self, mask: &CpuMask) -> Result<()> {
        for cpu in mask.iter() {
            let c = self.cpu(cpu).map_err(|_| IrqError::InvalidMask)?;
            if c.managed.and_not(&c.alloc).first().is_none() {
                return Err(IrqError::InvalidState);
            }
        }
        for cpu in mask.iter() {
            let c = &mut self.cpus[cpu as usize];
            if let Some(v) = c.managed.and_not(&c.alloc).first() {
                c.managed.clear(v);
                c.available += 1;
                if c.online {
                    self.global_available += 1;
                }
            }
        }
        Ok(())
    }

    /// Allocate a managed vector: one of the reserved vectors on the online CPU of `mask`
    /// with the fewest managed vectors in use (spreads managed irqs).
    pub fn alloc_managed(&mut self, mask: &CpuMask) -> Result<(CpuId, Vector)> {
        self.alloc_managed_steered(mask, &Steer::default())
    }

    /// [`Self::alloc_managed`], choosing among the CPU's reserved vectors as `steer` says.
    pub fn alloc_managed_steered(
        &mut self,
        mask: &CpuMask,
        steer: &Steer,
    ) -> Result<(CpuId, Vector)> {
        let cpu = self.pick_cpu(
            mask,
            |c| c.managed.and_not(&c.alloc).first().is_some(),
            |c| -i64::from(c.managed.and(&c.alloc).count()),
        )?;
        let c = &mut self.cpus[cpu as usize];
        let v = steer
            .pick(cpu, &c.managed.and_not(&c.alloc))
            .ok_or(IrqError::NoSpace)?;
        c.alloc.set(v);
        self.total_allocated += 1;
        Ok((cpu, v))
    }

    /// Free one vector (managed or not) on `cpu`. A managed vector goes back to its
    /// reservation; an unmanaged one becomes available again.
    pub fn free(&mut self, cpu: CpuId, v: Vector) -> Result<()> {
        let c = self.cpu_mut(cpu)?;
        if !c.alloc.test(v) {
            return Err(IrqError::InvalidVector(v));
        }
        c.alloc.clear(v);
        let (managed, online) = (c.managed.test(v), c.online);
        if !managed {
            c.available += 1;
            if online {
                self.global_available += 1;
            }
        }
        self.total_allocated -= 1;
        Ok(())
    }

    /// Is `v` allocated on `cpu`?
    pub fn is_allocated(&self, cpu: CpuId, v: Vector) -> bool {
        self.cpu(cpu).map(|c| c.alloc.test(v)).unwrap_or(false)
    }

    /// Counters for one CPU.
    pub fn cpu_stats(&self, cpu: CpuId) -> Result<CpuVectorStats> {
        let c = self.cpu(cpu)?;
        Ok(CpuVectorStats {
            online: c.online,
            allocated: c.alloc.count(),
            available: c.available,
            managed: c.managed.count(),
            managed_allocated: c.managed.and(&c.alloc).count(),
        })
    }

    /// Unmanaged vectors available on online CPUs.
    pub fn global_available(&self) -> u32 {
        self.global_available
    }

    /// Outstanding reservations.
    pub fn global_reserved(&self) -> u32 {
        self.global_reserved
    }

    /// Vectors allocated on all CPUs.
    pub fn total_allocated(&self) -> u32 {
        self.total_allocated
    }

    /// Recompute every counter from the bitmaps and compare. Used by tests and available
    /// to the kernel as a debug check; returns a description of the first mismatch.
    pub fn check_invariants(&self) -> core::result::Result<(), &'static str> {
        let device = VecMap::device_vectors();
        let mut avail = 0;
        let mut total = 0;
        for (i, c) in self.cpus.iter().enumerate() {
            if c.alloc.and_not(&device).count() != 0 || c.managed.and_not(&device).count() != 0 {
                return Err("system or non-external vector allocated");
            }
            if c.available != self.device.and_not(&c.alloc).and_not(&c.managed).count() {
                return Err("per-cpu available count wrong");
            }
            if c.online != self.online.contains(i as CpuId) {
                return Err("online mask disagrees with cpu state");
            }
            if c.online {
                avail += c.available;
            }
            total += c.alloc.count();
        }
        if avail != self.global_available {
            return Err("global available count wrong");
        }
        if total != self.total_allocated {
            return Err("total allocated count wrong");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::{NR_DEVICE_VECTORS, is_system};

    fn matrix(n: usize) -> VectorMatrix {
        let mut m = VectorMatrix::new(n).unwrap();
        for c in 0..n as u32 {
            m.online(c).unwrap();
        }
        m
    }

    #[test]
    fn lowest_vector_on_emptiest_cpu() {
        let mut m = matrix(2);
        let all = CpuMask::first_n(2);
        assert_eq!(m.alloc(&all, false).unwrap(), (0, Vector(0x20)));
        // CPU 1 now has more free vectors.
        assert_eq!(m.alloc(&all, false).unwrap(), (1, Vector(0x20)));
        assert_eq!(m.alloc(&all, false).unwrap(), (0, Vector(0x21)));
        m.free(0, Vector(0x20)).unwrap();
        assert_eq!(
            m.alloc(&CpuMask::single(0), false).unwrap(),
            (0, Vector(0x20))
        );
        m.check_invariants().unwrap();
    }

    #[test]
    fn exhaust_one_cpu_skips_system_vectors() {
        let mut m = matrix(1);
        let mut seen = VecMap::new();
        for _ in 0..NR_DEVICE_VECTORS {
            let (_, v) = m.alloc(&CpuMask::single(0), false).unwrap();
            assert!(!is_system(v));
            assert!(!seen.test(v));
            seen.set(v);
        }
        assert_eq!(m.alloc(&CpuMask::single(0), false), Err(IrqError::NoSpace));
        m.check_invariants().unwrap();
    }

    #[test]
    fn masks_and_errors() {
        let mut m = VectorMatrix::new(4).unwrap();
        m.online(0).unwrap();
        assert_eq!(m.alloc(&CpuMask::new(), false), Err(IrqError::InvalidMask));
        assert_eq!(
            m.alloc(&CpuMask::single(2), false),
            Err(IrqError::OfflineTarget(2))
        );
        assert_eq!(
            m.alloc(&CpuMask::single(9), false),
            Err(IrqError::InvalidMask)
        );
        assert_eq!(
            m.free(0, Vector(0x40)),
            Err(IrqError::InvalidVector(Vector(0x40)))
        );
        assert_eq!(m.free(7, Vector(0x40)), Err(IrqError::InvalidCpu(7)));
        assert!(VectorMatrix::new(0).is_err());
        assert!(VectorMatrix::new(MAX_CPUS + 1).is_err());
    }

    #[test]
    fn reservations_are_honoured() {
        let mut m = matrix(1);
        for _ in 0..NR_DEVICE_VECTORS - 1 {
            m.alloc(&CpuMask::single(0), false).unwrap();
        }
        m.reserve().unwrap();
        assert_eq!(m.reserve(), Err(IrqError::NoSpace));
        // The last vector belongs to the reservation.
        assert_eq!(m.alloc(&CpuMask::single(0), false), Err(IrqError::NoSpace));
        assert!(m.alloc(&CpuMask::single(0), true).is_ok());
        assert_eq!(
            m.alloc(&CpuMask::single(0), true),
            Err(IrqError::InvalidState)
        );
    }

    #[test]
    fn managed_reserve_alloc_free() {
        let mut m = matrix(4);
        let mask = CpuMask::from_cpus(&[1, 2]);
        m.reserve_managed(&mask).unwrap();
        assert_eq!(m.cpu_stats(1).unwrap().managed, 1);
        assert_eq!(m.global_available(), 4 * NR_DEVICE_VECTORS - 2);
        let (cpu, v) = m.alloc_managed(&mask).unwrap();
        assert!(mask.contains(cpu));
        // Reserved vectors are not handed out to unmanaged irqs.
        assert_ne!(m.alloc(&CpuMask::single(cpu), false).unwrap().1, v);
        m.free(cpu, v).unwrap();
        assert_eq!(m.cpu_stats(cpu).unwrap().managed, 1);
        m.remove_managed(&mask).unwrap();
        assert_eq!(m.cpu_stats(cpu).unwrap().managed, 0);
        m.check_invariants().unwrap();
        assert_eq!(m.alloc_managed(&CpuMask::single(3)), Err(IrqError::NoSpace));
    }

    #[test]
    fn blocks_are_aligned_and_freed_whole() {
        let mut m = matrix(2);
        m.alloc(&CpuMask::single(0), false).unwrap(); // 0x20 on cpu 0
        let (cpu, base) = m.alloc_block(&CpuMask::first_n(2), 16).unwrap();
        assert_eq!((cpu, base), (1, Vector(0x20)));
        let (cpu, base) = m.alloc_block(&CpuMask::single(0), 8).unwrap();
        assert_eq!((cpu, base), (0, Vector(0x28)));
        assert_eq!(
            m.alloc_block(&CpuMask::single(0), 3),
            Err(IrqError::InvalidArgument)
        );
        assert!(m.free_block(0, Vector(0x29), 8).is_err());
        m.free_block(0, Vector(0x28), 8).unwrap();
        assert_eq!(m.cpu_stats(0).unwrap().allocated, 1);
        m.check_invariants().unwrap();
    }

    #[test]
    fn steering_picks_the_vector_not_the_cpu() {
        let mut m = matrix(2);
        m.alloc(&CpuMask::single(0), false).unwrap(); // 0x20 on cpu 0
        let mut avoid = VecMap::default();
        for v in 0x21..0x24 {
            avoid.set(Vector(v));
        }
        // The preferred vector when free; else the lowest outside `avoid`.
        let s = Steer {
            prefer: Some(Vector(0x30)),
            avoid,
            due: None,
        };
        assert_eq!(
            m.alloc_steered(&CpuMask::single(1), false, &s),
            Ok((1, Vector(0x30)))
        );
        assert_eq!(
            m.alloc_steered(&CpuMask::single(1), false, &s),
            Ok((1, Vector(0x20)))
        );
        let s = Steer {
            prefer: Some(Vector(0x20)),
            avoid,
            due: None,
        };
        assert_eq!(
            m.alloc_steered(&CpuMask::single(0), false, &s),
            Ok((0, Vector(0x24)))
        );
        // The CPU is chosen as without steering (a tie here: the lowest CPU).
        assert_eq!(
            m.alloc_steered(&CpuMask::first_n(2), false, &s),
            Ok((0, Vector(0x25)))
        );
        // Blocks: the preferred aligned base, else the lowest run clear of `avoid`, else
        // any run at all.
        let s = Steer {
            prefer: Some(Vector(0x40)),
            avoid,
            due: None,
        };
        assert_eq!(
            m.alloc_block_steered(&CpuMask::single(1), 8, &s),
            Ok((1, Vector(0x40)))
        );
        assert_eq!(
            m.alloc_block_steered(&CpuMask::single(1), 4, &s),
            Ok((1, Vector(0x24)))
        );
        let everything = Steer {
            prefer: None,
            avoid: VecMap::device_vectors(),
            due: None,
        };
        assert_eq!(
            m.alloc_block_steered(&CpuMask::single(1), 4, &everything),
            Ok((1, Vector(0x28)))
        );
        assert_eq!(
            m.alloc_steered(&CpuMask::single(1), false, &everything),
            Ok((1, Vector(0x21)))
        );
        // A vector whose retriggered bit is still due on the chosen CPU is passed over,
        // preferred or not, while another is free there.
        let routes = Arc::new(Routes::new(2));
        routes.set(1, Vector(0x22), Slot::RetriggeredPending);
        routes.set(1, Vector(0x31), Slot::RetriggeredPending);
        let s = Steer {
            prefer: Some(Vector(0x31)),
            avoid: VecMap::default(),
            due: Some(routes),
        };
        assert_eq!(
            m.alloc_steered(&CpuMask::single(1), false, &s),
            Ok((1, Vector(0x23)))
        );
        m.check_invariants().unwrap();
    }

    #[test]
    fn can_offline_rules() {
        let mut m = matrix(2);
        assert_eq!(m.can_offline(0), Ok(()));
        // Fill CPU 1 completely, then put some on CPU 0: CPU 0's vectors have nowhere to go.
        for _ in 0..NR_DEVICE_VECTORS {
            m.alloc(&CpuMask::single(1), false).unwrap();
        }
        m.alloc(&CpuMask::single(0), false).unwrap();
        assert_eq!(m.can_offline(0), Err(IrqError::NoSpace));
        m.free(1, Vector(0x20)).unwrap();
        assert_eq!(m.can_offline(0), Ok(()));
        m.offline(1).unwrap();
        assert_eq!(m.can_offline(0), Err(IrqError::LastCpu));
        assert_eq!(m.can_offline(1), Err(IrqError::OfflineTarget(1)));
        m.check_invariants().unwrap();
    }
}
