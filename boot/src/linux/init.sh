#!/bin/busybox sh
# /init of the initramfs `sluice bench --linux` boots (boot/src/linux/mod.rs packs it
# with a static busybox and the modules listed in /lib/modules/load.list). It times
# with the kernel's monotonic clock and prints what it measured (a `SAMPLE boot ns`
# line, then the ftrace markers around each timed write); the launcher turns them into
# the figures Sluice's own `bench` prints.
# Parameters come as environment variables: the kernel hands init the command line's
# unknown `key=value` words (sb_cycles, sb_writes).
/bin/busybox echo "SLUICE-LINUX init"
/bin/busybox mount -t proc proc /proc
# CLOCK_MONOTONIC in ns: the third line of /proc/timer_list is `now at N nsecs`, read
# with the shell's own `read` (no process started), so a sample costs two reads.
mono() { { read -r _; read -r _; read -r _ _ NOW _; } </proc/timer_list; }
mono
echo "SAMPLE boot $NOW"
B=/bin/busybox
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B --install -s /bin
export PATH=/bin
CYCLES=${sb_cycles:-20}
WRITES=${sb_writes:-100}
fail() { echo "LINUX-ERROR $*"; }

# A command instead of the measurements (sluice::linux::prepare_command puts it in
# /command, the modules of the machine's interrupt sources in load.list, and lspci with
# its libraries and loader in the tree): the drivers bind first, so the capabilities of
# the devices Linux drives are as Linux sets them.
if [ -f /command ]; then
    while read -r m; do
        [ -n "$m" ] && insmod "$m" 2>&1 | sed 's/^/INFO insmod: /'
    done </lib/modules/load.list
    export PATH=/bin:/usr/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
    echo "COMMAND-BEGIN"
    sh /command 2>&1
    echo "COMMAND-END $?"
    poweroff -f
fi

echo "INFO kernel $(uname -r)"
echo "INFO cpus $(cat /sys/devices/system/cpu/online)"
if dmesg | grep -q 'Enabled IRQ remapping'; then echo "INFO remapping on"; else echo "INFO remapping off"; fi

# Intervals are timed by ftrace: a write to trace_marker is stamped with the kernel's
# monotonic clock (trace_clock mono, printed to the microsecond) in one system call on
# a descriptor opened once; the launcher pairs `B name` with the next `E name` in the
# trace it prints at the end. The floor of that method: a B straight after an E.
$B mount -t tracefs tracefs /sys/kernel/tracing || fail "no tracefs"
T=/sys/kernel/tracing
echo mono >$T/trace_clock || fail "no mono trace clock"
# Linux boots with each CPU's trace buffer at its minimum and grows it only when a tracer
# is set: the markers would overwrite each other (the first ones, clock-read, lost).
echo 2048 >$T/buffer_size_kb || fail "cannot size the trace buffer"
echo >$T/trace
exec 3>$T/trace_marker
i=0
while [ $i -lt 20 ]; do
    echo "B clock-read" >&3; echo "E clock-read" >&3
    i=$((i + 1))
done

# ahci's MSI (00:1f.2: the disk QEMU's q35 puts on ide.0) is the irq that moves.
while read -r m; do
    [ -n "$m" ] && insmod "$m" 2>&1 | sed 's/^/INFO insmod: /'
done </lib/modules/load.list
IRQ=$(grep -E 'PCI-MSI.*ahci' /proc/interrupts | head -n 1 | sed -E 's/^ *([0-9]+):.*/\1/')
# The kick: a SCSI rescan makes the disk interrupt, which completes a pending move
# (Linux retires the old vector when the irq first arrives on the new one).
w=0
while [ -z "$(ls /sys/class/scsi_device 2>/dev/null)" ] && [ $w -lt 100 ]; do usleep 50000; w=$((w + 1)); done
kick() { for f in /sys/class/scsi_device/*/device/rescan; do [ -e "$f" ] && echo 1 >"$f"; done; }
if [ -z "$IRQ" ]; then
    fail "no PCI-MSI irq of ahci in /proc/interrupts"
else
    echo "INFO irq $IRQ $(grep -E "^ *$IRQ:" /proc/interrupts | sed -E 's/^ *[0-9]+: *([0-9]+ +)*//')"
    # Alternate CPU 0 and CPU 1, one write at a time, each after the device has
    # interrupted and 10 ms have passed (untimed), so each starts from a settled irq.
    exec 4>/proc/irq/$IRQ/smp_affinity_list
    i=0; moved=0; bad=0
    while [ $i -lt $WRITES ]; do
        c=$((i % 2))
        echo "B affinity" >&3
        echo $c >&4 || bad=$((bad + 1))
        echo "E affinity" >&3
        read -r e </proc/irq/$IRQ/effective_affinity_list
        [ "$e" = "$c" ] && moved=$((moved + 1))
        kick; usleep 10000
        i=$((i + 1))
    done
    echo "INFO affinity moved-in-the-write $moved of $WRITES, refused $bad"
fi

# Hotplug of the last CPU with the irq pinned to it first (untimed), as Sluice's
# `bench hotplug` does: each offline has an irq to move away.
LAST=$(sed -E 's/.*[-,]//' /sys/devices/system/cpu/present)
ONLINE=/sys/devices/system/cpu/cpu$LAST/online
if [ "$LAST" = 0 ] || [ ! -w "$ONLINE" ]; then
    fail "no CPU to take offline (present: $(cat /sys/devices/system/cpu/present))"
else
    i=0; bad=0
    while [ $i -lt $CYCLES ]; do
        [ -n "$IRQ" ] && { echo $LAST >/proc/irq/$IRQ/smp_affinity_list; kick; }
        echo "B cpu-offline" >&3
        echo 0 >$ONLINE || bad=$((bad + 1))
        echo "E cpu-offline" >&3
        echo "B cpu-online" >&3
        echo 1 >$ONLINE || bad=$((bad + 1))
        echo "E cpu-online" >&3
        i=$((i + 1))
    done
    echo "INFO hotplug cpu$LAST $CYCLES cycles, refused $bad"
fi
# Events lost to a full buffer are missing samples: an error, not a quiet gap.
lost=0
for f in $T/per_cpu/cpu*/stats; do
    n=$(sed -n 's/^overrun: //p' "$f")
    lost=$((lost + ${n:-0}))
done
[ "$lost" -eq 0 ] || echo "LINUX-ERROR the trace buffer overran: $lost event(s) lost, samples missing"
echo "TRACE-BEGIN"
grep tracing_mark_write $T/trace
echo "TRACE-END"
echo "SLUICE-LINUX done"
poweroff -f
