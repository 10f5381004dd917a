// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * The C half of the mixed module: compiled by kbuild with the kernel's own flags, so it
 * can use any kernel header.
 */
#include <linux/errno.h>
#include <linux/types.h>

#include "checksum.h"

int mixed_c_fold(const unsigned char *data, unsigned long len, struct mixed_c_summary *out)
{
	unsigned long i;
	u32 sum = 0;

	if (!data || !out)
		return -EINVAL;
	for (i = 0; i < len; i++)
		sum = (sum << 1 | sum >> 31) ^ mixed_rust_weigh(data[i], (unsigned int)i);
	out->bytes = (unsigned int)len;
	out->checksum = sum;
	return 0;
}
