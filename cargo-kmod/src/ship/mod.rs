//! Shipping built modules: verify, strip, sign, compress, package and install.
//!
//! The stages, each a plain function over bytes so tests can drive them by hand:
//!
//! ```text
//! .ko ──verify──▶ ok? ──strip──▶ --strip-debug ──sign──▶ appended PKCS#7 ──compress──▶ .ko.xz
//!                                                                         │
//!                       package (tar | deb | dkms) ◀── lib/modules/<release>/<dir>/ ──▶ install + depmod
//! ```
//!
//! [`prepare`] runs strip, sign and compress for one module (in the order the kernel's
//! `modules_install` does: sign before compressing); [`package`] and [`install`] lay the
//! results out under `lib/modules/<release>/<dir>/`.

pub mod compress;
pub mod install;
pub mod kit;
pub mod names;
pub mod package;
pub mod sign;
pub mod strip;
pub mod symvers;
pub mod verify;

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::kernel::KernelTree;
use crate::ko::{self, Compression, KoFile};
use crate::shell::Shell;

pub use sign::SigningKey;

/// What to do to each module before it is laid out.
#[derive(Debug, Default)]
pub struct ShipOptions {
    /// `--strip-debug` (like `INSTALL_MOD_STRIP=1`).
    pub strip: bool,
    pub sign: Option<SigningKey>,
    pub compression: Compression,
}

/// One module, processed and ready to be written.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    /// The module name (`hello`).
    pub module: String,
    /// The file name (`hello.ko.xz`).
    pub file_name: String,
    /// `.modinfo` `version=`, when the module has one.
    pub version: Option<String>,
    pub signed: bool,
    pub compression: Compression,
    pub sha256: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Prepared {
    /// A module that ships as source (a DKMS package): its name, no bytes. The name is
    /// checked like [`prepare`] checks it.
    pub fn source_only(ko: &KoFile) -> Result<Prepared> {
        let name = names::module_name(ko)?.to_string();
        Ok(Prepared {
            file_name: format!("{name}.ko"),
            module: name,
            version: None,
            signed: false,
            compression: Compression::None,
            sha256: String::new(),
            bytes: vec![],
        })
    }
}

/// Strip, sign and compress one module. Its `.modinfo` `name=` becomes a file name, so it is
/// checked first ([`names::module_name`]).
pub fn prepare(
    shell: &Shell,
    tree: &KernelTree,
    ko: &KoFile,
    opts: &ShipOptions,
) -> Result<Prepared> {
    let name = names::module_name(ko)?.to_string();
    let mut elf = ko.bytes[..ko.module.elf_len].to_vec();
    if ko.module.signature.is_some() && opts.sign.is_none() && opts.strip {
        shell.warn(format_args!(
            "`{}` is signed; stripping removes its signature (pass `--sign` to sign it again)",
            ko.path.display()
        ));
    } else if ko.module.signature.is_some() && !opts.strip && opts.sign.is_none() {
        elf = ko.bytes.clone();
    }
    if opts.strip {
        let scratch = tempfile::tempdir()?;
        elf = strip::strip_debug(shell, tree, &elf, scratch.path())?;
    }
    let signed_bytes = match &opts.sign {
        Some(key) => key.sign(&elf)?,
        None => elf,
    };
    // Re-parse what we ship: a stage that broke the module must not go unnoticed.
    let check = ko::parse(&signed_bytes).map_err(|e| {
        anyhow::anyhow!(
            "`{}` became unreadable while preparing it: {e}",
            ko.path.display()
        )
    })?;
    let bytes = compress::compress(opts.compression, &signed_bytes)?;
    let file_name = match opts.compression.extension() {
        Some(ext) => format!("{name}.ko.{ext}"),
        None => format!("{name}.ko"),
    };
    Ok(Prepared {
        module: name,
        file_name,
        version: check.field("version").map(str::to_string),
        signed: check.signature.is_some(),
        compression: opts.compression,
        sha256: crate::fsutil::sha256_hex(&bytes),
        bytes,
    })
}

/// `lib/modules/<release>/<dir>`, the directory modules are installed in.
pub fn module_dir(release: &str, dir: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        format!("lib/modules/{release}")
    } else {
        format!("lib/modules/{release}/{dir}")
    }
}

/// The signing key and certificate: explicit paths, else the tree's
/// `certs/signing_key.pem` and `certs/signing_key.x509` (what `sign-file` uses).
pub fn load_key(
    shell: &Shell,
    tree: &KernelTree,
    key: Option<&Path>,
    cert: Option<&Path>,
) -> Result<SigningKey> {
    let key = key
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tree.dir.join("certs/signing_key.pem"));
    let cert = cert
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tree.dir.join("certs/signing_key.x509"));
    let pin = crate::env::Env::get()
        .var("KBUILD_SIGN_PIN")
        .map(str::to_string);
    SigningKey::load(shell, &key, &cert, pin.as_deref())
}

/// The compression the tree's `modules_install` would use (`CONFIG_MODULE_COMPRESS_*`).
pub fn tree_compression(tree: &KernelTree) -> Compression {
    let c = &tree.config;
    if c.is_enabled("MODULE_COMPRESS_XZ") {
        Compression::Xz
    } else if c.is_enabled("MODULE_COMPRESS_ZSTD") {
        Compression::Zstd
    } else if c.is_enabled("MODULE_COMPRESS_GZIP") {
        Compression::Gzip
    } else {
        Compression::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dirs() {
        assert_eq!(
            module_dir("7.2.13", "updates"),
            "lib/modules/7.2.13/updates"
        );
        assert_eq!(
            module_dir("7.2.13", "/extra/x/"),
            "lib/modules/7.2.13/extra/x"
        );
        assert_eq!(module_dir("7.2.13", ""), "lib/modules/7.2.13");
    }
}
