//! Module signing in the kernel's appended-signature format, as `scripts/sign-file` does it:
//! a detached CMS (PKCS#7) signature over the module, in binary mode, with no certificates
//! and no signed attributes (`CMS_NOATTR`: the kernel refuses authenticated attributes),
//! followed by `struct module_signature` and the `~Module signature appended~\n` magic.
//!
//! The key is read where it lies and never copied. `KBUILD_SIGN_PIN` unlocks an encrypted
//! key; without it an encrypted key is an error, never a terminal prompt.

use std::path::{Path, PathBuf};

use anyhow::Result;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use crate::error::UserError;
use crate::ko::{io_reason, signature};
use crate::shell::Shell;

/// A private key and its certificate, checked to match.
pub struct SigningKey {
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    key: PKey<Private>,
    cert: X509,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_path", &self.key_path)
            .field("cert_path", &self.cert_path)
            .finish()
    }
}

/// Read a certificate, PEM or DER.
pub fn read_cert(path: &Path) -> Result<X509> {
    let data = std::fs::read(path).map_err(|e| {
        UserError::new(format!(
            "cannot read certificate `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    X509::from_pem(&data)
        .or_else(|_| X509::from_der(&data))
        .map_err(|_| {
            UserError::new(format!(
                "`{}` is not an X.509 certificate (PEM or DER)",
                path.display()
            ))
            .into()
        })
}

impl SigningKey {
    /// Load a key (PEM, maybe encrypted, or DER) and certificate; `pin` is `KBUILD_SIGN_PIN`.
    pub fn load(
        shell: &Shell,
        key_path: &Path,
        cert_path: &Path,
        pin: Option<&str>,
    ) -> Result<SigningKey> {
        let data = std::fs::read(key_path).map_err(|e| {
            UserError::new(format!(
                "cannot read signing key `{}`: {}",
                key_path.display(),
                io_reason(&e)
            ))
        })?;
        warn_if_readable(shell, key_path);
        let text = String::from_utf8_lossy(&data);
        let encrypted = text.contains("ENCRYPTED");
        if encrypted && pin.is_none() {
            crate::bail_user!(
                "signing key `{}` is encrypted and `KBUILD_SIGN_PIN` is not set", key_path.display();
                hint = "set `KBUILD_SIGN_PIN` to the key's passphrase"
            );
        }
        let key = if text.contains("-----BEGIN") {
            // A callback, so OpenSSL never prompts on the terminal.
            PKey::private_key_from_pem_callback(&data, |buf| {
                let pin = pin.unwrap_or("").as_bytes();
                let n = pin.len().min(buf.len());
                buf[..n].copy_from_slice(&pin[..n]);
                Ok(n)
            })
        } else {
            PKey::private_key_from_der(&data)
        };
        let key = key.map_err(|_| {
            if encrypted {
                UserError::new(format!(
                    "cannot decrypt signing key `{}` with `KBUILD_SIGN_PIN`",
                    key_path.display()
                ))
            } else {
                UserError::new(format!(
                    "`{}` is not a private key (PEM or DER)",
                    key_path.display()
                ))
            }
        })?;
        let cert = read_cert(cert_path)?;
        let matches = cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            crate::bail_user!(
                "signing key `{}` does not match certificate `{}`", key_path.display(), cert_path.display();
                hint = "pass the certificate made from this key with `--cert`"
            );
        }
        Ok(SigningKey {
            key_path: key_path.to_path_buf(),
            cert_path: cert_path.to_path_buf(),
            key,
            cert,
        })
    }

    /// The certificate, DER-encoded (what a firmware's key database holds).
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        Ok(self.cert.to_der()?)
    }

    /// The detached PKCS#7 signature of `data`, as `sign-file` makes it.
    pub fn pkcs7(&self, data: &[u8]) -> Result<Vec<u8>> {
        let flags = CMSOptions::BINARY
            | CMSOptions::DETACHED
            | CMSOptions::CMS_NOCERTS
            | CMSOptions::NOATTR
            | CMSOptions::NOSMIMECAP;
        let cms = CmsContentInfo::sign(Some(&self.cert), Some(&self.key), None, Some(data), flags)
            .map_err(|e| {
                anyhow::anyhow!("cms signing with `{}` failed: {e}", self.key_path.display())
            })?;
        Ok(cms.to_der()?)
    }

    /// Sign module bytes; an existing signature is replaced.
    pub fn sign(&self, module: &[u8]) -> Result<Vec<u8>> {
        let unsigned = strip_signature(module)?;
        let pkcs7 = self.pkcs7(unsigned)?;
        Ok(signature::append(unsigned, &pkcs7))
    }
}

/// Module bytes without an appended signature.
pub fn strip_signature(module: &[u8]) -> Result<&[u8]> {
    let (elf, _) = signature::split(module)
        .map_err(|e| UserError::new(format!("cannot read signature: {e}")))?;
    Ok(elf)
}

/// Check a PKCS#7 detached signature over `data` against `cert`.
pub fn check(pkcs7: &[u8], cert: &X509, data: &[u8]) -> std::result::Result<(), String> {
    let mut cms = CmsContentInfo::from_der(pkcs7)
        .map_err(|_| "the PKCS#7 blob cannot be read".to_string())?;
    let mut certs = Stack::new().map_err(|e| e.to_string())?;
    certs.push(cert.clone()).map_err(|e| e.to_string())?;
    let store = X509StoreBuilder::new().map_err(|e| e.to_string())?.build();
    cms.verify(
        Some(&certs),
        Some(&store),
        Some(data),
        None,
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .map_err(|_| "the signature was made by another key or the module was modified".to_string())
}

/// Warn when a private key is readable by group or others.
fn warn_if_readable(shell: &Shell, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            shell.warn(format_args!(
                "signing key `{}` is readable by others (mode {mode:03o}); `chmod 600` it",
                path.display()
            ));
        }
    }
}
