//! Fuzz the `.ko` reader: decompression, ELF sections, `.modinfo`, symbol versions and the
//! appended PKCS#7 signature. Any input must give `Ok` or `Err`, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cargo_kmod::ko::parse(data);
    if let Ok((_, bytes)) = cargo_kmod::ko::decode(data) {
        let _ = cargo_kmod::ko::parse(&bytes);
    }
    let _ = cargo_kmod::ko::signature::parse_pkcs7(data);
});
