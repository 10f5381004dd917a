// SPDX-License-Identifier: GPL-2.0

//! A counter in debugfs: `/sys/kernel/debug/debugfs_counter/count` reads the value and takes
//! a new one (`echo 41 > .../count`). The kernel crate's `debugfs` does nothing on a kernel
//! without `CONFIG_DEBUG_FS`, so the manifest declares it (`kernel-config`).

use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    sync::atomic::Atomic,
};

#[cfg(test)]
use kernel::sync::atomic::Relaxed;

module! {
    type: Counter,
    name: "debugfs_counter",
    authors: ["cargo-kmod developers"],
    description: "A counter in debugfs",
    license: "GPL",
}

/// The value the counter starts from.
const START: usize = 7;

#[pin_data]
struct Counter {
    // Held for its drop: removing the directory removes the files.
    _dir: Dir,
    #[pin]
    count: File<Atomic<usize>>,
}

impl kernel::InPlaceModule for Counter {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"debugfs_counter");
        try_pin_init!(Self {
            count <- dir.read_write_file(c"count", Atomic::<usize>::new(START)),
            _dir: dir,
        })
    }
}

impl Counter {
    /// The counter's value as the file shows it.
    #[cfg(test)]
    fn value(&self) -> usize {
        self.count.load(Relaxed)
    }
}

#[cfg(test)]
#[kunit_tests(debugfs_counter_tests)]
mod tests {
    use super::*;

    /// A counter made in a test's own directory starts at `START` and keeps what is stored.
    #[test]
    fn a_counter_keeps_its_value() -> Result {
        let dir = Dir::new(c"debugfs_counter_test");
        let counter = KBox::pin_init(
            try_pin_init!(Counter {
                count <- dir.read_write_file(c"count", Atomic::<usize>::new(START)),
                _dir: dir,
            }? Error),
            GFP_KERNEL,
        )?;
        assert_eq!(counter.value(), START);
        counter.count.store(41, Relaxed);
        assert_eq!(counter.value(), 41);
        Ok(())
    }
}
