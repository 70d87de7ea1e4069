//! QEMU scenarios for SMP: every CPU comes online at boot in both profiles with 4 and 8
//! CPUs, `cpus` shows them, the IPI and stop_machine commands work, bad arguments get
//! errors, and the in-kernel SMP tests (call-function, stop_machine incl. a straggler,
//! park and restart by INIT–SIPI) pass. One boot per configuration keeps the time down.

mod common;

use common::*;
use sluice::Profile;
use sluice::session::ExitKind;

fn scenario(profile: Profile, smp: u32) {
    let o = boot(
        profile,
        smp,
        &[
            "cpus",
            "ipi 1 20",
            "stop-machine 1",
            "ipi nmi 2",
            "ipi",
            "ipi 99",
            "ipi one",
            "ap-park 0",
            "cpus now",
            "test --exit smp",
        ],
    );
    let out = &o.output;
    let ctx = format!("{profile} --smp {smp}");
    assert_eq!(
        o.exit,
        ExitKind::TestsPassed,
        "{ctx}: SMP kernel tests did not pass\n{out}"
    );
    assert!(
        out.contains(&format!("SMP: {smp} of {smp} CPUs online")),
        "{ctx}: boot log\n{out}"
    );
    assert!(
        out.contains(&format!("{smp} of {smp} CPUs online\n"))
            || out.contains(&format!("{smp} of {smp} CPUs online\r")),
        "{ctx}: cpus\n{out}"
    );
    for cpu in 0..smp {
        let row = out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 6 && w[0] == cpu.to_string() && w[2] == "online"
        });
        assert!(row, "{ctx}: `cpus` has no online row for CPU {cpu}\n{out}");
    }
    assert!(
        out.contains("CPU 1: 20 calls, round trip"),
        "{ctx}: ipi\n{out}"
    );
    assert!(
        out.contains("ran on CPU 1 with interrupts off"),
        "{ctx}: stop-machine\n{out}"
    );
    assert!(
        out.contains("cpu2 warning: NMI at"),
        "{ctx}: NMI not taken on CPU 2\n{out}"
    );
    assert!(
        out.contains("ipi: missing CPU number"),
        "{ctx}: ipi without args\n{out}"
    );
    assert!(
        out.contains(&format!(
            "ipi: CPU 99 does not exist (this machine has {smp})"
        )),
        "{ctx}: ipi 99\n{out}"
    );
    assert!(
        out.contains("ipi: 'one' is not a CPU number"),
        "{ctx}: ipi one\n{out}"
    );
    assert!(
        out.contains("ap-park: CPU 0: the boot CPU"),
        "{ctx}: ap-park 0\n{out}"
    );
    assert!(
        out.contains("cpus: unexpected argument 'now'"),
        "{ctx}: cpus now\n{out}"
    );
    // Every SMP test ran and none was skipped on a multi-CPU guest (smp/tests.rs TESTS).
    assert!(
        out.contains("15 passed, 0 failed, 0 skipped"),
        "{ctx}: test count\n{out}"
    );
}

#[test]
fn iommu_4_cpus() {
    scenario(Profile::Iommu, 4);
}

#[test]
fn iommu_8_cpus() {
    scenario(Profile::Iommu, 8);
}

#[test]
fn noiommu_4_cpus() {
    scenario(Profile::NoIommu, 4);
}

#[test]
fn noiommu_8_cpus() {
    scenario(Profile::NoIommu, 8);
}
