/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * The interface between the C and Rust halves of the mixed module. bindgen turns it into
 * Rust declarations; Rust implements the `mixed_rust_` functions.
 */
#ifndef MIXED_CHECKSUM_H
#define MIXED_CHECKSUM_H

/* The result of folding a buffer. */
struct mixed_c_summary {
	unsigned int bytes;
	unsigned int checksum;
};

/*
 * Implemented in C (src/checksum.c): fold `len` bytes of `data` into `out`, weighing every
 * byte with mixed_rust_weigh(). Returns 0, or -22 (-EINVAL) for a NULL pointer.
 */
int mixed_c_fold(const unsigned char *data, unsigned long len, struct mixed_c_summary *out);

/* Implemented in Rust (src/lib.rs), called from C for every byte. */
unsigned int mixed_rust_weigh(unsigned char byte, unsigned int position);

#endif /* MIXED_CHECKSUM_H */
