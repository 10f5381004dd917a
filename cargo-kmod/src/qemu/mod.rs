//! Booting a kernel under qemu: initramfs, boot, module loading, KTAP results.
