//! Walking a descriptor's levels: chip operations from the outermost level inward,
//! message composition from a level's parents, programming every level for the current
//! target. All of it runs under the descriptor lock, on the locked descriptor.

use crate::chip::{ChipOp, LevelCtx};
use crate::desc::IrqDesc;
use crate::domain::DomainOps;
use crate::error::{IrqError, Result};
use crate::hw::Target;
use crate::irqcore::IrqCore;
use crate::msi::{CompatMsi, MsiMsg, compose};

impl IrqCore {
    /// What the chip of `level` sees.
    pub(crate) fn ctx(d: &IrqDesc, level: usize) -> Result<LevelCtx> {
        let l = d.levels.get(level).ok_or(IrqError::InvalidArgument)?;
        Ok(LevelCtx {
            virq: d.virq,
            hwirq: l.hwirq,
            level,
            target: d.target,
            trigger: d.trigger,
            source: d.source,
            masked: d.state.masked,
        })
    }

    /// The chip of `level` (`None` for the root or a level without one).
    pub(crate) fn chip(d: &IrqDesc, level: usize) -> Option<&dyn DomainOps> {
        d.levels.get(level)?.chip.as_deref()
    }

    /// Walk a chip operation from the outermost level towards the root until a level
    /// returns [`ChipOp::Done`]. Returns whether some level (not the root) handled it.
    pub(crate) fn walk(
        &self,
        d: &IrqDesc,
        mut f: impl FnMut(&dyn DomainOps, &LevelCtx) -> Result<ChipOp>,
    ) -> Result<bool> {
        for i in 0..d.levels.len().saturating_sub(1) {
            if let Some(chip) = Self::chip(d, i)
                && f(chip, &Self::ctx(d, i)?)? == ChipOp::Done
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Compose the message that reaches `target` as seen from above `level`: the first
    /// parent level that composes one (a remapping level) wins, else the root composes a
    /// compatibility-format message.
    pub(crate) fn compose_below(
        &self,
        d: &IrqDesc,
        level: usize,
        target: &Target,
    ) -> Result<MsiMsg> {
        for i in level + 1..d.levels.len().saturating_sub(1) {
            if let Some(chip) = Self::chip(d, i)
                && let Some(m) = chip.compose_msi_msg(&Self::ctx(d, i)?, target)?
            {
                return Ok(m);
            }
        }
        compose(
            &CompatMsi {
                trigger: d.trigger,
                ..CompatMsi::fixed(target.apic_id, target.vector)
            },
            self.dest_format(),
        )
    }

    /// The message `level`'s chip is given for `target`: what the levels below compose,
    /// or nothing for a level that does not use it (a remapping level).
    pub(crate) fn message_for(&self, d: &IrqDesc, level: usize, target: &Target) -> Result<MsiMsg> {
        match Self::chip(d, level) {
            Some(chip) if !chip.uses_parent_message() => Ok(MsiMsg::default()),
            _ => self.compose_below(d, level, target),
        }
    }

    /// Program every level for the current target, innermost first (a queued level
    /// records it, and the irq waits for a bus sync).
    pub(crate) fn program_levels(&self, d: &mut IrqDesc, activate: bool) -> Result<()> {
        self.note_queued(d);
        self.program_levels_of(d, activate)
    }

    fn program_levels_of(&self, d: &IrqDesc, activate: bool) -> Result<()> {
        for i in (0..d.levels.len().saturating_sub(1)).rev() {
            let Some(chip) = Self::chip(d, i) else {
                continue;
            };
            let msg = self.message_for(d, i, &d.target)?;
            let ctx = Self::ctx(d, i)?;
            if activate {
                chip.activate(&ctx, &msg)?
            } else {
                chip.deactivate(&ctx, &msg)?
            }
        }
        Ok(())
    }
}
