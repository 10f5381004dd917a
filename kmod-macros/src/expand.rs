//! `module! { .. }` input, the package metadata it is completed with, and the expansion into
//! the target kernel's own `module!`.
//!
//! Pure functions over `proc_macro2` tokens, so the unit tests below drive them directly.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, Expr, Ident, LitStr, Token, Type};

use crate::dialect::{Dialect, KernelVersion};
use crate::license::kernel_license;

/// The package metadata the generated Kbuild exports (a cargo-like environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `KMOD_NAME`: the module name, `[A-Za-z0-9_]`.
    pub name: String,
    /// `CARGO_PKG_VERSION`.
    pub version: String,
    /// `CARGO_PKG_AUTHORS`, colon-separated as cargo sets it.
    pub authors: Vec<String>,
    /// `CARGO_PKG_DESCRIPTION`.
    pub description: String,
    /// `CARGO_PKG_LICENSE`: an SPDX expression.
    pub license: String,
    /// `KMOD_KERNEL_VERSION`.
    pub kernel: KernelVersion,
}

const NOT_CARGO_KMOD: &str = "build this module with `cargo kmod build`, which exports it";

impl Package {
    /// Read the metadata through `get` (the process environment in the proc macro).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Package, String> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let name = match get("KMOD_NAME") {
            Some(n) => n,
            None => match get("CARGO_PKG_NAME") {
                Some(n) => n.replace('-', "_"),
                None => return Err(format!("`KMOD_NAME` is not set: {NOT_CARGO_KMOD}")),
            },
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "module name `{name}` is not a kernel module name: use only `A-Z`, `a-z`, `0-9` and `_`"
            ));
        }
        let Some(kernel) = get("KMOD_KERNEL_VERSION") else {
            return Err(format!(
                "`KMOD_KERNEL_VERSION` is not set: {NOT_CARGO_KMOD}"
            ));
        };
        let Some(kernel_version) = KernelVersion::parse(&kernel) else {
            return Err(format!(
                "`KMOD_KERNEL_VERSION` is `{kernel}`, not a kernel version like `7.2.13`"
            ));
        };
        let authors = get("CARGO_PKG_AUTHORS")
            .map(|a| {
                a.split(':')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Package {
            name,
            version: get("CARGO_PKG_VERSION").unwrap_or_default(),
            authors,
            description: get("CARGO_PKG_DESCRIPTION").unwrap_or_default(),
            license: get("CARGO_PKG_LICENSE").unwrap_or_default(),
            kernel: kernel_version,
        })
    }
}

/// One module parameter: `name: type { default: expr, description: "text" }`.
pub struct Param {
    pub name: Ident,
    pub ty: Ident,
    pub default: Expr,
    pub description: LitStr,
}

impl Parse for Param {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty: Ident = input.parse()?;
        let body;
        let brace = braced!(body in input);
        let mut default = None;
        let mut description = None;
        while !body.is_empty() {
            let key: Ident = body.parse()?;
            body.parse::<Token![:]>()?;
            match key.to_string().as_str() {
                "default" if default.is_none() => default = Some(body.parse::<Expr>()?),
                "description" if description.is_none() => {
                    description = Some(body.parse::<LitStr>()?)
                }
                "default" | "description" => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("duplicate key `{key}`"),
                    ))
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown parameter key `{key}`: expected `default` or `description`"
                        ),
                    ))
                }
            }
            if body.is_empty() {
                break;
            }
            body.parse::<Token![,]>()?;
        }
        let missing = |k: &str| {
            syn::Error::new(
                brace.span.join(),
                format!("parameter `{name}` has no `{k}`"),
            )
        };
        let default = default.ok_or_else(|| missing("default"))?;
        let description = description.ok_or_else(|| missing("description"))?;
        Ok(Param {
            name,
            ty,
            default,
            description,
        })
    }
}

/// What the user writes inside `kmod_macros::module! { .. }`.
pub struct ModuleInput {
    pub ty: Type,
    pub alias: Vec<LitStr>,
    pub firmware: Vec<LitStr>,
    pub imports_ns: Option<(Ident, Vec<LitStr>)>,
    pub params: Vec<Param>,
}

fn string_list(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let list;
    bracketed!(list in input);
    Ok(Punctuated::<LitStr, Token![,]>::parse_terminated(&list)?
        .into_iter()
        .collect())
}

/// Where a key the user may not write is taken from instead.
fn from_cargo_toml(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" => "`[package.metadata.kmod].name` (default: the package name)",
        "author" | "authors" => "`[package].authors`",
        "description" => "`[package].description`",
        "license" => "`[package].license`",
        "version" => "`[package].version`",
        _ => return None,
    })
}

const KEYS: &[&str] = &["type", "alias", "firmware", "imports_ns", "params"];

impl Parse for ModuleInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut ty = None;
        let mut alias = None;
        let mut firmware = None;
        let mut imports_ns = None;
        let mut params = None;
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            let name = key.to_string();
            if let Some(source) = from_cargo_toml(&name) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{name}` comes from Cargo.toml: set {source} there"),
                ));
            }
            if seen.contains(&name) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("duplicate key `{name}`"),
                ));
            }
            input.parse::<Token![:]>()?;
            match name.as_str() {
                "type" => ty = Some(input.parse::<Type>()?),
                "alias" => alias = Some(string_list(input)?),
                "firmware" => firmware = Some(string_list(input)?),
                "imports_ns" => imports_ns = Some((key.clone(), string_list(input)?)),
                "params" => {
                    let body;
                    braced!(body in input);
                    params = Some(
                        Punctuated::<Param, Token![,]>::parse_terminated(&body)?
                            .into_iter()
                            .collect(),
                    );
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown key `{name}`: expected one of {}", list(KEYS)),
                    ))
                }
            }
            seen.push(name);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let Some(ty) = ty else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `type`: name the type that implements `kernel::Module`, e.g. `type: MyModule,`",
            ));
        };
        Ok(ModuleInput {
            ty,
            alias: alias.unwrap_or_default(),
            firmware: firmware.unwrap_or_default(),
            imports_ns,
            params: params.unwrap_or_default(),
        })
    }
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernel's `kernel_param_ops` and `modinfo` type name for a parameter type, for kernels
/// whose `module!` has no `params` (kmod-macros declares them itself).
fn c_param_ops(ty: &str) -> Option<(&'static str, &'static str)> {
    Some(match ty {
        "u8" => ("param_ops_byte", "byte"),
        "i16" => ("param_ops_short", "short"),
        "u16" => ("param_ops_ushort", "ushort"),
        "i32" => ("param_ops_int", "int"),
        "u32" => ("param_ops_uint", "uint"),
        "i64" | "isize" => ("param_ops_long", "long"),
        "u64" | "usize" => ("param_ops_ulong", "ulong"),
        _ => return None,
    })
}

/// The parameter types the 7.x `module!` accepts.
const NATIVE_PARAM_TYPES: &[&str] = &[
    "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "isize", "usize",
];

/// A `.modinfo` entry as the kernel's `module!` emits it (loadable and built-in spellings).
fn modinfo(module: &str, ident: Ident, field: &str, value: &str) -> TokenStream {
    let loadable = format!("{field}={value}\0");
    let builtin = format!("{module}.{field}={value}\0");
    let (ll, bl) = (loadable.len(), builtin.len());
    let (ls, bs) = (
        proc_macro2::Literal::byte_string(loadable.as_bytes()),
        proc_macro2::Literal::byte_string(builtin.as_bytes()),
    );
    let bident = format_ident!("{}_BUILTIN", ident);
    quote! {
        #[cfg(MODULE)]
        #[doc(hidden)]
        #[link_section = ".modinfo"]
        #[used(compiler)]
        pub static #ident: [u8; #ll] = *#ls;
        #[cfg(not(MODULE))]
        #[doc(hidden)]
        #[link_section = ".modinfo"]
        #[used(compiler)]
        pub static #bident: [u8; #bl] = *#bs;
    }
}

/// Expand `input` for `pkg`: the target kernel's `module!` plus what it lacks (`version=`,
/// and `params` on kernels before 6.17).
pub fn expand(input: ModuleInput, pkg: &Package) -> syn::Result<TokenStream> {
    let call = Span::call_site();
    let d = Dialect::for_version(pkg.kernel);
    let license = kernel_license(&pkg.license).map_err(|e| syn::Error::new(call, e.to_string()))?;
    let name = LitStr::new(&pkg.name, call);
    let ty = &input.ty;
    if !d.type_path
        && !matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.get_ident().is_some())
    {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "the `module!` of Linux {} takes a plain type name here: add `use` for it",
                d.version
            ),
        ));
    }

    let mut fields = quote!(type: #ty, name: #name,);
    if d.authors_list {
        if let Some(a) = pkg.authors.iter().find(|a| !a.is_ascii()) {
            return Err(syn::Error::new(
                call,
                format!("author `{a}` in `[package].authors` is not ASCII, which the kernel's `module!` requires"),
            ));
        }
        if !pkg.authors.is_empty() {
            let authors = pkg.authors.iter().map(|a| LitStr::new(a, call));
            fields.extend(quote!(authors: [#(#authors),*],));
        }
    } else if !pkg.authors.is_empty() {
        let author = LitStr::new(&pkg.authors.join(", "), call);
        fields.extend(quote!(author: #author,));
    }
    if !pkg.description.is_empty() {
        let description = LitStr::new(&pkg.description, call);
        fields.extend(quote!(description: #description,));
    }
    let license = LitStr::new(license, call);
    fields.extend(quote!(license: #license,));
    if !input.alias.is_empty() {
        let alias = &input.alias;
        fields.extend(quote!(alias: [#(#alias),*],));
    }
    if !input.firmware.is_empty() {
        let firmware = &input.firmware;
        fields.extend(quote!(firmware: [#(#firmware),*],));
    }
    if let Some((key, ns)) = &input.imports_ns {
        if !d.imports_ns {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "`imports_ns` needs Linux 6.13 or later; this module is built for {}",
                    d.version
                ),
            ));
        }
        fields.extend(quote!(imports_ns: [#(#ns),*],));
    }

    let mut extra = TokenStream::new();
    if d.native_params {
        if !input.params.is_empty() {
            let mut ps = TokenStream::new();
            for p in &input.params {
                if !NATIVE_PARAM_TYPES.contains(&p.ty.to_string().as_str()) {
                    return Err(syn::Error::new(
                        p.ty.span(),
                        format!(
                            "unsupported parameter type `{}`: expected one of {}",
                            p.ty,
                            list(NATIVE_PARAM_TYPES)
                        ),
                    ));
                }
                let Param {
                    name,
                    ty,
                    default,
                    description,
                } = p;
                ps.extend(quote!(#name: #ty { default: #default, description: #description, },));
            }
            fields.extend(quote!(params: { #ps },));
        }
    } else {
        extra.extend(emulated_params(&pkg.name, &input.params, d.version)?);
    }

    if !pkg.version.is_empty() {
        extra.extend(modinfo(
            &pkg.name,
            format_ident!("__KMOD_MODINFO_VERSION"),
            "version",
            &pkg.version,
        ));
    }

    if !d.kunit_tests {
        // The kernel crate has no `#[kunit_tests]`: the test module's attribute resolves to
        // kmod-macros' stand-in (an explicit import wins over the prelude's glob), which
        // compiles the suite out; `cargo kmod test` then checks load and unload only.
        extra.extend(quote! {
            #[cfg(test)]
            #[allow(unused_imports)]
            use ::kmod_macros::kunit_tests;
        });
    }

    Ok(quote! {
        ::kernel::prelude::module! { #fields }
        #extra
    })
}

/// `module_parameters::NAME.value()` for kernels whose `module!` has no `params`: the same
/// access API as 7.x, backed by the kernel's C `param_ops_*` and a `__param` entry.
fn emulated_params(
    module: &str,
    params: &[Param],
    version: KernelVersion,
) -> syn::Result<TokenStream> {
    if params.is_empty() {
        return Ok(TokenStream::new());
    }
    let mut items = TokenStream::new();
    for (i, p) in params.iter().enumerate() {
        let ty_name = p.ty.to_string();
        let Some((ops, c_type)) = c_param_ops(&ty_name) else {
            return Err(syn::Error::new(
                p.ty.span(),
                format!(
                    "parameter type `{ty_name}` is not supported on Linux {version}: use one of {}",
                    list(&["u8", "i16", "u16", "i32", "u32", "i64", "u64", "isize", "usize"])
                ),
            ));
        };
        let Param {
            name,
            ty,
            default,
            description,
        } = p;
        let ops = format_ident!("{}", ops);
        let entry = format_ident!("__KMOD_PARAM_{}", i);
        let cname = syn::LitCStr::new(
            &std::ffi::CString::new(name.to_string()).expect("identifiers have no NUL"),
            name.span(),
        );
        items.extend(quote! {
            #[allow(non_upper_case_globals)]
            pub(crate) static #name: KmodParam<#ty> = KmodParam::new(#default);

            #[link_section = "__param"]
            #[used(compiler)]
            static #entry: KmodKernelParam = KmodKernelParam(::kernel::bindings::kernel_param {
                name: #cname.as_ptr().cast(),
                // SAFETY: `__this_module` is the module's own `struct module`, set up by the
                // kernel's loader and alive for as long as the module is.
                #[cfg(MODULE)]
                mod_: unsafe { __this_module.get() },
                #[cfg(not(MODULE))]
                mod_: ::core::ptr::null_mut(),
                // SAFETY: the kernel's ops for this C type, exported to modules.
                ops: unsafe { ::core::ptr::addr_of!(::kernel::bindings::#ops) },
                perm: 0,
                level: -1,
                flags: 0,
                __bindgen_anon_1: ::kernel::bindings::kernel_param__bindgen_ty_1 { arg: #name.as_void_ptr() },
            });
        });
        let type_info = format!("{name}:{c_type}");
        let desc_info = format!("{name}:{}", description.value());
        items.extend(modinfo(
            module,
            format_ident!("__KMOD_MODINFO_PARMTYPE_{}", i),
            "parmtype",
            &type_info,
        ));
        items.extend(modinfo(
            module,
            format_ident!("__KMOD_MODINFO_PARM_{}", i),
            "parm",
            &desc_info,
        ));
    }
    Ok(quote! {
        /// The module's parameters (declared by kmod-macros: this kernel's `module!` has no
        /// `params`). Read one with `module_parameters::NAME.value()`.
        mod module_parameters {
            /// A parameter's value, written by the kernel's parser before `init` runs.
            #[repr(transparent)]
            pub(crate) struct KmodParam<T>(::core::cell::UnsafeCell<T>);

            // SAFETY: the kernel writes the value only while it parses the module's arguments,
            // before `init`; with `perm: 0` there is no sysfs file to write it later.
            unsafe impl<T> Sync for KmodParam<T> {}

            impl<T> KmodParam<T> {
                pub(crate) const fn new(value: T) -> Self {
                    KmodParam(::core::cell::UnsafeCell::new(value))
                }

                /// The parameter's value.
                #[allow(dead_code)]
                pub(crate) fn value(&self) -> &T {
                    // SAFETY: see `Sync` above: no writes once the module runs.
                    unsafe { &*self.0.get() }
                }

                const fn as_void_ptr(&self) -> *mut ::core::ffi::c_void {
                    self.0.get().cast()
                }
            }

            #[repr(transparent)]
            struct KmodKernelParam(::kernel::bindings::kernel_param);

            // SAFETY: the entry is only read, by the kernel's parameter parser.
            unsafe impl Sync for KmodKernelParam {}

            // Declared with the type the kernel's own `module!` gives it, so the two
            // declarations do not clash.
            #[cfg(MODULE)]
            extern "C" {
                static __this_module: ::kernel::types::Opaque<::kernel::bindings::module>;
            }

            #items
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kernel: &str) -> Package {
        let env = [
            ("KMOD_NAME", "hello"),
            ("CARGO_PKG_VERSION", "0.3.1"),
            ("CARGO_PKG_AUTHORS", "Ada <ada@example.com>:Linus"),
            ("CARGO_PKG_DESCRIPTION", "says \"hello\""),
            ("CARGO_PKG_LICENSE", "GPL-2.0"),
            ("KMOD_KERNEL_VERSION", kernel),
        ];
        Package::from_env(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    const INPUT: &str = r#"
        type: Hello,
        params: {
            count: i64 { default: 1, description: "how many", },
        },
    "#;

    fn run(input: &str, pkg: &Package) -> syn::Result<String> {
        let input: ModuleInput = syn::parse_str(input)?;
        expand(input, pkg).map(|ts| ts.to_string())
    }

    fn err(input: &str, pkg: &Package) -> String {
        match run(input, pkg) {
            Ok(out) => panic!("expected an error, got {out}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_the_environment() {
        let p = pkg("7.2.13");
        assert_eq!(p.name, "hello");
        assert_eq!(p.authors, ["Ada <ada@example.com>", "Linus"]);
        assert_eq!(p.kernel, KernelVersion(7, 2, 13));
        let none = Package::from_env(|_| None).unwrap_err();
        assert_eq!(
            none,
            "`KMOD_NAME` is not set: build this module with `cargo kmod build`, which exports it"
        );
        let only_name =
            Package::from_env(|k| (k == "CARGO_PKG_NAME").then(|| "my-mod".to_string()))
                .unwrap_err();
        assert!(
            only_name.starts_with("`KMOD_KERNEL_VERSION` is not set"),
            "{only_name}"
        );
        let bad = Package::from_env(|k| (k == "KMOD_NAME").then(|| "a.b".to_string())).unwrap_err();
        assert!(
            bad.starts_with("module name `a.b` is not a kernel module name"),
            "{bad}"
        );
    }

    #[test]
    fn seven_x_gets_authors_list_and_native_params() {
        let out = run(INPUT, &pkg("7.2.13")).unwrap();
        let expected = quote! {
            ::kernel::prelude::module! {
                type: Hello,
                name: "hello",
                authors: ["Ada <ada@example.com>", "Linus"],
                description: "says \"hello\"",
                license: "GPL v2",
                params: { count: i64 { default: 1, description: "how many", }, },
            }
        }
        .to_string();
        assert!(out.starts_with(&expected), "{out}");
        assert!(out.contains(r#"* b"version=0.3.1\0""#), "{out}");
        assert!(out.contains(r#"* b"hello.version=0.3.1\0""#), "{out}");
        assert!(!out.contains("KmodParam"), "{out}");
    }

    #[test]
    fn six_twelve_gets_one_author_and_emulated_params() {
        let out = run(INPUT, &pkg("6.12.117")).unwrap();
        let expected = quote! {
            ::kernel::prelude::module! {
                type: Hello,
                name: "hello",
                author: "Ada <ada@example.com>, Linus",
                description: "says \"hello\"",
                license: "GPL v2",
            }
        }
        .to_string();
        assert!(out.starts_with(&expected), "{out}");
        assert!(out.contains("mod module_parameters"), "{out}");
        assert!(
            out.contains("pub (crate) static count : KmodParam < i64 > = KmodParam :: new (1)"),
            "{out}"
        );
        assert!(
            out.contains(":: kernel :: bindings :: param_ops_long"),
            "{out}"
        );
        assert!(out.contains(r#"b"parmtype=count:long\0""#), "{out}");
        assert!(out.contains(r#"b"parm=count:how many\0""#), "{out}");
        assert!(out.contains(r#"c"count""#), "{out}");
    }

    #[test]
    fn optional_fields_follow_the_kernel_order() {
        let mut p = pkg("7.2.13");
        p.authors.clear();
        p.description.clear();
        p.version.clear();
        p.license = "MIT OR GPL-2.0".into();
        let out = run(
            r#"imports_ns: ["DMA_BUF"], alias: ["devname:x"], type: Hello"#,
            &p,
        )
        .unwrap();
        let expected = quote! {
            ::kernel::prelude::module! {
                type: Hello,
                name: "hello",
                license: "Dual MIT/GPL",
                alias: ["devname:x"],
                imports_ns: ["DMA_BUF"],
            }
        }
        .to_string();
        assert_eq!(out.trim(), expected, "{out}");
    }

    #[test]
    fn metadata_keys_point_at_cargo_toml() {
        let p = pkg("7.2.13");
        assert_eq!(
            err(r#"type: Hello, license: "GPL","#, &p),
            "`license` comes from Cargo.toml: set `[package].license` there"
        );
        assert_eq!(
            err(r#"type: Hello, name: "x","#, &p),
            "`name` comes from Cargo.toml: set `[package.metadata.kmod].name` (default: the package name) there"
        );
        assert_eq!(
            err(r#"type: Hello, colour: "x","#, &p),
            "unknown key `colour`: expected one of `type`, `alias`, `firmware`, `imports_ns`, `params`"
        );
        assert_eq!(
            err(r#"type: Hello, type: Hello"#, &p),
            "duplicate key `type`"
        );
        assert!(err("params: {}", &p).starts_with("missing `type`"));
    }

    #[test]
    fn bad_params_and_licenses() {
        let p = pkg("7.2.13");
        assert_eq!(
            err("type: H, params: { n: f32 { default: 1.0, description: \"x\" } }", &p),
            "unsupported parameter type `f32`: expected one of `i8`, `u8`, `i16`, `u16`, `i32`, `u32`, `i64`, `u64`, `isize`, `usize`"
        );
        assert_eq!(
            err("type: H, params: { n: i32 { default: 1 } }", &p),
            "parameter `n` has no `description`"
        );
        assert!(err(
            "type: H, params: { n: i8 { default: 1, description: \"x\" } }",
            &pkg("6.12.1")
        )
        .starts_with("parameter type `i8` is not supported on Linux 6.12.1"));
        let mut mit = pkg("7.2.13");
        mit.license = "MIT OR Apache-2.0".into();
        assert!(err("type: H", &mit)
            .starts_with("license `MIT OR Apache-2.0` in Cargo.toml is proprietary"));
        let mut uni = pkg("7.2.13");
        uni.authors = vec!["José".into()];
        assert!(
            err("type: H", &uni).starts_with("author `José` in `[package].authors` is not ASCII")
        );
        // 6.12's `module!` is not syn-based: it only takes a plain type name.
        assert!(err("type: crate::m::H", &pkg("6.12.117"))
            .starts_with("the `module!` of Linux 6.12.117 takes a plain type name"));
        assert!(err(r#"type: H, imports_ns: ["X"]"#, &pkg("6.12.117"))
            .starts_with("`imports_ns` needs Linux 6.13"));
    }
}
