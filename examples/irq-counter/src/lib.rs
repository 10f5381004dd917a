// SPDX-License-Identifier: GPL-2.0

//! A platform driver whose interrupt handler counts its device's interrupts.
//!
//! `cargo kmod test` boots with the `acme,irq-counter` device of Cargo.toml, which has one
//! interrupt line of cargo-kmod's test interrupt controller (`interrupts = 1`): `probe`
//! requests it like any device's first interrupt, and the KUnit test fires it through the
//! helper's exported `cargo_kmod_devices_fire` and checks the handler counted each one.
//! Under `cargo kmod run`, `echo 0 > /sys/module/cargo_kmod_devices/parameters/fire` fires it
//! from the shell.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::{
    device::{Bound, Core, Device},
    irq::{self, Flags, IrqReturn},
    of, platform,
    prelude::*,
};

kmod_macros::module! {
    type: IrqCounterModule,
}

/// How many interrupts the handler has counted, over every bound device.
static COUNT: AtomicU32 = AtomicU32::new(0);

/// The interrupt handler: counts, in interrupt context.
struct Counter;

impl irq::Handler for Counter {
    fn handle(&self, _dev: &Device<Bound>) -> IrqReturn {
        COUNT.fetch_add(1, Ordering::Relaxed);
        IrqReturn::Handled
    }
}

/// One bound device: its interrupt registration, freed when the device unbinds.
#[pin_data]
struct IrqCounter {
    #[pin]
    _irq: irq::Registration<Counter>,
}

kernel::of_device_table!(
    OF_TABLE,
    MODULE_OF_TABLE,
    <IrqCounter as platform::Driver>::IdInfo,
    [(of::DeviceId::new(c"acme,irq-counter"), ())]
);

impl platform::Driver for IrqCounter {
    type IdInfo = ();
    type Data<'bound> = Self;
    const OF_ID_TABLE: Option<of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self, Error> + 'bound {
        try_pin_init!(Self {
            _irq <- pdev.request_irq_by_index(
                Flags::TRIGGER_NONE,
                0,
                c"irq-counter",
                Ok::<_, Error>(Counter),
            ),
        })
    }
}

#[pin_data]
struct IrqCounterModule {
    #[pin]
    _driver: kernel::driver::Registration<platform::Adapter<IrqCounter>>,
}

impl kernel::InPlaceModule for IrqCounterModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _driver <- kernel::driver::Registration::new(
                <Self as kernel::ModuleMetadata>::NAME,
                module,
            ),
        })
    }
}

/// KUnit tests: run when the module loads, after its driver bound the device of Cargo.toml
/// and requested the device's interrupt.
#[cfg(test)]
#[kunit_tests(irq_counter_tests)]
mod tests {
    use super::*;

    /// Fire `line` of cargo-kmod's test interrupt controller: the test-device helper's
    /// exported `cargo_kmod_devices_fire`, looked up when the test runs (the module has no
    /// link-time dependency on the helper).
    fn fire(line: u32) -> Result {
        let name = c"cargo_kmod_devices_fire";
        // SAFETY: `name` is a NUL-terminated symbol name.
        let sym = unsafe { kernel::bindings::__symbol_get(name.as_char_ptr()) };
        if sym.is_null() {
            return Err(ENOENT);
        }
        // SAFETY: the helper exports `int cargo_kmod_devices_fire(unsigned int line)`, and
        // `__symbol_get` holds the helper in memory until `__symbol_put`.
        let fire: unsafe extern "C" fn(u32) -> i32 = unsafe { core::mem::transmute(sym) };
        // SAFETY: any line number is accepted (out of range is -EINVAL).
        let ret = unsafe { fire(line) };
        // SAFETY: the reference `__symbol_get` took.
        unsafe { kernel::bindings::__symbol_put(name.as_char_ptr()) };
        kernel::error::to_result(ret)
    }

    #[test]
    fn each_fired_interrupt_is_counted() -> Result {
        let before = COUNT.load(Ordering::Relaxed);
        for _ in 0..3 {
            fire(0)?;
        }
        assert_eq!(COUNT.load(Ordering::Relaxed) - before, 3);
        Ok(())
    }

    #[test]
    fn a_line_the_device_does_not_have_is_refused() {
        assert_eq!(fire(1), Err(EINVAL));
    }
}
