/* SPDX-License-Identifier: GPL-2.0 */
/* The API pair_provider exports to other modules. */
#ifndef PAIR_PROVIDER_H
#define PAIR_PROVIDER_H

/* The next id: 1, 2, 3, ... shared by every module that calls it. */
unsigned long long pair_provider_next_id(void);

#endif /* PAIR_PROVIDER_H */
