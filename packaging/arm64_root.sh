#!/bin/sh
# An aarch64 Debian 12 root (its CPython 3.11.2) on an x86_64 machine, run under qemu-user: enough
# to install the agent from a stick and run it (facts, a real infer, the agent's unit tests).
#
#   sh packaging/arm64_root.sh /srv/arm64            # as root: make the root, mount proc/dev/sys
#   chroot /srv/arm64 sh /stick/install.sh --no-systemd --prefix /opt/k --data-dir /var/lib/k
#   sh packaging/arm64_root.sh /srv/arm64 --unmount  # before deleting it
#
# Only apt's own mirrors are used (the packages, by name). Three things that make it work:
# - qemu-user-static's binfmt entry, registered here when no binfmt-support service did it
#   (containers): flag F, so the chroot needs no qemu binary of its own;
# - no debootstrap: `apt-get download` of the arm64 packages the interpreter, the shell and the
#   wheels' libraries need, unpacked with `dpkg -x`;
# - a /proc/cpuinfo that describes an ARM CPU (a Neoverse-N1 with dot-product), bound over the
#   emulated one: qemu 7.2 shows the host's x86 cpuinfo, and onnxruntime's CPU detection then
#   crashes (SIGSEGV while importing onnxruntime.capi._pybind_state).
set -eu

[ -n "${1:-}" ] || { echo "usage: sh arm64_root.sh ROOT [--unmount]" >&2; exit 2; }
mkdir -p "$1"
ROOT=$(cd "$1" && pwd)
MOUNTS="proc/cpuinfo proc dev sys" # innermost first

mounted() { grep -q " $ROOT/$1 " /proc/mounts; }

if [ "${2:-}" = --unmount ]; then
    for m in $MOUNTS; do
        if mounted "$m"; then umount "$ROOT/$m"; fi
    done
    exit 0
fi

PACKAGES="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11-venv
libc6 libssl3 libffi8 zlib1g libexpat1 libsqlite3-0 libbz2-1.0 liblzma5 libuuid1 libncursesw6
libtinfo6 libreadline8 libgcc-s1 libstdc++6 libcrypt1 libdb5.3 libgdbm6 libnsl2 libtirpc3
libzstd1 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
dash coreutils libacl1 libattr1 libgmp10 libselinux1 libpcre2-8-0 grep sed"
ALL_ARCH="media-types python3-pip-whl python3-setuptools-whl"

command -v qemu-aarch64-static >/dev/null || apt-get install -y -qq --no-install-recommends qemu-user-static
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
fi

if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download $(for p in $PACKAGES; do printf '%s:arm64 ' "$p"; done) $ALL_ARCH)
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$ROOT"; done
    rm -rf "$debs"
    ln -sf dash "$ROOT/bin/sh"
    ln -sf python3.11 "$ROOT/usr/bin/python3"
    mkdir -p "$ROOT/proc" "$ROOT/dev" "$ROOT/sys" "$ROOT/tmp"
    chmod 1777 "$ROOT/tmp"
fi

cores=$(nproc)
n=0
: >"$ROOT/cpuinfo.arm64"
while [ "$n" -lt "$cores" ]; do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$n" >>"$ROOT/cpuinfo.arm64"
    n=$((n + 1))
done
mounted proc || mount -t proc proc "$ROOT/proc"
mounted proc/cpuinfo || mount --bind "$ROOT/cpuinfo.arm64" "$ROOT/proc/cpuinfo"
mounted dev || mount --bind /dev "$ROOT/dev"
mounted sys || mount -t sysfs sysfs "$ROOT/sys"
chroot "$ROOT" /usr/bin/python3 -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])'
