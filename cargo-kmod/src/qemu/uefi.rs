//! Secure Boot test boots (`test --secure-boot`, `run --secure-boot`): the guest starts in
//! UEFI firmware with Secure Boot on (Debian's OVMF on x86_64 `pc`, AAVMF on arm64 `virt`),
//! as a Secure Boot machine does, and the user's certificate enrolled as a Machine Owner Key.
//!
//! The firmware's variable store is made with `virt-fw-vars` (Debian's
//! `python3-virt-firmware`) from the firmware's own template, its keys replaced:
//!
//! ```text
//! PK, KEK          a platform key generated for the store (no Microsoft keys)
//! db               the certificates that signed the kernel image (its Authenticode
//!                  signature): the firmware starts that kernel and nothing else
//! MokList          the user's certificate, where `mokutil --import` and shim's MOK
//!                  manager leave it on a real machine
//! MokListRT        the same list as the runtime variable the kernel reads (shim copies
//!                  MokList to it at every boot; here it is stored, as there is no shim)
//! SecureBootEnable on
//! ```
//!
//! The kernel then locks itself down (`lockdown=integrity`), enforces module signatures, and
//! loads `MokListRT` into its platform keyring, which Debian's kernel also trusts for
//! modules. Stores are cached per (firmware, kernel signers, certificate); each boot writes to
//! its own copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::kernel::Arch;
use crate::shell::Shell;

/// One arch's UEFI firmware, as Debian packages it.
struct Firmware {
    /// The code, read-only (built with Secure Boot support).
    code: &'static str,
    /// The variable store the boot's store is made from.
    vars: &'static str,
    /// Variables of that template to drop first (its own keys).
    drop: &'static [&'static str],
    /// The Debian package that has both.
    package: &'static str,
}

/// x86_64: OVMF's 4 MiB build, with Secure Boot and without SMM (so it runs on qemu's `pc`),
/// and its empty store.
const OVMF: Firmware = Firmware {
    code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
    vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
    drop: &[],
    package: "ovmf",
};

/// arm64: AAVMF (its code has Secure Boot support); its empty store is not formatted, so
/// the Microsoft-keyed one is the template, its keys dropped.
const AAVMF: Firmware = Firmware {
    code: "/usr/share/AAVMF/AAVMF_CODE.fd",
    vars: "/usr/share/AAVMF/AAVMF_VARS.ms.fd",
    drop: &["PK", "KEK", "db", "dbx", "MokList"],
    package: "qemu-efi-aarch64",
};

fn firmware(arch: Arch) -> &'static Firmware {
    match arch {
        Arch::X86_64 => &OVMF,
        Arch::Arm64 => &AAVMF,
    }
}

/// `EFI_CERT_X509_GUID` (a5c059a1-94e4-4aa7-87b5-ab155c2bf072), as stored.
const CERT_X509: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];

/// The owner GUID cargo-kmod writes on the entries it enrolls.
const OWNER: &str = "6d3b6c2a-7c1e-4c8e-9a53-6b6d6f64736b";

/// shim's vendor GUID, under which `MokList` and `MokListRT` live.
const SHIM_GUID: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";

/// The firmware of a Secure Boot boot: its code and this boot's own copy of the variables.
#[derive(Debug)]
pub struct SecureBootFirmware {
    pub code: PathBuf,
    pub vars: PathBuf,
    /// The signed image the firmware starts.
    pub kernel: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecureBootFirmware {
    /// qemu's arguments: the code read-only, the variables writable (the firmware updates
    /// its boot entries), commas in the paths doubled as qemu's option syntax escapes them.
    pub fn qemu_args(&self) -> Vec<std::ffi::OsString> {
        let drive = |p: &Path, ro: bool| {
            format!(
                "if=pflash,format=raw{},file={}",
                if ro { ",readonly=on" } else { "" },
                p.display().to_string().replace(',', ",,")
            )
        };
        vec![
            "-drive".into(),
            drive(&self.code, true).into(),
            "-drive".into(),
            drive(&self.vars, false).into(),
        ]
    }
}

/// The certificates of the Authenticode signature of a PE image (a UEFI-bootable kernel):
/// DER, in the signature's order. Empty when the image carries no signature.
pub fn image_signers(image: &[u8]) -> Vec<Vec<u8>> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(pe) = u32_at(0x3c) else {
        return Vec::new();
    };
    if image.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Vec::new();
    }
    // The optional header's data directories: entry 4 is the certificate table.
    let opt = pe + 24;
    let dirs = match u16_at(opt) {
        Some(0x20b) => opt + 112,
        Some(0x10b) => opt + 96,
        _ => return Vec::new(),
    };
    let (Some(start), Some(size)) = (u32_at(dirs + 32), u32_at(dirs + 36)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = start;
    let end = start.saturating_add(size).min(image.len());
    // WIN_CERTIFICATE entries: length, revision, type (2: PKCS#7), the data, 8-aligned.
    while at + 8 <= end {
        let Some(len) = u32_at(at) else { break };
        if len < 8 || at + len > end {
            break;
        }
        if u16_at(at + 6) == Some(2) {
            if let Ok(p7) = openssl::pkcs7::Pkcs7::from_der(&image[at + 8..at + len]) {
                if let Ok(empty) = openssl::stack::Stack::<openssl::x509::X509>::new() {
                    if let Ok(signers) = p7.signers(&empty, openssl::pkcs7::Pkcs7Flags::empty()) {
                        out.extend(signers.iter().filter_map(|c| c.to_der().ok()));
                    }
                }
            }
        }
        at += (len + 7) & !7;
    }
    out
}

/// A kernel image Secure Boot firmware starts: its path and the certificates of its
/// Authenticode signature.
#[derive(Debug)]
pub struct SignedImage {
    pub path: PathBuf,
    signers: Vec<Vec<u8>>,
}

/// `image` as a Secure Boot boot on `arch` needs it, checked before anything is built: the
/// firmware and `virt-fw-vars` there, and the image signed (the firmware would not start it
/// otherwise).
pub fn signed_image(arch: Arch, image: &Path) -> Result<SignedImage> {
    tools(arch)?;
    let signers = std::fs::read(image)
        .map(|b| image_signers(&b))
        .unwrap_or_default();
    if signers.is_empty() {
        crate::bail_user!(
            "kernel image `{}` has no UEFI Secure Boot signature, so Secure Boot firmware would refuse to start it", image.display();
            hint = "`--secure-boot` boots a signed distribution kernel (a `distro-kernel` target)"
        );
    }
    Ok(SignedImage {
        path: image.to_path_buf(),
        signers,
    })
}

/// The arch's firmware and `virt-fw-vars`, or the package that has what is missing.
fn tools(arch: Arch) -> Result<(&'static Firmware, PathBuf)> {
    let fw = firmware(arch);
    for f in [fw.code, fw.vars] {
        if !Path::new(f).is_file() {
            crate::bail_user!(
                "`--secure-boot` needs the {} UEFI firmware `{}`, which is not installed", arch, f;
                hint = "install Debian's `{}` package (`cargo xtask setup` does)", fw.package
            );
        }
    }
    let Some(tool) = crate::kernel::toolchain::which("virt-fw-vars") else {
        crate::bail_user!(
            "`--secure-boot` needs `virt-fw-vars` to enroll the keys in the firmware";
            hint = "install Debian's `python3-virt-firmware` package (`cargo xtask setup` does)"
        );
    };
    Ok((fw, tool))
}

/// How the store is made: part of its cache key, so a change to it makes new stores.
const RECIPE: &str =
    "cargo-kmod uefi-vars 1: enroll-generate, no microsoft, db signers, MokList+MokListRT, sb";

/// The stores kept: the most recently used.
const KEEP: usize = 8;

/// Keep the [`KEEP`] most recently used stores under `cache`; remove the rest, and working
/// directories a killed run left (over an hour old). Best effort: a boot copies its store
/// when it begins.
fn prune(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut stores = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".new-") {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if old {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        let used = std::fs::metadata(path.join("vars.fd"))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        stores.push((used, path));
    }
    stores.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, path) in stores.into_iter().skip(KEEP) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// An `EFI_SIGNATURE_LIST` of one X.509 certificate owned by cargo-kmod.
fn signature_list(cert_der: &[u8]) -> Vec<u8> {
    let owner = uuid_bytes(OWNER);
    let sig_size = 16 + cert_der.len();
    let list_size = 28 + sig_size;
    let mut v = Vec::with_capacity(list_size);
    v.extend_from_slice(&CERT_X509);
    v.extend_from_slice(&(list_size as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(sig_size as u32).to_le_bytes());
    v.extend_from_slice(&owner);
    v.extend_from_slice(cert_der);
    v
}

/// A GUID's bytes as UEFI stores it (the first three fields little-endian).
fn uuid_bytes(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// The `virt-fw-vars --set-json` document for the MOK lists holding `cert_der`.
fn mok_json(cert_der: &[u8]) -> String {
    let data: String = signature_list(cert_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // NV+BS: the list shim keeps; NV+BS+RT: the runtime copy the kernel reads.
    let var = |name: &str, attr: u32| {
        format!("{{\"name\": \"{name}\", \"guid\": \"{SHIM_GUID}\", \"attr\": {attr}, \"data\": \"{data}\"}}")
    };
    format!(
        "{{\"version\": 2, \"variables\": [{}, {}]}}\n",
        var("MokList", 3),
        var("MokListRT", 7)
    )
}

/// The firmware for a Secure Boot boot of `image` on `arch` with the certificate `cert_der`
/// enrolled as a Machine Owner Key; the store is made once under `cache` (a directory of
/// `$CARGO_KMOD_HOME`) and copied for the boot.
pub fn secure_boot_firmware(
    shell: &Shell,
    arch: Arch,
    image: &SignedImage,
    cert_der: &[u8],
    cache: &Path,
) -> Result<SecureBootFirmware> {
    let (fw, tool) = tools(arch)?;
    let signers = &image.signers;
    let mut key_input = Vec::new();
    key_input.extend_from_slice(RECIPE.as_bytes());
    key_input.extend_from_slice(fw.code.as_bytes());
    key_input.extend_from_slice(
        &std::fs::read(fw.vars)
            .with_context(|| format!("cannot read the firmware's store `{}`", fw.vars))?,
    );
    for s in signers {
        key_input.extend_from_slice(s);
    }
    key_input.extend_from_slice(cert_der);
    let key = &crate::fsutil::sha256_hex(&key_input)[..16];
    let dir = cache.join(key);
    let vars = dir.join("vars.fd");
    if !vars.is_file() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let work = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&dir)
            .context("cannot create a temporary directory")?;
        let mut args: Vec<String> = vec!["--input".into(), fw.vars.into()];
        for v in fw.drop {
            args.extend(["--delete".into(), v.to_string()]);
        }
        args.extend([
            "--enroll-generate".into(),
            "cargo-kmod test platform key".into(),
            "--no-microsoft".into(),
        ]);
        for (i, s) in signers.iter().enumerate() {
            let p = work.path().join(format!("db-{i}.der"));
            std::fs::write(&p, s).with_context(|| format!("cannot write `{}`", p.display()))?;
            args.extend(["--add-db".into(), OWNER.into(), p.display().to_string()]);
        }
        let json = work.path().join("mok.json");
        std::fs::write(&json, mok_json(cert_der))
            .with_context(|| format!("cannot write `{}`", json.display()))?;
        let out = work.path().join("vars.fd");
        args.extend([
            "--set-json".into(),
            json.display().to_string(),
            "--secure-boot".into(),
            "--output".into(),
            out.display().to_string(),
        ]);
        let sh = xshell::Shell::new().context("cannot start a shell for `virt-fw-vars`")?;
        crate::process::run(shell, xshell::cmd!(sh, "{tool} {args...}"))?;
        std::fs::rename(&out, &vars)
            .with_context(|| format!("cannot move the store to `{}`", vars.display()))?;
        prune(cache);
    }
    // Its modification time says when it was used last, for pruning.
    let _ = std::fs::File::options()
        .append(true)
        .open(&vars)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    let run = tempfile::Builder::new()
        .prefix("cargo-kmod-uefi-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let copy = run.path().join("vars.fd");
    std::fs::copy(&vars, &copy).with_context(|| format!("cannot copy `{}`", vars.display()))?;
    Ok(SecureBootFirmware {
        code: PathBuf::from(fw.code),
        kernel: image.path.clone(),
        vars: copy,
        _dir: run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_list_holds_one_certificate() {
        let l = signature_list(&[1, 2, 3]);
        assert_eq!(&l[..16], &CERT_X509);
        assert_eq!(u32::from_le_bytes(l[16..20].try_into().unwrap()), 28 + 19);
        assert_eq!(u32::from_le_bytes(l[24..28].try_into().unwrap()), 19);
        assert_eq!(&l[l.len() - 3..], &[1, 2, 3]);
        assert_eq!(
            uuid_bytes("a5c059a1-94e4-4aa7-87b5-ab155c2bf072"),
            CERT_X509
        );
        let j = mok_json(&[0xab]);
        assert!(j.contains("\"name\": \"MokListRT\", \"guid\": \"605dab50-e046-4300-abb6-3dd810dd8b23\", \"attr\": 7"));
    }

    #[test]
    fn images_without_a_signature_have_no_signers() {
        assert!(image_signers(b"").is_empty());
        assert!(image_signers(&[0u8; 4096]).is_empty());
        let mut fake = vec![0u8; 512];
        fake[0x3c] = 0x80;
        fake[0x80..0x84].copy_from_slice(b"PE\0\0");
        fake[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
        // A certificate table pointing past the end is ignored.
        fake[0x98 + 112 + 32..0x98 + 112 + 36].copy_from_slice(&400u32.to_le_bytes());
        fake[0x98 + 112 + 36..0x98 + 112 + 40].copy_from_slice(&9999u32.to_le_bytes());
        assert!(image_signers(&fake).is_empty());
    }
}
