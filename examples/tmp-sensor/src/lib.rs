// SPDX-License-Identifier: GPL-2.0

//! An I2C temperature sensor driver: it binds to `acme,tmp-sensor` clients (or clients named
//! `tmp-sensor` through the I2C id table), reads its settings from the device's properties,
//! checks the chip's ID register and reads the temperature over SMBus.
//!
//! `cargo kmod test` boots with the client declared in Cargo.toml on cargo-kmod's software
//! I2C bus, whose register file answers the driver's SMBus reads; the KUnit tests check what
//! `probe` read.

use kernel::{
    device::Core,
    i2c, of,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
};

kmod_macros::module! {
    type: TmpSensorModule,
}

/// The chip's ID register and the ID it must hold.
const REG_ID: u8 = 0x0f;
const CHIP_ID: u8 = 0xa1;
/// The temperature register: 12 bits, big-endian, left-aligned, 1/16 °C per step.
const REG_TEMP: u8 = 0x00;

/// What `probe` read: properties and registers.
struct Reading {
    resolution_bits: u32,
    label: CString,
    /// Milli-degrees Celsius.
    temp_mc: i32,
}

/// Milli-degrees Celsius from the temperature register's two bytes.
fn temp_mc(bytes: [u8; 2]) -> i32 {
    let raw = i16::from_be_bytes(bytes) >> 4;
    i32::from(raw) * 1000 / 16
}

/// SMBus reads, until the kernel crate wraps them.
mod smbus {
    use kernel::{bindings, error::to_result, i2c, prelude::*};

    fn raw(
        client: &i2c::I2cClient<impl kernel::device::DeviceContext>,
    ) -> *const bindings::i2c_client {
        // `I2cClient` is a `#[repr(transparent)]` wrapper of `struct i2c_client`.
        core::ptr::from_ref(client).cast()
    }

    pub(crate) fn read_byte(
        client: &i2c::I2cClient<impl kernel::device::DeviceContext>,
        reg: u8,
    ) -> Result<u8> {
        // SAFETY: `raw` points to a valid, bound client for the duration of the call.
        let v = unsafe { bindings::i2c_smbus_read_byte_data(raw(client), reg) };
        to_result(v)?;
        Ok(v as u8)
    }

    pub(crate) fn read_block<const N: usize>(
        client: &i2c::I2cClient<impl kernel::device::DeviceContext>,
        reg: u8,
    ) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        // SAFETY: `raw` points to a valid, bound client; `buf` holds `N` bytes.
        let n = unsafe {
            bindings::i2c_smbus_read_i2c_block_data(raw(client), reg, N as u8, buf.as_mut_ptr())
        };
        to_result(n)?;
        if n as usize != N {
            return Err(EIO);
        }
        Ok(buf)
    }
}

impl Reading {
    fn read(client: &i2c::I2cClient<Core<'_>>) -> Result<Reading> {
        let dev = client.as_ref();
        let fwnode = dev.fwnode().ok_or(ENODEV)?;
        let resolution_bits: u32 = fwnode
            .property_read(c"acme,resolution-bits")
            .required_by(dev)?;
        if !(9..=12).contains(&resolution_bits) {
            dev_err!(
                dev,
                "acme,resolution-bits is {resolution_bits}: it must be 9 to 12\n"
            );
            return Err(EINVAL);
        }
        let label = match fwnode.property_read::<CString>(c"acme,label").optional() {
            Some(label) => label,
            None => c"tmp-sensor".try_into()?,
        };
        let id = smbus::read_byte(client, REG_ID)?;
        if id != CHIP_ID {
            dev_err!(dev, "chip ID is {id:#04x}, not {CHIP_ID:#04x}\n");
            return Err(ENODEV);
        }
        let temp = smbus::read_block::<2>(client, REG_TEMP)?;
        Ok(Reading {
            resolution_bits,
            label,
            temp_mc: temp_mc(temp),
        })
    }
}

// What the last `probe` read, for the KUnit tests below (test builds only).
#[cfg(test)]
kernel::sync::global_lock! {
    // SAFETY: initialized in `TmpSensorModule::init`, before the driver registers.
    unsafe(uninit) static PROBED: Mutex<Option<Arc<Reading>>> = None;
}

/// One bound sensor.
struct TmpSensor {
    client: ARef<i2c::I2cClient>,
    reading: Arc<Reading>,
}

kernel::of_device_table!(
    OF_TABLE,
    MODULE_OF_TABLE,
    <TmpSensor as i2c::Driver>::IdInfo,
    [(of::DeviceId::new(c"acme,tmp-sensor"), ())]
);

kernel::i2c_device_table!(
    I2C_TABLE,
    MODULE_I2C_TABLE,
    <TmpSensor as i2c::Driver>::IdInfo,
    [(i2c::DeviceId::new(c"tmp-sensor"), ())]
);

impl i2c::Driver for TmpSensor {
    type IdInfo = ();
    type Data<'bound> = Self;
    const OF_ID_TABLE: Option<of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);
    const I2C_ID_TABLE: Option<i2c::IdTable<Self::IdInfo>> = Some(&I2C_TABLE);

    fn probe<'bound>(
        client: &'bound i2c::I2cClient<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self, Error> + 'bound {
        let reading = Arc::new(Reading::read(client)?, GFP_KERNEL)?;
        dev_info!(
            client.as_ref(),
            "{:?}: {} m°C ({}-bit)\n",
            reading.label,
            reading.temp_mc,
            reading.resolution_bits
        );
        #[cfg(test)]
        {
            *PROBED.lock() = Some(reading.clone());
        }
        Ok(Self {
            client: client.into(),
            reading,
        })
    }
}

impl Drop for TmpSensor {
    fn drop(&mut self) {
        #[cfg(test)]
        {
            *PROBED.lock() = None;
        }
        dev_info!(self.client.as_ref(), "removed {:?}\n", self.reading.label);
    }
}

#[pin_data]
struct TmpSensorModule {
    #[pin]
    _driver: kernel::driver::Registration<i2c::Adapter<TmpSensor>>,
}

impl kernel::InPlaceModule for TmpSensorModule {
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

/// KUnit tests: run when the module loads, after the driver probed the client from
/// Cargo.toml.
#[cfg(test)]
#[kunit_tests(tmp_sensor_tests)]
mod tests {
    use super::*;

    #[test]
    fn probe_read_properties_and_registers() -> Result {
        let r = PROBED.lock().clone().ok_or(ENODEV)?;
        assert_eq!(r.resolution_bits, 12);
        assert_eq!(r.label.to_bytes(), b"board");
        assert_eq!(r.temp_mc, 25_500);
        Ok(())
    }

    #[test]
    fn temperatures_convert() {
        assert_eq!(temp_mc([0x19, 0x80]), 25_500);
        assert_eq!(temp_mc([0x00, 0x00]), 0);
        assert_eq!(temp_mc([0xff, 0xf0]), -62);
    }
}
