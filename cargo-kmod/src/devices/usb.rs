//! USB test devices (`bus = "usb"`): qemu has no USB model with arbitrary IDs, so the device
//! is made inside the guest, as the kernel's own USB gadget tests do. The tree has the
//! kernel's `dummy_hcd` (a host controller and a device controller, looped back in software)
//! and configfs gadgets; a test boot, before the modules load, builds one gadget per device
//! on its own controller:
//!
//! ```text
//! /sys/kernel/config/usb_gadget/kmodN    idVendor, idProduct
//!     functions/SourceSink.N             one vendor-specific interface (class 0xff)
//!     configs/c.1 -> SourceSink.N
//!     UDC = dummy_udc.N
//! ```
//!
//! and waits until the host side has enumerated it (`/sys/devices/platform/dummy_hcd.N/
//! usbB/B-1/B-1:1.0`); the module's interface driver then binds that interface when it
//! registers. Each device has a controller of its own (`dummy_hcd.num=`), so two devices
//! with the same IDs are still told apart.
//!
//! A device whose interface is of another class (`class`, `subclass`, `protocol`) gets
//! cargo-kmod's own gadget function instead, `functions/kmod_interface.N` with those codes
//! in its `class`, `subclass` and `protocol` attributes: one interface without endpoints,
//! from `templates/devices/cargo_kmod_usb.c`, a module built per tree
//! ([`super::helper::USB_FUNCTION`]) that the step loads first. (The kernel's own functions
//! each have one fixed class.)

use std::collections::BTreeMap;

use crate::kernel::KernelTree;

/// The most USB test devices one boot has: `dummy_hcd`'s controllers (`MAX_NUM_UDC`).
pub const MAX_DEVICES: usize = 32;

/// The kernel configuration a tree needs for USB test devices: the USB host side, the gadget
/// side with `dummy_hcd`, configfs gadgets and the SourceSink function, all built in (the
/// guest loads no module of the tree's own).
pub const NEEDS: &[(&str, &str)] = &[
    ("USB_SUPPORT", "y"),
    ("USB", "y"),
    ("USB_GADGET", "y"),
    ("USB_DUMMY_HCD", "y"),
    ("CONFIGFS_FS", "y"),
    ("USB_CONFIGFS", "y"),
    ("USB_CONFIGFS_F_LB_SS", "y"),
];

/// How long the guest waits for the gadgets to enumerate (hub debounce and port resets take a
/// few hundred milliseconds; TCG is slower).
const ENUMERATE_SECONDS: u32 = 20;

/// [`NEEDS`] as `kernel-config` entries.
pub fn needs() -> BTreeMap<String, String> {
    NEEDS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The symbols of [`NEEDS`] that `tree` does not have built in.
pub fn missing(tree: &KernelTree) -> Vec<&'static str> {
    NEEDS
        .iter()
        .filter(|(k, v)| !crate::kernel::config::meets(&tree.config, k, v))
        .map(|(k, _)| *k)
        .collect()
}

/// The platform device of controller `n`, which the guest names the USB device by.
pub fn controller(n: usize) -> String {
    format!("dummy_hcd.{n}")
}

/// The kernel argument for `count` controllers (`dummy_hcd` makes one unless told).
pub fn kernel_arg(count: usize) -> Option<String> {
    (count > 1).then(|| format!("dummy_hcd.num={count}"))
}

/// Where the gadget function module goes in the guest.
pub const FUNCTION_GUEST_PATH: &str = "/kmod/devices/cargo_kmod_usb.ko";

/// The codes of a USB test device's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
}

impl Interface {
    /// The vendor-specific interface of the kernel's SourceSink function (`ff/00/00`).
    pub const VENDOR: Interface = Interface {
        class: super::spec::USB_CLASS_VENDOR,
        subclass: 0,
        protocol: 0,
    };

    /// From [`Interface`]'s text (`icFFisc00ip00`, as the modalias writes it).
    pub fn parse(s: &str) -> Option<Interface> {
        let rest = s.strip_prefix("ic")?;
        let (class, rest) = rest.split_once("isc")?;
        let (subclass, protocol) = rest.split_once("ip")?;
        let byte = |t: &str| (t.len() == 2).then(|| u8::from_str_radix(t, 16).ok())?;
        Some(Interface {
            class: byte(class)?,
            subclass: byte(subclass)?,
            protocol: byte(protocol)?,
        })
    }
}

/// `icFFisc00ip00`: the interface's part of its modalias, and how a device's `compatible`
/// carries it after the IDs.
impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ic{:02X}isc{:02X}ip{:02X}",
            self.class, self.subclass, self.protocol
        )
    }
}

/// One gadget to build: its controller number, its IDs and its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gadget {
    pub controller: usize,
    pub vendor: u16,
    pub product: u16,
    pub interface: Interface,
}

impl Gadget {
    /// From a device's `compatible` (`["1234:5678", "icFFisc00ip00"]`, as [`super::spec`]
    /// writes it; without the second, the vendor-specific interface).
    pub fn from_compatible(controller: usize, compatible: &[String]) -> Option<Gadget> {
        let (v, p) = compatible.first()?.split_once(':')?;
        let interface = match compatible.get(1) {
            Some(i) => Interface::parse(i)?,
            None => Interface::VENDOR,
        };
        Some(Gadget {
            controller,
            vendor: u16::from_str_radix(v, 16).ok()?,
            product: u16::from_str_radix(p, 16).ok()?,
            interface,
        })
    }

    /// Whether it needs cargo-kmod's gadget function (an interface other than SourceSink's).
    pub fn needs_function(&self) -> bool {
        self.interface != Interface::VENDOR
    }
}

/// The gadgets of `devices`' USB devices, one controller each in their order.
pub fn gadgets(devices: &[super::GuestDevice]) -> Vec<Gadget> {
    devices
        .iter()
        .filter(|d| d.bus == super::Bus::Usb)
        .enumerate()
        .filter_map(|(n, d)| Gadget::from_compatible(n, &d.compatible))
        .collect()
}

/// Whether any of `gadgets` needs cargo-kmod's gadget function module in the guest.
pub fn needs_function(gadgets: &[Gadget]) -> bool {
    gadgets.iter().any(Gadget::needs_function)
}

/// The guest shell text that builds `gadgets` and waits until each has enumerated. Every
/// word in it is cargo-kmod's own (numbers and fixed names), so nothing needs quoting. It
/// fails, saying which, when a gadget cannot be built or does not enumerate in time.
pub fn gadget_script(gadgets: &[Gadget]) -> String {
    let mut s = String::from(
        "c=/sys/kernel/config\n\
         [ -d $c/usb_gadget ] || mount -t configfs configfs $c || exit 1\n",
    );
    if needs_function(gadgets) {
        s.push_str(&format!(
            "insmod {FUNCTION_GUEST_PATH} || {{ echo 'cargo-kmod: the USB gadget function module did not load'; exit 1; }}\n"
        ));
    }
    for g in gadgets {
        let n = g.controller;
        let (function, codes) = if g.needs_function() {
            let f = format!("kmod_interface.{n}");
            let i = g.interface;
            let codes = format!(
                "echo {:#04x} >$g/functions/{f}/class && echo {:#04x} >$g/functions/{f}/subclass && \
                 echo {:#04x} >$g/functions/{f}/protocol && ",
                i.class, i.subclass, i.protocol
            );
            (f, codes)
        } else {
            (format!("SourceSink.{n}"), String::new())
        };
        s.push_str(&format!(
            "g=$c/usb_gadget/kmod{n}\n\
             mkdir $g $g/configs/c.1 $g/functions/{function} || exit 1\n\
             {codes}echo {v:#06x} >$g/idVendor && echo {p:#06x} >$g/idProduct && \
             ln -s $g/functions/{function} $g/configs/c.1/ && echo dummy_udc.{n} >$g/UDC || \
             {{ echo 'cargo-kmod: USB gadget {v:04x}:{p:04x} could not be built on dummy_udc.{n}'; exit 1; }}\n",
            v = g.vendor,
            p = g.product,
        ));
    }
    // The interfaces appear once the host side has configured each device.
    let globs: Vec<String> = gadgets
        .iter()
        .map(|g| {
            format!(
                "/sys/devices/platform/{}/usb*/*-1/*-1:1.0",
                controller(g.controller)
            )
        })
        .collect();
    s.push_str(&format!(
        "t=0\n\
         while :; do\n\
         \tw=\n\
         \tfor x in {}; do [ -e \"$x\" ] || w=\"$w $x\"; done\n\
         \t[ -z \"$w\" ] && break\n\
         \tt=$((t+1))\n\
         \tif [ $t -gt {} ]; then echo \"cargo-kmod: no USB interface after {ENUMERATE_SECONDS} s:$w\"; exit 1; fi\n\
         \tsleep 0.05\n\
         done\n",
        globs.join(" "),
        ENUMERATE_SECONDS * 20
    ));
    s
}

/// The `kmod_usb CONTROLLER IDS` check function: the device on the controller's root port,
/// whether its IDs are the declared ones, and its first interface's driver and module.
pub fn check_fn() -> &'static str {
    "kmod_usb() {\n\
     \tlocal o=- n=- d=- m=- x v p i\n\
     \tfor x in /sys/devices/platform/$1/usb*/*-1; do\n\
     \t\t[ -e \"$x/idVendor\" ] || continue\n\
     \t\tread v <\"$x/idVendor\"; read p <\"$x/idProduct\"\n\
     \t\t[ \"$v:$p\" = \"$2\" ] || continue\n\
     \t\to=1\n\
     \t\tfor i in \"$x\"/*-1:1.0; do\n\
     \t\t\t[ -e \"$i\" ] || continue\n\
     \t\t\tn=${i##*/}\n\
     \t\t\tcd -P \"$i/driver\" 2>/dev/null && d=${PWD##*/}\n\
     \t\t\tcd -P \"$i/driver/module\" 2>/dev/null && m=${PWD##*/}\n\
     \t\tdone\n\
     \tdone\n\
     \tcd /\n\
     \tout \"device $1 usb $o $n $d $m\"\n\
     }\n"
}

/// The modalias the kernel gives the gadget's interface, for matching a driver's aliases:
/// interface 0 with the declared codes, device class 0 (the gadget's default). `bcdDevice`
/// is the kernel's; drivers' tables leave it open (`d*`).
pub fn modalias(compatible: &[String]) -> Option<String> {
    let g = Gadget::from_compatible(0, compatible)?;
    Some(format!(
        "usb:v{:04X}p{:04X}d0000dc00dsc00dp00{}in00",
        g.vendor, g.product, g.interface
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gadget_per_controller_and_a_bounded_wait() {
        let g = |controller, interface| Gadget {
            controller,
            vendor: 0x1234,
            product: 0x5678,
            interface,
        };
        let s = gadget_script(&[g(0, Interface::VENDOR), g(1, Interface::VENDOR)]);
        assert!(s.contains("echo 0x1234 >$g/idVendor && echo 0x5678 >$g/idProduct"));
        assert!(s.contains("echo dummy_udc.1 >$g/UDC"));
        // The kernel's SourceSink presents a vendor-specific interface: no module to load.
        assert!(
            s.contains("mkdir $g $g/configs/c.1 $g/functions/SourceSink.1 "),
            "{s}"
        );
        assert!(!s.contains("insmod"), "{s}");
        // Another class: cargo-kmod's function, loaded first, with the codes.
        let dc = Interface {
            class: 0xdc,
            subclass: 1,
            protocol: 2,
        };
        let s = gadget_script(&[g(0, Interface::VENDOR), g(1, dc)]);
        assert!(
            s.contains("insmod /kmod/devices/cargo_kmod_usb.ko || {"),
            "{s}"
        );
        assert!(s.contains("functions/SourceSink.0 "), "{s}");
        assert!(
            s.contains("echo 0xdc >$g/functions/kmod_interface.1/class && echo 0x01 >$g/functions/kmod_interface.1/subclass && echo 0x02 >$g/functions/kmod_interface.1/protocol && "),
            "{s}"
        );
        assert!(
            s.contains("ln -s $g/functions/kmod_interface.1 $g/configs/c.1/"),
            "{s}"
        );
        assert!(s.contains(
            "for x in /sys/devices/platform/dummy_hcd.0/usb*/*-1/*-1:1.0 /sys/devices/platform/dummy_hcd.1/usb*/*-1/*-1:1.0;"
        ));
        assert!(s.contains("if [ $t -gt 400 ]"));
        assert_eq!(kernel_arg(1), None);
        assert_eq!(kernel_arg(2).as_deref(), Some("dummy_hcd.num=2"));
    }

    #[test]
    fn ids_round_trip_and_make_the_modalias() {
        let c = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Gadget::from_compatible(3, &c(&["abcd:0001"])),
            Some(Gadget {
                controller: 3,
                vendor: 0xabcd,
                product: 1,
                interface: Interface::VENDOR,
            })
        );
        assert_eq!(Gadget::from_compatible(0, &c(&["x"])), None);
        assert_eq!(Gadget::from_compatible(0, &c(&["abcd:0001", "icXX"])), None);
        assert_eq!(
            modalias(&c(&["1234:5678"])).unwrap(),
            "usb:v1234p5678d0000dc00dsc00dp00icFFisc00ip00in00"
        );
        assert_eq!(
            modalias(&c(&["1234:5678", "icDCisc01ip02"])).unwrap(),
            "usb:v1234p5678d0000dc00dsc00dp00icDCisc01ip02in00"
        );
        let i = Interface {
            class: 3,
            subclass: 1,
            protocol: 2,
        };
        assert_eq!(Interface::parse(&i.to_string()), Some(i));
    }
}
