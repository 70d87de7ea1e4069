#!/bin/sh
# Seeds the fuzz corpora from tests/corpus/ (the real DMAR and MADT tables).
# Usage: drivers/acpi-tables/fuzz/seed-corpus.sh [CORPUS_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../tests/corpus}
[ -d "$src" ] || { echo "no ACPI corpus at $src" >&2; exit 1; }
mkdir -p "$here/corpus/dmar" "$here/corpus/madt"
for m in "$src"/*/; do
    slug=$(basename "$m")
    [ -f "$m/dmar.bin" ] && cp "$m/dmar.bin" "$here/corpus/dmar/$slug.bin"
    cp "$m/apic.bin" "$here/corpus/madt/$slug.bin"
done
echo "seeded $(ls "$here/corpus/dmar" | wc -l) DMAR and $(ls "$here/corpus/madt" | wc -l) MADT tables"
