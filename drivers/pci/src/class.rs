//! Class code names, as `lspci` prints them (the names of the pci.ids database, which
//! follow the PCI Code and ID Assignment specification).
//!
//! lspci names a function by its subclass when the database knows it, otherwise by its
//! base class, otherwise "Class"; [`ClassCode::name`] does the same, so a listing from
//! Sluice can be compared line by line with `lspci -D -nn` run in the same machine.

use crate::header::ClassCode;

/// The base class's name, if it is an assigned one.
pub const fn base_class_name(base: u8) -> Option<&'static str> {
    Some(match base {
        0x00 => "Unclassified device",
        0x01 => "Mass storage controller",
        0x02 => "Network controller",
        0x03 => "Display controller",
        0x04 => "Multimedia controller",
        0x05 => "Memory controller",
        0x06 => "Bridge",
        0x07 => "Communication controller",
        0x08 => "Generic system peripheral",
        0x09 => "Input device controller",
        0x0a => "Docking station",
        0x0b => "Processor",
        0x0c => "Serial bus controller",
        0x0d => "Wireless controller",
        0x0e => "Intelligent controller",
        0x0f => "Satellite communications controller",
        0x10 => "Encryption controller",
        0x11 => "Signal processing controller",
        0x12 => "Processing accelerators",
        0x13 => "Non-Essential Instrumentation",
        0x40 => "Coprocessor",
        0xff => "Unassigned class",
        _ => return None,
    })
}

/// The subclass's name, if the database has one for this base class.
pub const fn subclass_name(base: u8, sub: u8) -> Option<&'static str> {
    match base {
        0x00 => unclassified(sub),
        0x01 => mass_storage(sub),
        0x02 => network(sub),
        0x03 => display(sub),
        0x04 => multimedia(sub),
        0x05 => memory(sub),
        0x06 => bridge(sub),
        0x07 => communication(sub),
        0x08 => system_peripheral(sub),
        0x09 => input(sub),
        0x0a => docking(sub),
        0x0b => processor(sub),
        0x0c => serial_bus(sub),
        0x0d => wireless(sub),
        0x0e => intelligent(sub),
        0x0f => satellite(sub),
        0x10 => encryption(sub),
        0x11 => signal_processing(sub),
        0x12 => accelerator(sub),
        _ => None,
    }
}

impl ClassCode {
    /// The name lspci shows: subclass, else base class, else "Class".
    pub const fn name(self) -> &'static str {
        match subclass_name(self.base, self.sub) {
            Some(name) => name,
            None => match base_class_name(self.base) {
                Some(name) => name,
                None => "Class",
            },
        }
    }

    /// A PCI-to-PCI bridge by class (0x0604); the header type says it authoritatively.
    pub const fn is_pci_bridge(self) -> bool {
        self.base == 0x06 && self.sub == 0x04
    }

    /// A host bridge (0x0600): the root complex itself. Linux keeps its decoding on
    /// while sizing BARs; see the crate README.
    pub const fn is_host_bridge(self) -> bool {
        self.base == 0x06 && self.sub == 0x00
    }
}

const fn unclassified(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Non-VGA unclassified device"),
        0x01 => Some("VGA compatible unclassified device"),
        0x05 => Some("Image coprocessor"),
        _ => None,
    }
}

const fn mass_storage(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("SCSI storage controller"),
        0x01 => Some("IDE interface"),
        0x02 => Some("Floppy disk controller"),
        0x03 => Some("IPI bus controller"),
        0x04 => Some("RAID bus controller"),
        0x05 => Some("ATA controller"),
        0x06 => Some("SATA controller"),
        0x07 => Some("Serial Attached SCSI controller"),
        0x08 => Some("Non-Volatile memory controller"),
        0x80 => Some("Mass storage controller"),
        _ => None,
    }
}

const fn network(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Ethernet controller"),
        0x01 => Some("Token ring network controller"),
        0x02 => Some("FDDI network controller"),
        0x03 => Some("ATM network controller"),
        0x04 => Some("ISDN controller"),
        0x05 => Some("WorldFip controller"),
        0x06 => Some("PICMG controller"),
        0x07 => Some("Infiniband controller"),
        0x08 => Some("Fabric controller"),
        0x80 => Some("Network controller"),
        _ => None,
    }
}

const fn display(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("VGA compatible controller"),
        0x01 => Some("XGA compatible controller"),
        0x02 => Some("3D controller"),
        0x80 => Some("Display controller"),
        _ => None,
    }
}

const fn multimedia(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Multimedia video controller"),
        0x01 => Some("Multimedia audio controller"),
        0x02 => Some("Computer telephony device"),
        0x03 => Some("Audio device"),
        0x80 => Some("Multimedia controller"),
        _ => None,
    }
}

const fn memory(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("RAM memory"),
        0x01 => Some("FLASH memory"),
        0x02 => Some("CXL"),
        0x80 => Some("Memory controller"),
        _ => None,
    }
}

const fn bridge(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Host bridge"),
        0x01 => Some("ISA bridge"),
        0x02 => Some("EISA bridge"),
        0x03 => Some("MicroChannel bridge"),
        0x04 => Some("PCI bridge"),
        0x05 => Some("PCMCIA bridge"),
        0x06 => Some("NuBus bridge"),
        0x07 => Some("CardBus bridge"),
        0x08 => Some("RACEway bridge"),
        0x09 => Some("Semi-transparent PCI-to-PCI bridge"),
        0x0a => Some("InfiniBand to PCI host bridge"),
        0x80 => Some("Bridge"),
        _ => None,
    }
}

const fn communication(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Serial controller"),
        0x01 => Some("Parallel controller"),
        0x02 => Some("Multiport serial controller"),
        0x03 => Some("Modem"),
        0x04 => Some("GPIB controller"),
        // Spelled so in pci.ids, which lspci prints.
        0x05 => Some("Smard Card controller"),
        0x80 => Some("Communication controller"),
        _ => None,
    }
}

const fn system_peripheral(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("PIC"),
        0x01 => Some("DMA controller"),
        0x02 => Some("Timer"),
        0x03 => Some("RTC"),
        0x04 => Some("PCI Hot-plug controller"),
        0x05 => Some("SD Host controller"),
        0x06 => Some("IOMMU"),
        0x80 => Some("System peripheral"),
        0x99 => Some("Timing Card"),
        _ => None,
    }
}

const fn input(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Keyboard controller"),
        0x01 => Some("Digitizer Pen"),
        0x02 => Some("Mouse controller"),
        0x03 => Some("Scanner controller"),
        0x04 => Some("Gameport controller"),
        0x80 => Some("Input device controller"),
        _ => None,
    }
}

const fn docking(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Generic Docking Station"),
        0x80 => Some("Docking Station"),
        _ => None,
    }
}

const fn processor(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("386"),
        0x01 => Some("486"),
        0x02 => Some("Pentium"),
        0x10 => Some("Alpha"),
        0x20 => Some("Power PC"),
        0x30 => Some("MIPS"),
        0x40 => Some("Co-processor"),
        _ => None,
    }
}

const fn serial_bus(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("FireWire (IEEE 1394)"),
        0x01 => Some("ACCESS Bus"),
        0x02 => Some("SSA"),
        0x03 => Some("USB controller"),
        0x04 => Some("Fibre Channel"),
        0x05 => Some("SMBus"),
        0x06 => Some("InfiniBand"),
        0x07 => Some("IPMI Interface"),
        0x08 => Some("SERCOS interface"),
        0x09 => Some("CANBUS"),
        0x80 => Some("Serial bus controller"),
        _ => None,
    }
}

const fn wireless(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("IRDA controller"),
        0x01 => Some("Consumer IR controller"),
        0x10 => Some("RF controller"),
        0x11 => Some("Bluetooth"),
        0x12 => Some("Broadband"),
        0x20 => Some("802.1a controller"),
        0x21 => Some("802.1b controller"),
        0x80 => Some("Wireless controller"),
        _ => None,
    }
}

const fn intelligent(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("I2O"),
        _ => None,
    }
}

const fn satellite(sub: u8) -> Option<&'static str> {
    match sub {
        0x01 => Some("Satellite TV controller"),
        0x02 => Some("Satellite audio communication controller"),
        0x03 => Some("Satellite voice communication controller"),
        0x04 => Some("Satellite data communication controller"),
        _ => None,
    }
}

const fn encryption(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Network and computing encryption device"),
        0x10 => Some("Entertainment encryption device"),
        0x80 => Some("Encryption controller"),
        _ => None,
    }
}

const fn signal_processing(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("DPIO module"),
        0x01 => Some("Performance counters"),
        0x10 => Some("Communication synchronizer"),
        0x20 => Some("Signal processing management"),
        0x80 => Some("Signal processing controller"),
        _ => None,
    }
}

const fn accelerator(sub: u8) -> Option<&'static str> {
    match sub {
        0x00 => Some("Processing accelerators"),
        0x01 => Some("SNIA Smart Data Accelerator Interface (SDXI) controller"),
        _ => None,
    }
}
