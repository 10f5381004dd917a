//! A built `.ko`: ELF sections, `.modinfo`, symbol versions, exports and signature.
