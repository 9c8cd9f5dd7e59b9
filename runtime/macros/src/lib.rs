//! Procedural macros for the `kevent` async runtime: [`#[kevent::main]`](macro@main)
//! and [`#[kevent::test]`](macro@test).
//!
//! Do not depend on this crate directly: the macros are re-exported by `kevent`,
//! and their expansion refers to `::kevent::runtime::Builder`.
//!
//! ```ignore
//! #[kevent::main]
//! async fn main() -> std::io::Result<()> {
//!     println!("running inside a kevent runtime");
//!     Ok(())
//! }
//!
//! #[kevent::test]
//! async fn it_works() {
//!     assert_eq!(async { 2 + 2 }.await, 4);
//! }
//! ```
//!
//! Both macros accept the same comma-separated options:
//!
//! | option | values | default |
//! | --- | --- | --- |
//! | `flavor` | `"multi_thread"` or `"current_thread"` | `"multi_thread"` for `main`, `"current_thread"` for `test` |
//! | `worker_threads` | integer literal > 0, `multi_thread` only | the runtime's default |
//! | `crate` | path to the `kevent` crate, as a string | `"::kevent"` |
//! | `start_paused` | `true` or `false`, `current_thread` only | `false` |
#![warn(missing_docs, rust_2018_idioms)]

use proc_macro::TokenStream;
use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream as TokenStream2, TokenTree};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{
    AttrStyle, Attribute, Expr, Lit, LitInt, Meta, Path, ReturnType, Signature, Token, Visibility,
};

/// Marks `async fn main` as the program entry point, run on a kevent runtime.
///
/// The function is rewritten into a synchronous `fn main` that builds a runtime
/// (the `multi_thread` flavor unless told otherwise) and blocks on the original
/// body. The return type, attributes and doc comments are kept.
///
/// # Options
///
/// - `flavor = "multi_thread"` (default) or `flavor = "current_thread"`
/// - `worker_threads = N`: number of worker threads, `multi_thread` only
/// - `crate = "path"`: where to find `kevent` if it was renamed
/// - `start_paused = true`: start with the clock paused (`current_thread` only;
///   see `kevent::time::pause`)
///
/// # Examples
///
/// ```ignore
/// #[kevent::main]
/// async fn main() {
///     println!("hello from a kevent runtime");
/// }
/// ```
///
/// With options:
///
/// ```ignore
/// #[kevent::main(flavor = "multi_thread", worker_threads = 4)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     Ok(())
/// }
/// ```
///
/// This expands to roughly:
///
/// ```ignore
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let body = async move {
///         // The body is checked against the return type right here, so
///         // type errors point at the body, as they would for a plain `fn`.
///         let ret: Result<(), Box<dyn std::error::Error>> = { Ok(()) };
///         ret
///     };
///     ::kevent::runtime::Builder::new_multi_thread()
///         .worker_threads(4)
///         .enable_all()
///         .build()
///         .expect("failed to build the kevent runtime")
///         .block_on(body)
/// }
/// ```
///
/// # Errors
///
/// Compile errors, pointing at the offending tokens, if the function is not
/// `async`, takes arguments or is generic, or if an option is unknown, repeated
/// or has a bad value (`worker_threads` needs the `multi_thread` flavor).
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Main).into()
}

/// Marks an `async fn` as a test, run on its own kevent runtime.
///
/// Like [`#[kevent::main]`](macro@main), but the function also gets `#[test]`,
/// and the runtime defaults to the `current_thread` flavor. Other attributes
/// (`#[should_panic]`, `#[ignore]`, ...) are kept; tests may return a `Result`.
///
/// # Options
///
/// - `flavor = "current_thread"` (default) or `flavor = "multi_thread"`
/// - `worker_threads = N`: number of worker threads, `multi_thread` only
/// - `crate = "path"`: where to find `kevent` if it was renamed
/// - `start_paused = true`: start with the clock paused, so that sleeps end
///   as soon as every task waits (`current_thread` only; see
///   `kevent::time::pause`)
///
/// # Examples
///
/// ```ignore
/// #[kevent::test]
/// async fn adds() {
///     assert_eq!(async { 1 + 1 }.await, 2);
/// }
///
/// #[kevent::test(flavor = "multi_thread", worker_threads = 2)]
/// async fn on_two_workers() -> std::io::Result<()> {
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Test).into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "main",
            Kind::Test => "test",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

struct Config {
    flavor: Flavor,
    worker_threads: Option<LitInt>,
    crate_path: Option<Path>,
    /// `start_paused = true`, with the literal's span.
    start_paused: Option<syn::LitBool>,
}

impl Config {
    fn default_for(kind: Kind) -> Config {
        Config {
            flavor: match kind {
                Kind::Main => Flavor::MultiThread,
                Kind::Test => Flavor::CurrentThread,
            },
            worker_threads: None,
            crate_path: None,
            start_paused: None,
        }
    }
}

/// An `fn` item whose body is kept as raw tokens: syntax errors in the body are
/// then reported by rustc on the expansion, not by this macro.
struct ItemFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: Group,
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body: Group = input.parse()?;
        if body.delimiter() != Delimiter::Brace {
            return Err(syn::Error::new(body.span(), "expected a function body"));
        }
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

fn expand(args: TokenStream2, item: TokenStream2, kind: Kind) -> TokenStream2 {
    let input: ItemFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(_) => {
            let msg = format!(
                "`#[kevent::{}]` can only be applied to an `async fn`",
                kind.name()
            );
            let error = syn::Error::new(Span::call_site(), msg).into_compile_error();
            return quote!(#item #error);
        }
    };

    let config = parse_config(args, kind);
    let checked = check_fn(&input, kind);
    match (config, checked) {
        (Ok(config), Ok(())) => generate(input, config, kind),
        (config, checked) => {
            let errors = [config.as_ref().err(), checked.as_ref().err()];
            let error =
                combine(errors.into_iter().flatten().cloned()).map(syn::Error::into_compile_error);
            let expanded = fallback(input, config.ok(), kind);
            quote!(#expanded #error)
        }
    }
}

/// What to expand to next to a compile error: something close to the intended
/// output, so the rest of the crate (and IDEs) keep working, but without
/// anything that makes rustc report the same problem a second time.
fn fallback(mut input: ItemFn, config: Option<Config>, kind: Kind) -> TokenStream2 {
    input.attrs.retain(|attr| !is_test_attr(attr));
    let sig = &input.sig;
    if sig.inputs.is_empty()
        && sig.generics.params.is_empty()
        && sig.generics.where_clause.is_none()
    {
        let config = config.unwrap_or_else(|| Config::default_for(kind));
        return generate(input, config, kind);
    }
    // A signature `fn main` cannot have: keep the user's function, unchanged and
    // type-checked, nested inside a stub with an acceptable signature.
    let ItemFn {
        attrs,
        vis,
        sig,
        body,
    } = input;
    let mut outer = sig.clone();
    outer.asyncness = None;
    outer.inputs.clear();
    outer.generics = syn::Generics::default();
    let test_attr = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
    quote! {
        #test_attr
        #(#attrs)*
        #vis #outer {
            #[allow(dead_code)]
            #sig #body
            ::core::unreachable!()
        }
    }
}

fn parse_config(args: TokenStream2, kind: Kind) -> syn::Result<Config> {
    let options = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut config = Config::default_for(kind);
    let mut seen: Vec<String> = Vec::new();
    let mut explicit_flavor = false;

    for option in options {
        let name = path_to_string(option.path());
        if !matches!(
            name.as_str(),
            "flavor" | "worker_threads" | "crate" | "start_paused"
        ) {
            let msg = format!(
                "unknown option `{name}`, expected one of: `flavor`, `worker_threads`, `crate`, \
                 `start_paused`"
            );
            return Err(syn::Error::new_spanned(option.path(), msg));
        }
        let option = match option {
            Meta::NameValue(option) => option,
            other => {
                let msg = format!("expected a value: `{name} = ...`");
                return Err(syn::Error::new_spanned(other, msg));
            }
        };
        if seen.contains(&name) {
            let msg = format!("duplicate option `{name}`; each option may be given only once");
            return Err(syn::Error::new_spanned(&option.path, msg));
        }
        seen.push(name.clone());

        let value = strip_groups(&option.value);
        match name.as_str() {
            "flavor" => {
                let lit = match value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => lit,
                    _ => {
                        let msg = "`flavor` expects a string: \
                                   `flavor = \"multi_thread\"` or `flavor = \"current_thread\"`";
                        return Err(syn::Error::new_spanned(value, msg));
                    }
                };
                config.flavor = match lit.value().as_str() {
                    "multi_thread" => Flavor::MultiThread,
                    "current_thread" => Flavor::CurrentThread,
                    other => {
                        let msg = format!(
                            "unknown flavor `{other}`, expected `multi_thread` or `current_thread`"
                        );
                        return Err(syn::Error::new_spanned(lit, msg));
                    }
                };
                explicit_flavor = true;
            }
            "worker_threads" => {
                let msg = "`worker_threads` expects an integer literal, e.g. `worker_threads = 4`";
                let lit = match value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Int(lit), ..
                    }) => lit,
                    _ => return Err(syn::Error::new_spanned(value, msg)),
                };
                let zero = "`worker_threads` must be greater than zero";
                match lit.base10_parse::<usize>() {
                    Ok(0) => return Err(syn::Error::new_spanned(lit, zero)),
                    Ok(n) => config.worker_threads = Some(LitInt::new(&n.to_string(), lit.span())),
                    Err(_) if lit.base10_digits().starts_with('-') => {
                        return Err(syn::Error::new_spanned(lit, zero));
                    }
                    Err(e) => {
                        let msg = format!("invalid `worker_threads`: {e}");
                        return Err(syn::Error::new_spanned(lit, msg));
                    }
                }
            }
            "start_paused" => {
                let msg = "`start_paused` expects `true` or `false`";
                match value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Bool(lit),
                        ..
                    }) => config.start_paused = Some(lit.clone()),
                    _ => return Err(syn::Error::new_spanned(value, msg)),
                }
            }
            _ => {
                let msg = "`crate` expects a path to the `kevent` crate as a string, \
                           e.g. `crate = \"my_kevent\"`";
                let path = match value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => lit
                        .parse::<Path>()
                        .map_err(|_| syn::Error::new_spanned(lit, msg))?,
                    _ => return Err(syn::Error::new_spanned(value, msg)),
                };
                config.crate_path = Some(path);
            }
        }
    }

    if let (Flavor::CurrentThread, Some(lit)) = (config.flavor, &config.worker_threads) {
        let msg = if explicit_flavor {
            "`worker_threads` is only valid with the `multi_thread` flavor; \
             remove it or use `flavor = \"multi_thread\"`"
                .to_owned()
        } else {
            format!(
                "`worker_threads` is only valid with the `multi_thread` flavor, and \
                 `#[kevent::{}]` defaults to `current_thread`; add `flavor = \"multi_thread\"`",
                kind.name()
            )
        };
        return Err(syn::Error::new(lit.span(), msg));
    }
    if let (Flavor::MultiThread, Some(lit)) = (config.flavor, &config.start_paused) {
        if lit.value {
            let msg = "`start_paused` is only valid with the `current_thread` flavor (a \
                       multi-thread runtime's clock cannot be paused); add \
                       `flavor = \"current_thread\"`";
            return Err(syn::Error::new(lit.span(), msg));
        }
    }
    Ok(config)
}

fn check_fn(input: &ItemFn, kind: Kind) -> syn::Result<()> {
    let sig = &input.sig;
    let what = kind.name();
    let mut errors = Vec::new();
    if sig.asyncness.is_none() {
        let msg = "the `async` keyword is missing from the function declaration";
        errors.push(syn::Error::new_spanned(sig.fn_token, msg));
    }
    if !sig.inputs.is_empty() {
        let msg = format!("the {what} function cannot accept arguments");
        errors.push(syn::Error::new_spanned(&sig.inputs, msg));
    }
    if !sig.generics.params.is_empty() {
        let msg = format!("the {what} function cannot be generic");
        errors.push(syn::Error::new_spanned(&sig.generics, msg));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        let msg = format!("the {what} function cannot have a `where` clause");
        errors.push(syn::Error::new_spanned(where_clause, msg));
    }
    if kind == Kind::Test {
        if let Some(attr) = input.attrs.iter().find(|a| is_test_attr(a)) {
            let msg = "a second test attribute is supplied; remove it, \
                       `#[kevent::test]` already marks the function as a test";
            errors.push(syn::Error::new_spanned(attr, msg));
        }
    }
    combine(errors).map_or(Ok(()), Err)
}

fn combine(errors: impl IntoIterator<Item = syn::Error>) -> Option<syn::Error> {
    errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    })
}

fn generate(input: ItemFn, config: Config, kind: Kind) -> TokenStream2 {
    let ItemFn {
        mut attrs,
        vis,
        mut sig,
        body,
    } = input;
    sig.asyncness = None;

    // Inner attributes (`#![...]`) of the body move to the generated function.
    let (inner_attrs, stmts) = split_inner_attrs(body.stream());
    attrs.extend(inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    }));
    let mut body_block = Group::new(Delimiter::Brace, stmts);
    body_block.set_span(body.span());

    // Check the body's value against the declared return type inside the async
    // block, so that a mismatch is reported on the user's code, the way rustc
    // reports it for a plain `fn` (not possible for `impl Trait` return types).
    // Helper locals: `mixed_site` keeps user locals from seeing them, the names
    // keep them from being taken for a user item (a const or unit struct).
    let ret = Ident::new("__kevent_ret", Span::mixed_site());
    let future = match &sig.output {
        ReturnType::Type(_, ty) if !mentions_impl(ty.to_token_stream()) => {
            quote!(async move {
                let #ret: #ty = #body_block;
                #[allow(unreachable_code)]
                #ret
            })
        }
        _ => quote!(async move #body_block),
    };
    let body = Ident::new("__kevent_body", Span::mixed_site());

    // A user-supplied crate path keeps its span: a wrong path is reported on it.
    let krate = config
        .crate_path
        .map_or_else(|| quote!(::kevent), ToTokens::into_token_stream);
    let builder = match config.flavor {
        Flavor::MultiThread => quote!(new_multi_thread),
        Flavor::CurrentThread => quote!(new_current_thread),
    };
    let worker_threads = config.worker_threads.map(|n| quote!(.worker_threads(#n)));
    let start_paused = config.start_paused.map(|b| quote!(.start_paused(#b)));
    let test_attr = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let #body = #future;
            #[allow(
                clippy::expect_used,
                clippy::diverging_sub_expression,
                clippy::needless_return
            )]
            {
                return #krate::runtime::Builder::#builder()
                    #worker_threads
                    #start_paused
                    .enable_all()
                    .build()
                    .expect("failed to build the kevent runtime")
                    .block_on(#body);
            }
        }
    }
}

fn mentions_impl(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

fn split_inner_attrs(body: TokenStream2) -> (Vec<Attribute>, TokenStream2) {
    let parser = |input: ParseStream<'_>| {
        let attrs = input.call(Attribute::parse_inner)?;
        let rest: TokenStream2 = input.parse()?;
        Ok((attrs, rest))
    };
    parser
        .parse2(body.clone())
        .unwrap_or_else(|_| (Vec::new(), body))
}

/// `#[test]`, `#[core::prelude::v1::test]`, `#[::std::prelude::rust_2021::test]`, ...
fn is_test_attr(attr: &Attribute) -> bool {
    let segments = &attr.path().segments;
    let last_is_test = segments.last().is_some_and(|s| s.ident == "test");
    let std_path = segments
        .first()
        .is_some_and(|s| s.ident == "core" || s.ident == "std");
    last_is_test && (segments.len() == 1 || std_path)
}

fn strip_groups(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => strip_groups(&group.expr),
        Expr::Paren(paren) => strip_groups(&paren.expr),
        other => other,
    }
}

fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}
