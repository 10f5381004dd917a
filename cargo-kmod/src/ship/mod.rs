//! After the build: verify, strip, sign, compress, package and install modules.
