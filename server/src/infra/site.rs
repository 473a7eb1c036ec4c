//! The Leptos site settings the server needs at run time.
//!
//! Build settings (bundle name, site root, pkg dir) are chosen once in Cargo.toml's
//! `[[workspace.metadata.leptos]]`; cargo-leptos passes them to the server build as
//! `LEPTOS_OUTPUT_NAME`, `LEPTOS_SITE_ROOT` and `LEPTOS_SITE_PKG_DIR`, baked in here. A
//! deployment may move the site with the same variables at run time. Runtime-only Leptos
//! settings (environment, reload port) are read from `Leptos.toml`.

use leptos::config::{Env, LeptosOptions};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// The Leptos settings file, read from the working directory when present.
pub const LEPTOS_TOML: &str = "Leptos.toml";

const BUILT_OUTPUT_NAME: Option<&str> = option_env!("LEPTOS_OUTPUT_NAME");
const BUILT_SITE_ROOT: Option<&str> = option_env!("LEPTOS_SITE_ROOT");
const BUILT_SITE_PKG_DIR: Option<&str> = option_env!("LEPTOS_SITE_PKG_DIR");

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(
        "this scanpay binary was built without LEPTOS_OUTPUT_NAME; build it with `make build` \
         (cargo leptos build), which sets it from Cargo.toml"
    )]
    NotBuiltByCargoLeptos,
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LeptosFile {
    env: Option<String>,
    reload_port: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct LeptosToml {
    package: Option<Package>,
}
#[derive(Debug, Default, Deserialize)]
struct Package {
    metadata: Option<Metadata>,
}
#[derive(Debug, Default, Deserialize)]
struct Metadata {
    leptos: Option<LeptosFile>,
}

/// Builds the options for the server bound at `addr`.
pub fn leptos_options(addr: SocketAddr) -> Result<LeptosOptions, SiteError> {
    let output_name = std::env::var("LEPTOS_OUTPUT_NAME")
        .ok()
        .or(BUILT_OUTPUT_NAME.map(str::to_string))
        .ok_or(SiteError::NotBuiltByCargoLeptos)?;
    let site_root = std::env::var("LEPTOS_SITE_ROOT")
        .ok()
        .unwrap_or_else(|| default_site_root(BUILT_SITE_ROOT.unwrap_or("target/site")));
    let site_pkg_dir = std::env::var("LEPTOS_SITE_PKG_DIR")
        .ok()
        .or(BUILT_SITE_PKG_DIR.map(str::to_string))
        .unwrap_or_else(|| "pkg".into());
    let file = read_leptos_toml(Path::new(LEPTOS_TOML))?;
    let env = match file.env.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("PROD") | Some("PRODUCTION") => Env::PROD,
        Some("DEV") | Some("DEVELOPMENT") => Env::DEV,
        Some(other) => {
            return Err(SiteError::File {
                path: LEPTOS_TOML.into(),
                reason: format!("env: expected DEV or PROD, got {other:?}"),
            })
        }
    };
    Ok(LeptosOptions::builder()
        .output_name(output_name)
        .site_root(site_root)
        .site_pkg_dir(site_pkg_dir)
        .env(env)
        .site_addr(addr)
        .reload_port(file.reload_port.unwrap_or(3001))
        .build())
}

/// The site folder when `LEPTOS_SITE_ROOT` is not set: the one the build made (relative to
/// the working directory, as `make run` starts it), or else `site/` beside the executable,
/// as a release tarball (`make dist`) lays it out.
fn default_site_root(built: &str) -> String {
    if Path::new(built).is_dir() {
        return built.to_string();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("site")))
        .filter(|d| d.is_dir())
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| built.to_string())
}

fn read_leptos_toml(path: &Path) -> Result<LeptosFile, SiteError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeptosFile::default()),
        Err(e) => {
            return Err(SiteError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let parsed: LeptosToml = toml::from_str(&text).map_err(|e| SiteError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(parsed
        .package
        .and_then(|p| p.metadata)
        .and_then(|m| m.leptos)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_leptos_toml_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(LEPTOS_TOML);
        let file = read_leptos_toml(&path).expect("Leptos.toml is valid");
        assert!(file.env.is_some(), "Leptos.toml sets the environment");
    }

    #[test]
    fn unknown_leptos_toml_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Leptos.toml");
        std::fs::write(&path, "[package.metadata.leptos]\nsite-adr = \"x\"\n").expect("write");
        let err = read_leptos_toml(&path).expect_err("typo");
        assert!(err.to_string().contains("site-adr"), "{err}");
    }
}
