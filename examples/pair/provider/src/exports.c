// SPDX-License-Identifier: GPL-2.0
/*
 * Export the provider's Rust functions to other modules. The functions are defined in
 * src/lib.rs (`#[no_mangle] extern "C"`); EXPORT_SYMBOL_GPL adds them to this module's
 * symbol table and modpost lists them in its Module.symvers.
 */
#include <linux/export.h>

#include "pair_provider.h"

EXPORT_SYMBOL_GPL(pair_provider_next_id);
