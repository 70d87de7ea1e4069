//! Carrying out one GCMD command: read GSTS, write GSTS's persistent bits with the one
//! change ([`gcmd_value`]), wait for GSTS to report it (VT-d §11.4.4).

use crate::hw::{Clock, Registers};
use crate::poll::{PollBudget, Timeout, WaitingFor, poll_until};
use crate::registers::{Command, GCMD, GSTS, GlobalStatus, gcmd_value};

/// Reads GSTS.
pub fn status<H: Registers + ?Sized>(hw: &mut H) -> GlobalStatus {
    GSTS.read(&hw.registers())
}

/// Issues `command` and waits until GSTS shows it done; returns GSTS as last read.
pub fn execute<H>(hw: &mut H, budget: PollBudget, command: Command) -> Result<GlobalStatus, Timeout>
where
    H: Registers + Clock + ?Sized,
{
    let value = gcmd_value(status(hw), command);
    GCMD.write(&hw.registers(), value);
    wait_status(hw, budget, command.completion())
}

/// Waits until the GSTS bit `bit` equals `set`; returns GSTS as last read.
pub fn wait_status<H>(
    hw: &mut H,
    budget: PollBudget,
    (bit, set): (GlobalStatus, bool),
) -> Result<GlobalStatus, Timeout>
where
    H: Registers + Clock + ?Sized,
{
    let mut last = GlobalStatus::empty();
    poll_until(
        hw,
        budget,
        |_| WaitingFor::Status { bit, set },
        |hw| {
            last = status(hw);
            Ok::<bool, Timeout>(last.contains(bit) == set)
        },
    )?;
    Ok(last)
}
