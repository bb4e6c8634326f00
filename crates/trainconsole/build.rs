//! Builds the web page from `web/` with Vite and embeds it in the binary.
//!
//! Runs `npm ci` when `web/node_modules` is missing or older than `web/package-lock.json`,
//! then `npm run build -- --outDir $OUT_DIR/web`, and writes `$OUT_DIR/assets.rs`, a table
//! of `(url path, bytes)` that `include_bytes!` the built files.
//!
//! Set `TRAINCONSOLE_SKIP_WEB_BUILD=1` to embed a placeholder page instead (for working on
//! the Rust side without Node.js).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let web_dir = manifest_dir.join("../../web");
    for watched in ["src", "public", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"] {
        // A missing path would make cargo rerun this script on every build.
        if web_dir.join(watched).exists() {
            println!("cargo::rerun-if-changed={}", web_dir.join(watched).display());
        }
    }
    println!("cargo::rerun-if-env-changed=TRAINCONSOLE_SKIP_WEB_BUILD");

    let dist = out_dir.join("web");
    let skip = std::env::var_os("TRAINCONSOLE_SKIP_WEB_BUILD").is_some_and(|v| !v.is_empty() && v != "0");
    let files = if skip {
        println!("cargo::warning=TRAINCONSOLE_SKIP_WEB_BUILD is set: embedding a placeholder page");
        placeholder(&dist)
    } else {
        if let Err(message) = build_web(&web_dir, &dist) {
            eprintln!("error: building the web page failed: {message}");
            eprintln!("hint: the page needs Node.js 20 and npm; set TRAINCONSOLE_SKIP_WEB_BUILD=1 to build without it");
            std::process::exit(1);
        }
        list_files(&dist)
    };
    let mut table = String::from("/// The built web page: (url path, bytes).\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let rel = file.strip_prefix(&dist).unwrap_or(file).to_string_lossy().replace('\\', "/");
        let _ = writeln!(table, "    ({:?}, include_bytes!({:?})),", format!("/{rel}"), file.display().to_string());
    }
    table.push_str("];\n");
    if let Err(err) = std::fs::write(out_dir.join("assets.rs"), table) {
        eprintln!("error: cannot write assets.rs in {}: {err}", out_dir.display());
        std::process::exit(1);
    }
}

fn build_web(web_dir: &Path, dist: &Path) -> Result<(), String> {
    let lock = web_dir.join("package-lock.json");
    let installed = web_dir.join("node_modules/.package-lock.json");
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => lock > installed,
        _ => true,
    };
    if stale {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(web_dir))?;
    }
    let dist_arg = dist.to_string_lossy().to_string();
    run(Command::new("npm").args(["run", "build", "--", "--outDir", &dist_arg, "--emptyOutDir"]).current_dir(web_dir))?;
    if !dist.join("index.html").exists() {
        return Err(format!("vite wrote no index.html into {}", dist.display()));
    }
    Ok(())
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command.status().map_err(|err| format!("cannot run {shown}: {err}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed with {status}")) }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn placeholder(dist: &Path) -> Vec<PathBuf> {
    let _ = std::fs::create_dir_all(dist);
    let index = dist.join("index.html");
    let _ = std::fs::write(
        &index,
        "<!doctype html><title>trainconsole</title><p>This binary was built with TRAINCONSOLE_SKIP_WEB_BUILD: the web page is not included. The API is at <a href=\"/api/runs\">/api/runs</a>.</p>",
    );
    vec![index]
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files
}
