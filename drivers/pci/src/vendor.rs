//! A few vendor names, spelled as pci.ids (and so lspci) spells them, for listings.
//!
//! Deliberately short: the vendors of the QEMU machines Sluice is tested in and of the
//! chipsets and common devices of real PCs. 0x1234 (QEMU's `edu` and std-VGA) is left
//! out on purpose: pci.ids has no entry for it, so lspci prints a bare `Device
//! [1234:11e8]`, and Sluice's listing should read the same.

/// The vendor's name, if it is in the table.
pub const fn vendor_name(vendor_id: u16) -> Option<&'static str> {
    Some(match vendor_id {
        0x1002 => "Advanced Micro Devices, Inc. [AMD/ATI]",
        0x1013 => "Cirrus Logic",
        0x1022 => "Advanced Micro Devices, Inc. [AMD]",
        0x1033 => "NEC Corporation",
        0x10de => "NVIDIA Corporation",
        0x10ec => "Realtek Semiconductor Co., Ltd.",
        0x1106 => "VIA Technologies, Inc.",
        0x1414 => "Microsoft Corporation",
        0x144d => "Samsung Electronics Co Ltd",
        0x14e4 => "Broadcom Inc. and subsidiaries",
        0x15ad => "VMware",
        // virtio devices.
        0x1af4 => "Red Hat, Inc.",
        0x1b21 => "ASMedia Technology Inc.",
        // QEMU's own devices: pcie-root-port, pcie-pci-bridge, pci-bridge, qemu-xhci ...
        0x1b36 => "Red Hat, Inc.",
        0x1d0f => "Amazon.com, Inc.",
        0x8086 => "Intel Corporation",
        _ => return None,
    })
}
