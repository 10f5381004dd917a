// SPDX-License-Identifier: GPL-2.0

//! A misc character device shaped like what a board-driver author writes.
//!
//! Loading the module registers `/dev/kmod-echo`. A write replaces the device's message (at
//! most [`CAPACITY`] bytes; longer writes fail with `EFBIG`), and reads return the message:
//!
//! ```text
//! # echo hello > /dev/kmod-echo
//! # cat /dev/kmod-echo
//! hello
//! ```
//!
//! Modelled on the kernel's `samples/rust/rust_misc_device.rs`; the message is shared by
//! every open file, behind a global mutex.

use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

kmod_macros::module! {
    type: EchoModule,
}

/// The longest message the device keeps.
const CAPACITY: usize = 1024;

/// The device's message.
struct Message {
    data: [u8; CAPACITY],
    len: usize,
}

impl Message {
    const fn new() -> Self {
        Message {
            data: [0; CAPACITY],
            len: 0,
        }
    }

    fn contents(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Replace the message with `len` bytes that `fill` copies into the buffer it is given;
    /// `fill` returns how many it copied.
    fn replace(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize> {
        if len > CAPACITY {
            return Err(EFBIG);
        }
        self.len = fill(&mut self.data[..len]);
        Ok(self.len)
    }
}

kernel::sync::global_lock! {
    // SAFETY: initialized in `EchoModule::init` before the device is registered.
    unsafe(uninit) static MESSAGE: Mutex<Message> = Message::new();
}

#[pin_data]
struct EchoModule {
    #[pin]
    _device: MiscDeviceRegistration<EchoFile>,
}

impl kernel::InPlaceModule for EchoModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: called once, before anything can lock `MESSAGE`.
        unsafe { MESSAGE.init() };
        pr_info!("registering /dev/kmod-echo\n");
        try_pin_init!(Self {
            _device <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"kmod-echo" }),
        })
    }
}

/// One open file of `/dev/kmod-echo`; the message itself is shared.
struct EchoFile;

#[vtable]
impl MiscDevice for EchoFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(EchoFile, GFP_KERNEL)?)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let message = MESSAGE.lock();
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), message.contents())
    }

    fn write_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let mut message = MESSAGE.lock();
        let written = message.replace(iov.len(), |buf| iov.copy_from_iter(buf))?;
        // The next read of this file starts at the new message's beginning.
        *kiocb.ki_pos_mut() = 0;
        Ok(written)
    }
}

/// KUnit tests: built only by `cargo kmod test` (`--cfg test`), run when the module loads.
#[cfg(test)]
#[kunit_tests(miscdev_tests)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_message() -> Result {
        let mut m = KBox::new(Message::new(), GFP_KERNEL)?;
        m.replace(5, |buf| {
            buf.copy_from_slice(b"hello");
            5
        })?;
        assert_eq!(m.contents(), b"hello");
        m.replace(2, |buf| {
            buf.copy_from_slice(b"hi");
            2
        })?;
        assert_eq!(m.contents(), b"hi");
        Ok(())
    }

    #[test]
    fn a_short_copy_keeps_what_arrived() -> Result {
        let mut m = KBox::new(Message::new(), GFP_KERNEL)?;
        assert_eq!(m.replace(4, |_| 1)?, 1);
        assert_eq!(m.contents().len(), 1);
        Ok(())
    }

    #[test]
    fn long_writes_are_refused() -> Result {
        let mut m = KBox::new(Message::new(), GFP_KERNEL)?;
        assert_eq!(m.replace(CAPACITY + 1, |_| 0), Err(EFBIG));
        assert_eq!(m.replace(CAPACITY, |buf| buf.len())?, CAPACITY);
        Ok(())
    }
}
