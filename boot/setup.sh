#!/usr/bin/env bash
# Installs what Sluice needs to build and boot, idempotently:
#   - the nightly toolchain pinned in rust-toolchain.toml, with rust-src and llvm-tools
#     (the bootloader crate builds its UEFI stage with -Zbuild-std);
#   - QEMU >= 9 (TCG can only emulate x2APIC and intel-iommu,eim=on from 9.0 on;
#     on Debian 12 that means bookworm-backports);
#   - OVMF (UEFI firmware for QEMU);
#   - GDB (`sluice debug`).
# Says what it is about to do, and roughly how long it takes, before each step, and lets
# apt and rustup show their progress. Prints one clear line and exits non-zero on a
# system it does not know how to provision. Quiet when everything is there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'sluice-setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# A step that takes a while: said before it starts. Its tools' output goes to stderr,
# so that the launcher's own output (stdout) stays clean on a first run.
step() { announced=1; say "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (install sudo or run as root)"; fi
}

# QEMU and OVMF_CODE/OVMF_VARS, when set, are what the launcher will use: honour them.
qemu_ok() {
    local q=${QEMU:-qemu-system-x86_64}
    command -v "$q" >/dev/null 2>&1 || return 1
    local v
    v=$("$q" --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
    [ -n "$v" ] && [ "$v" -ge 9 ]
}

# The same code/vars pairs the launcher searches (boot/src/profile.rs, find_firmware).
ovmf_path() {
    if [ -n "${OVMF_CODE:-}" ]; then
        [ -f "$OVMF_CODE" ] && [ -f "${OVMF_VARS:-}" ] && { echo "$OVMF_CODE"; return 0; }
        return 1
    fi
    local f
    for f in /usr/share/OVMF/OVMF_CODE_4M.fd:/usr/share/OVMF/OVMF_VARS_4M.fd \
             /usr/share/OVMF/OVMF_CODE.fd:/usr/share/OVMF/OVMF_VARS.fd \
             /usr/share/edk2/ovmf/OVMF_CODE.fd:/usr/share/edk2/ovmf/OVMF_VARS.fd \
             /usr/share/edk2/x64/OVMF_CODE.4m.fd:/usr/share/edk2/x64/OVMF_VARS.4m.fd; do
        [ -f "${f%%:*}" ] && [ -f "${f##*:}" ] && { echo "${f%%:*}"; return 0; }
    done
    return 1
}

install_system_packages() {
    if [ -n "${QEMU:-}" ] && ! qemu_ok; then die "QEMU=$QEMU is not an executable QEMU >= 9"; fi
    if [ -n "${OVMF_CODE:-}" ] && ! ovmf_path >/dev/null; then
        die "OVMF_CODE=$OVMF_CODE and OVMF_VARS=${OVMF_VARS:-(unset)} must both be firmware files"
    fi
    # Only what is missing; QEMU or OVMF named by the environment are never replaced.
    local pkgs=() names=()
    qemu_ok || { pkgs+=(qemu-system-x86); names+=("QEMU"); }
    ovmf_path >/dev/null || { pkgs+=(ovmf); names+=("OVMF"); }
    command -v "${GDB:-gdb}" >/dev/null 2>&1 || { pkgs+=(gdb); names+=("GDB"); }
    [ ${#pkgs[@]} -eq 0 ] && return 0
    [ -r /etc/os-release ] || die "unknown system (no /etc/os-release): install ${names[*]} yourself (QEMU >= 9)"
    # shellcheck disable=SC1091
    . /etc/os-release
    local target=()
    case "${ID:-}:${VERSION_CODENAME:-}" in
        debian:bookworm)
            if [[ " ${pkgs[*]} " == *" qemu-system-x86 "* ]]; then
                local list=/etc/apt/sources.list.d/sluice-bookworm-backports.list
                if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
                    step "adding Debian bookworm-backports to apt's sources (QEMU 10 lives there)"
                    echo 'deb http://deb.debian.org/debian bookworm-backports main' | as_root tee "$list" >/dev/null
                fi
                target=(-t bookworm-backports)
            fi
            ;;
        debian:trixie|debian:sid|ubuntu:noble|ubuntu:oracular|ubuntu:plucky)
            ;;
        *)
            die "don't know how to install ${names[*]} on '${PRETTY_NAME:-this system}'; install them yourself (QEMU >= 9; set QEMU, OVMF_CODE and OVMF_VARS if they are not in the usual places) and run again"
            ;;
    esac
    step "updating apt's package lists (under a minute)"
    as_root apt-get update >&2
    local from=
    [ ${#target[@]} -gt 0 ] && from=" from bookworm-backports"
    step "installing ${names[*]}${from} (${pkgs[*]}; about a minute, ~100-200 MB)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${target[@]}" "${pkgs[@]}" >&2
    qemu_ok || die "QEMU >= 9 is still missing after install (found: $(qemu-system-x86_64 --version 2>/dev/null | head -1))"
    ovmf_path >/dev/null || die "OVMF firmware is still missing after install"
}

install_toolchain() {
    command -v rustup >/dev/null 2>&1 || die "rustup not found: install it from rustup.rs, then run again"
    local chan
    chan=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$here/rust-toolchain.toml")
    [ -n "$chan" ] || die "no channel in rust-toolchain.toml"
    if ! rustup run "$chan" rustc --version >/dev/null 2>&1 \
       || ! rustup component list --toolchain "$chan" --installed 2>/dev/null | grep -q '^rust-src' \
       || ! rustup component list --toolchain "$chan" --installed 2>/dev/null | grep -q '^llvm-tools' \
       || ! rustup component list --toolchain "$chan" --installed 2>/dev/null | grep -q '^rustfmt' \
       || ! rustup component list --toolchain "$chan" --installed 2>/dev/null | grep -q '^clippy' \
       || ! rustup target list --toolchain "$chan" --installed 2>/dev/null | grep -q '^x86_64-unknown-none'; then
        step "installing the Rust toolchain $chan with rust-src, llvm-tools, rustfmt, clippy and the x86_64-unknown-none target (1-3 minutes: ~300 MB)"
        rustup toolchain install "$chan" --profile minimal -c rust-src -c llvm-tools -c rustfmt -c clippy -t x86_64-unknown-none >&2
    fi
}

install_system_packages
install_toolchain
[ "${announced:-}" ] && say "set-up done" || true
