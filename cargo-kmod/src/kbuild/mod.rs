//! Running the kernel's own build (`make -C KDIR M=...`) on a plan.
