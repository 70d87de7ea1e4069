//! The invalidation queue (VT-d §6.5.2): a ring of 2^(QS+8) descriptor slots that
//! software fills at the tail (IQT) and the unit consumes at the head (IQH).
//!
//! Submission is synchronous, like Linux's `qi_submit_sync`: a batch is written after
//! the tail, followed by one invalidation wait descriptor with Status Write; IQT moves
//! past it; then the status word is polled until the wait writes this batch's number.
//! The queue is therefore empty (IQH = IQT) between batches, which is checked before
//! every batch, so a stuck unit is reported instead of the ring being overrun.
//!
//! A wait descriptor never carries both Status Write and Interrupt Flag: valid per the
//! specification, but QEMU 10.0.2 aborts on it (REFERENCE.md).
//!
//! Errors (§6.5.2.10): the unit stops at an invalid descriptor, sets FSTS.IQE and leaves
//! IQH pointing at it. The queue reports the slot and the descriptor, overwrites the slot
//! with a harmless global IEC invalidation, clears IQE and writes IQT again — real units
//! resume when IQE is cleared, QEMU only on an IQT write — and then waits for the rest of
//! the batch as usual. IQH is the unit's word (15 bits, up to slot 32767): it becomes a
//! slot only when it lies inside the ring ([`QiError::HeadOutOfRange`] otherwise).

use alloc::vec::Vec;
use core::fmt;

use crate::descriptor::{Descriptor, DescriptorError, DescriptorProblem, iec_ranges};
use crate::gcmd;
use crate::hw::{Clock, QueueMemory, Registers};
use crate::poll::{PollBudget, Timeout, WaitingFor, poll_until};
use crate::registers::queue::LayoutError;
use crate::registers::{
    Command, ExtendedCapability, FSTS, FaultStatus, GlobalStatus, IQA, IQH, IQT, Iqa, QueuePointer,
};

/// Why a submission failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QiError {
    /// The queue is not enabled (or was disabled).
    Disabled,
    /// A descriptor this crate will not submit (nothing was written to the ring).
    Refused {
        /// The descriptor.
        descriptor: Descriptor,
        /// What is wrong with it.
        problem: DescriptorProblem,
    },
    /// A descriptor could not be built.
    Descriptor(DescriptorError),
    /// The queue was not empty before a batch: an earlier batch has not completed.
    Busy {
        /// IQH's slot, as read.
        head: usize,
        /// IQT's slot.
        tail: usize,
    },
    /// FSTS.IQE was already set before this batch, from an earlier batch's descriptor at
    /// `slot`. It was cleared and the slot neutralised; nothing was submitted: retry.
    StaleError {
        /// The slot of the earlier descriptor.
        slot: usize,
    },
    /// The unit rejected the descriptor at `slot` (FSTS.IQE). `descriptor` is what this
    /// queue wrote there. The queue was recovered; the rest of the batch completed unless
    /// the rejected descriptor was the batch's own wait descriptor.
    InvalidDescriptor {
        /// The slot IQH pointed at.
        slot: usize,
        /// What this queue wrote there.
        descriptor: Descriptor,
    },
    /// The unit's IQH names a slot beyond the ring (the register holds up to 32767): the
    /// value cannot be trusted, so nothing was stored and FSTS.IQE was left set.
    HeadOutOfRange {
        /// IQH's slot, as read.
        head: usize,
        /// Slots in the ring.
        entries: usize,
    },
    /// IQH was not 0 right after the queue was enabled.
    HeadNotReset {
        /// IQH's slot, as read.
        head: usize,
    },
    /// GSTS.QIES was already set when [`InvalidationQueue::enable`] was called: someone
    /// else's queue is running (turn it off first with [`disable_queue`]).
    AlreadyEnabled,
    /// A wait for the unit ran out of budget.
    Timeout(Timeout),
}

impl From<Timeout> for QiError {
    fn from(t: Timeout) -> Self {
        QiError::Timeout(t)
    }
}

impl From<DescriptorError> for QiError {
    fn from(e: DescriptorError) -> Self {
        QiError::Descriptor(e)
    }
}

impl fmt::Display for QiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QiError::Disabled => write!(f, "the invalidation queue is not enabled"),
            QiError::Refused {
                descriptor,
                problem,
            } => write!(f, "refused to queue {}: {}", descriptor, problem),
            QiError::Descriptor(e) => write!(f, "{}", e),
            QiError::Busy { head, tail } => write!(
                f,
                "invalidation queue still busy from an earlier batch (IQH slot {}, IQT slot {})",
                head, tail
            ),
            QiError::StaleError { slot } => write!(
                f,
                "invalidation queue error left from an earlier batch at slot {} (cleared; retry)",
                slot
            ),
            QiError::InvalidDescriptor { slot, descriptor } => write!(
                f,
                "invalidation queue error: the unit rejected slot {}: {}",
                slot, descriptor
            ),
            QiError::HeadOutOfRange { head, entries } => write!(
                f,
                "invalidation queue error, but IQH names slot {} of a {}-slot queue (not trusted; left stopped)",
                head, entries
            ),
            QiError::HeadNotReset { head } => {
                write!(f, "IQH is slot {} after enabling the queue, not 0", head)
            }
            QiError::AlreadyEnabled => write!(f, "queued invalidation is already enabled"),
            QiError::Timeout(t) => write!(f, "{}", t),
        }
    }
}

/// The driver's side of one unit's invalidation queue. The ring and status word
/// themselves are reached through [`QueueMemory`].
#[derive(Debug, Clone)]
pub struct InvalidationQueue {
    iqa: Iqa,
    tail: usize,
    next_status: u32,
    max_index_mask: u8,
    enabled: bool,
    budget: PollBudget,
}

impl InvalidationQueue {
    /// A queue of 2^(qs+8) slots at physical `ring_address` (4 KiB aligned, 4 KiB · 2^qs
    /// long), for a unit with extended capabilities `ecap` (MHMV bounds ranged IEC
    /// invalidations).
    pub fn new(
        ring_address: u64,
        qs: u8,
        ecap: ExtendedCapability,
        budget: PollBudget,
    ) -> Result<InvalidationQueue, LayoutError> {
        Ok(InvalidationQueue {
            iqa: Iqa::new(ring_address, qs)?,
            tail: 0,
            next_status: 1,
            max_index_mask: ecap.mhmv(),
            enabled: false,
            budget,
        })
    }

    /// IQA as written: the ring's address, its size and DW.
    pub fn iqa(&self) -> Iqa {
        self.iqa
    }
    /// Slots in the ring.
    pub fn entries(&self) -> usize {
        self.iqa.entries()
    }
    /// The slot IQT points at (the next one to fill).
    pub fn tail(&self) -> usize {
        self.tail
    }
    /// This queue enabled the unit's queue and has not seen it disabled since.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// How long each wait for the unit may take.
    pub fn budget(&self) -> PollBudget {
        self.budget
    }

    /// Enables queued invalidation: IQT = 0, IQA, GCMD.QIE, wait for GSTS.QIES
    /// (VT-d §6.5.2: the unit starts at IQH = 0).
    pub fn enable<H>(&mut self, hw: &mut H) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        let status = hw.status_address();
        if status & 3 != 0 {
            return Err(DescriptorError::StatusAddressMisaligned(status).into());
        }
        // IQT = 0 under a running queue would send the unit through stale slots.
        if gcmd::status(hw).contains(GlobalStatus::QIES) {
            return Err(QiError::AlreadyEnabled);
        }
        IQT.write(&hw.registers(), QueuePointer(0));
        IQA.write(&hw.registers(), self.iqa);
        gcmd::execute(hw, self.budget, Command::QueuedInvalidation(true))?;
        let head = IQH.read(&hw.registers()).slot();
        if head != 0 {
            return Err(QiError::HeadNotReset { head });
        }
        self.tail = 0;
        self.enabled = true;
        Ok(())
    }

    /// Forgets that the queue is enabled (the unit's QIES was found clear).
    pub(crate) fn mark_disabled(&mut self) {
        self.enabled = false;
    }

    /// Submits a last wait descriptor, waits for the queue to drain, then disables
    /// queued invalidation (see [`disable_queue`]: a queue that does not drain is turned
    /// off all the same).
    ///
    /// The wait descriptor is for QEMU, which refuses to clear QIES unless the last
    /// descriptor it processed was a wait — even when the queue was enabled and never
    /// used (then it has processed none). Harmless on real units.
    pub fn disable<H>(&mut self, hw: &mut H) -> Result<QueueShutdown, Timeout>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        if self.enabled {
            // A failure here shows up as the drain or QIES wait below timing out.
            let _ = self.submit(hw, &[]);
        }
        self.enabled = false;
        disable_queue(hw, self.budget)
    }

    /// Submits `batch` followed by a wait descriptor and waits for it. An empty batch is
    /// a barrier. Batches longer than the ring are sent in several rounds.
    pub fn submit<H>(&mut self, hw: &mut H, batch: &[Descriptor]) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        if !self.enabled {
            return Err(QiError::Disabled);
        }
        if let Some((d, p)) = batch.iter().find_map(|d| d.problem().map(|p| (*d, p))) {
            return Err(QiError::Refused {
                descriptor: d,
                problem: p,
            });
        }
        // The batch and its wait must leave one slot free: IQH = IQT means empty.
        let room = self.entries() - 2;
        if batch.is_empty() {
            return self.submit_round(hw, &[]);
        }
        for round in batch.chunks(room) {
            self.submit_round(hw, round)?;
        }
        Ok(())
    }

    /// Invalidates the whole interrupt entry cache.
    pub fn invalidate_iec_global<H>(&mut self, hw: &mut H) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        self.submit(hw, &[Descriptor::iec_global()])
    }

    /// Invalidates the cached copy of IRTE `index`.
    pub fn invalidate_iec_index<H>(&mut self, hw: &mut H, index: u16) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        self.submit(hw, &[Descriptor::iec_indexed(index, 0)?])
    }

    /// Invalidates IRTEs `first .. first + count` with the fewest aligned
    /// power-of-two descriptors the unit's MHMV allows.
    pub fn invalidate_iec_range<H>(
        &mut self,
        hw: &mut H,
        first: u16,
        count: u32,
    ) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        let batch = iec_ranges(u32::from(first), count, self.max_index_mask)?
            .map(|(index, mask)| Descriptor::iec_indexed(index, mask))
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.submit(hw, &batch)
    }

    fn slot(&self, n: usize) -> usize {
        n & (self.entries() - 1)
    }

    fn take_status(&mut self) -> u32 {
        let s = self.next_status;
        self.next_status = match s.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        s
    }

    /// One round: the queue must be idle; `round` then a wait; IQT; wait for it.
    fn submit_round<H>(&mut self, hw: &mut H, round: &[Descriptor]) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        self.check_idle(hw)?;
        let start = self.tail;
        for (i, d) in round.iter().enumerate() {
            hw.write_descriptor(self.slot(start + i), *d);
        }
        let status = self.take_status();
        let wait = Descriptor::wait_status(hw.status_address(), status)?;
        let wait_slot = self.slot(start + round.len());
        hw.write_descriptor(wait_slot, wait);
        self.tail = self.slot(wait_slot + 1);
        IQT.write(&hw.registers(), QueuePointer::from_slot(self.tail));
        let ring_mask = self.entries() - 1;
        let written = |slot: usize| {
            let i = slot.wrapping_sub(start) & ring_mask;
            round.get(i).copied().unwrap_or(wait)
        };
        self.await_round(hw, status, wait_slot, written)
    }

    /// Polls the status word for `status`, recovering from invalid descriptors.
    fn await_round<H>(
        &mut self,
        hw: &mut H,
        status: u32,
        wait_slot: usize,
        written: impl Fn(usize) -> Descriptor,
    ) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        let mut rejected: Option<QiError> = None;
        let mut wait_rejected = false;
        let tail = self.tail;
        let entries = self.entries();
        poll_until(
            hw,
            self.budget,
            |_| WaitingFor::WaitDescriptor {
                status_data: status,
            },
            |hw| {
                if hw.read_status() == status {
                    return Ok::<bool, QiError>(true);
                }
                if let Some(slot) = recover(hw, tail, entries)? {
                    rejected.get_or_insert(QiError::InvalidDescriptor {
                        slot,
                        descriptor: written(slot),
                    });
                    wait_rejected |= slot == wait_slot;
                }
                Ok(wait_rejected)
            },
        )?;
        if wait_rejected {
            // Nothing will write the status now; wait for the replacement to run.
            drain(hw, self.budget)?;
        }
        rejected.map_or(Ok(()), Err)
    }

    /// Checks that the previous batch is done and no queue error is pending.
    fn check_idle<H>(&mut self, hw: &mut H) -> Result<(), QiError>
    where
        H: Registers + QueueMemory + Clock + ?Sized,
    {
        if let Some(slot) = recover(hw, self.tail, self.entries())? {
            return Err(QiError::StaleError { slot });
        }
        let head = IQH.read(&hw.registers()).slot();
        if head != self.tail {
            return Err(QiError::Busy {
                head,
                tail: self.tail,
            });
        }
        Ok(())
    }
}

/// If FSTS.IQE is set: neutralises the descriptor at IQH (a global IEC invalidation,
/// valid on every unit with interrupt remapping), clears IQE and writes IQT = `tail`
/// again so QEMU, which only fetches on IQT writes, resumes too. Returns the slot.
///
/// IQH comes from the unit and is 15 bits wide (up to slot 32767); the ring has
/// `entries` slots. A head outside the ring is not an index: nothing is stored, IQE is
/// left set (the queue stays stopped rather than run from a slot nobody wrote) and the
/// error says so.
fn recover<H>(hw: &mut H, tail: usize, entries: usize) -> Result<Option<usize>, QiError>
where
    H: Registers + QueueMemory + ?Sized,
{
    let fsts = FSTS.read(&hw.registers());
    if !fsts.contains(FaultStatus::IQE) {
        return Ok(None);
    }
    let head = IQH.read(&hw.registers()).slot();
    if head >= entries {
        return Err(QiError::HeadOutOfRange { head, entries });
    }
    hw.write_descriptor(head, Descriptor::iec_global());
    FSTS.write(&hw.registers(), FaultStatus::IQE);
    IQT.write(&hw.registers(), QueuePointer::from_slot(tail));
    Ok(Some(head))
}

/// Waits until IQH reaches IQT (both read from the unit).
fn drain<H>(hw: &mut H, budget: PollBudget) -> Result<(), Timeout>
where
    H: Registers + Clock + ?Sized,
{
    let pointers = |hw: &mut H| {
        let head = IQH.read(&hw.registers()).slot();
        let tail = IQT.read(&hw.registers()).slot();
        (head, tail)
    };
    poll_until(
        hw,
        budget,
        |hw| {
            let (head, tail) = pointers(hw);
            WaitingFor::QueueDrained { head, tail }
        },
        |hw| {
            let (head, tail) = pointers(hw);
            Ok::<bool, Timeout>(head == tail)
        },
    )
}

/// How [`disable_queue`] found a queue and left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueShutdown {
    /// QIES was clear: nothing was done.
    WasOff,
    /// IQH reached IQT, then QIE was cleared.
    Drained,
    /// The queue never drained — stopped on an invalid descriptor (`halted`: FSTS.IQE,
    /// it would wait for software forever) or still busy when the wait ran out — and QIE
    /// was cleared with descriptors `head..tail` pending (not run).
    Abandoned {
        /// IQH's slot, as last read.
        head: usize,
        /// IQT's slot.
        tail: usize,
        /// FSTS.IQE was set: the unit stopped on an invalid descriptor.
        halted: bool,
    },
}

impl fmt::Display for QueueShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueShutdown::WasOff => write!(f, "was off"),
            QueueShutdown::Drained => write!(f, "drained and turned off"),
            QueueShutdown::Abandoned { head, tail, halted } => write!(
                f,
                "turned off without draining: {} at IQH slot {} (IQT slot {}); the rest never ran",
                if *halted {
                    "stopped on an invalid descriptor"
                } else {
                    "still busy"
                },
                head,
                tail
            ),
        }
    }
}

/// Disables queued invalidation, also on a unit whose queue this driver does not own
/// (left on by firmware): waits for IQH to reach IQT, then clears QIE and waits for QIES
/// to clear.
///
/// The drain wait ends early when FSTS.IQE is set (a stopped queue never drains), and
/// when it ends without the queue drained QIE is cleared all the same, as Linux's
/// `dmar_disable_qi` does: a firmware queue stopped on an error must not keep the unit
/// from ever being enabled (VT-d §6.5.2.10; the pending descriptors are firmware's and
/// are dropped, which the caller can report). IQE itself is left set: whoever enables
/// the queue next clears it.
///
/// QEMU only lets QIE go when the queue is idle and the last descriptor it processed
/// was a wait descriptor; this crate's batches always end with one. A firmware queue
/// stopped on an error cannot be turned off there (the QIES wait times out).
pub fn disable_queue<H>(hw: &mut H, budget: PollBudget) -> Result<QueueShutdown, Timeout>
where
    H: Registers + Clock + ?Sized,
{
    if !gcmd::status(hw).contains(GlobalStatus::QIES) {
        return Ok(QueueShutdown::WasOff);
    }
    let mut last = (0, 0, false);
    // The wait's own timeout is not an error here: the queue is turned off regardless.
    let settled = poll_until(
        hw,
        budget,
        |_| WaitingFor::QueueDrained { head: 0, tail: 0 },
        |hw| {
            let head = IQH.read(&hw.registers()).slot();
            let tail = IQT.read(&hw.registers()).slot();
            let fsts = FSTS.read(&hw.registers());
            last = (head, tail, fsts.contains(FaultStatus::IQE));
            Ok::<bool, Timeout>(head == tail || last.2)
        },
    );
    let (head, tail, halted) = last;
    let shutdown = if settled.is_ok() && head == tail {
        QueueShutdown::Drained
    } else {
        QueueShutdown::Abandoned { head, tail, halted }
    };
    gcmd::execute(hw, budget, Command::QueuedInvalidation(false))?;
    Ok(shutdown)
}
