// SPDX-License-Identifier: GPL-2.0

//! A platform driver shaped like a board's LED driver: it binds to `acme,blinker` devices
//! and reads how to blink from the device's properties.
//!
//! ```text
//! blinker {
//!     compatible = "acme,blinker";
//!     acme,period-ms = <250>;               // u32, required, 1 to 10000
//!     acme,label = "status";                // string, optional
//!     acme,pins = <3 5>;                    // u32 array, 1 to 8 pins
//!     acme,active-low;                      // flag
//!     acme,max-ticks = /bits/ 64 <...>;     // u64, optional
//! };
//! ```
//!
//! `cargo kmod test` boots with the device declared in Cargo.toml; the driver probes it
//! while the module loads, and the KUnit tests check what `probe` read.

use kernel::{
    device::{self, Core},
    of, platform,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
};

kmod_macros::module! {
    type: BlinkerModule,
}

/// The most pins one blinker drives.
const MAX_PINS: usize = 8;

/// What `probe` reads from the device.
struct Settings {
    period_ms: u32,
    label: CString,
    pins: KVec<u32>,
    active_low: bool,
    max_ticks: u64,
}

impl Settings {
    fn read(dev: &device::Device) -> Result<Settings> {
        let fwnode = dev.fwnode().ok_or(ENODEV)?;
        let period_ms: u32 = fwnode.property_read(c"acme,period-ms").required_by(dev)?;
        check_period(period_ms).inspect_err(|_| {
            dev_err!(
                dev,
                "acme,period-ms is {period_ms}: it must be 1 to 10000\n"
            );
        })?;
        let label = match fwnode.property_read::<CString>(c"acme,label").optional() {
            Some(label) => label,
            None => c"blinker".try_into()?,
        };
        let count = fwnode.property_count_elem::<u32>(c"acme,pins")?;
        if count == 0 || count > MAX_PINS {
            dev_err!(
                dev,
                "acme,pins has {count} pins: it must have 1 to {MAX_PINS}\n"
            );
            return Err(EINVAL);
        }
        let pins = fwnode
            .property_read_array_vec::<u32>(c"acme,pins", count)?
            .required_by(dev)?;
        Ok(Settings {
            period_ms,
            label,
            pins,
            active_low: fwnode.property_read_bool(c"acme,active-low"),
            max_ticks: fwnode.property_read(c"acme,max-ticks").or(u64::MAX),
        })
    }
}

/// A period is 1 ms to 10 s.
fn check_period(ms: u32) -> Result {
    if (1..=10_000).contains(&ms) {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

// What the last `probe` read, for the KUnit tests below (test builds only).
#[cfg(test)]
kernel::sync::global_lock! {
    // SAFETY: initialized in `BlinkerModule::init`, before the driver registers.
    unsafe(uninit) static PROBED: Mutex<Option<Arc<Settings>>> = None;
}

/// One bound blinker.
struct Blinker {
    pdev: ARef<platform::Device>,
    settings: Arc<Settings>,
}

kernel::of_device_table!(
    OF_TABLE,
    MODULE_OF_TABLE,
    <Blinker as platform::Driver>::IdInfo,
    [(of::DeviceId::new(c"acme,blinker"), ())]
);

impl platform::Driver for Blinker {
    type IdInfo = ();
    type Data<'bound> = Self;
    const OF_ID_TABLE: Option<of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self, Error> + 'bound {
        let dev = pdev.as_ref();
        let settings = Arc::new(Settings::read(dev)?, GFP_KERNEL)?;
        dev_info!(
            dev,
            "blinking {:?} on pins {:?} every {} ms (active {}, at most {} ticks)\n",
            settings.label,
            &settings.pins[..],
            settings.period_ms,
            if settings.active_low { "low" } else { "high" },
            settings.max_ticks
        );
        #[cfg(test)]
        {
            *PROBED.lock() = Some(settings.clone());
        }
        Ok(Self {
            pdev: pdev.into(),
            settings,
        })
    }
}

impl Drop for Blinker {
    fn drop(&mut self) {
        #[cfg(test)]
        {
            *PROBED.lock() = None;
        }
        dev_info!(self.pdev.as_ref(), "stopped {:?}\n", self.settings.label);
    }
}

#[pin_data]
struct BlinkerModule {
    #[pin]
    _driver: kernel::driver::Registration<platform::Adapter<Blinker>>,
}

impl kernel::InPlaceModule for BlinkerModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        #[cfg(test)]
        // SAFETY: called once, before the driver (the only user of `PROBED`) registers.
        unsafe {
            PROBED.init()
        };
        try_pin_init!(Self {
            _driver <- kernel::driver::Registration::new(
                <Self as kernel::ModuleMetadata>::NAME,
                module,
            ),
        })
    }
}

/// KUnit tests: run when the module loads, after `init` registered the driver and the kernel
/// probed the device from Cargo.toml.
#[cfg(test)]
#[kunit_tests(blinker_tests)]
mod tests {
    use super::*;

    #[test]
    fn probe_read_every_property() -> Result {
        let s = PROBED.lock().clone().ok_or(ENODEV)?;
        assert_eq!(s.period_ms, 250);
        assert_eq!(s.label.to_bytes(), b"status");
        assert_eq!(&s.pins[..], &[3, 5]);
        assert!(s.active_low);
        assert_eq!(s.max_ticks, 0x1_0000_0000);
        Ok(())
    }

    #[test]
    fn periods_are_checked() {
        assert!(check_period(1).is_ok());
        assert!(check_period(10_000).is_ok());
        assert_eq!(check_period(0), Err(EINVAL));
        assert_eq!(check_period(10_001), Err(EINVAL));
    }
}
