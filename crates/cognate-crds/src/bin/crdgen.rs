//! Writes the generated CRDs to `crds/` and to the Helm chart's `crds/` (run from the
//! workspace root, or pass it as the first argument). `--check` only compares and exits 1
//! when a file differs.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(".");
    for arg in std::env::args().skip(1) {
        if arg == "--check" {
            check = true;
        } else {
            root = PathBuf::from(arg);
        }
    }
    let files = match cognate_crds::generated_files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = false;
    for (path, contents) in files {
        let path = root.join(path);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == contents {
            continue;
        }
        if check {
            eprintln!("crdgen: {} is out of date", path.display());
            stale = true;
            continue;
        }
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("crdgen: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&path, contents) {
            eprintln!("crdgen: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("crdgen: wrote {}", path.display());
    }
    if stale {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
