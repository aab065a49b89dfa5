//! Proof that nothing passes through to the host: a program making raw
//! file system calls on a host directory changes nothing there (a filtered
//! passthrough would create, rename or delete files). The identity checks
//! (pid 1, ppid 0, the sandbox's hostname, no host pid reachable) are in the
//! compatibility suite (`tests/compat/identity.c`), compared with a native
//! run in throwaway namespaces.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rvisor_tests::{build_program, rvisor_command, shell_code, test_env};

/// Every entry of `dir` with its type, mode, size, times and contents.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let content = if md.is_file() { std::fs::read(e.path()).unwrap() } else { Vec::new() };
        m.insert(
            e.file_name().to_string_lossy().into_owned(),
            format!(
                "{:o} {} {} {}:{} {:?}",
                md.mode(),
                md.len(),
                md.nlink(),
                md.mtime(),
                md.mtime_nsec(),
                content
            ),
        );
    }
    m
}

#[test]
fn raw_file_calls_change_nothing_on_the_host() {
    let prog = build_program("touch_host");
    let dir = std::env::temp_dir().join(format!("rvisor-passthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("existingdir")).unwrap();
    std::fs::write(dir.join("existing"), "keep me\n").unwrap();
    let before = snapshot(&dir);

    // Natively, the same program does change the directory: the test can fail.
    let native_dir = dir.with_extension("native");
    let _ = std::fs::remove_dir_all(&native_dir);
    std::fs::create_dir_all(native_dir.join("existingdir")).unwrap();
    std::fs::write(native_dir.join("existing"), "keep me\n").unwrap();
    let n = Command::new(&prog).arg(&native_dir).output().unwrap();
    assert_eq!(shell_code(&n), 0);
    assert_ne!(snapshot(&native_dir), before, "the program changes a directory natively");
    std::fs::remove_dir_all(&native_dir).unwrap();

    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--"]).arg(&prog).arg(&dir).stdin(Stdio::null());
    let o = c.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "done\n");
    assert_eq!(shell_code(&o), 0);
    assert_eq!(snapshot(&dir), before, "rvisor let the application change the host");
    std::fs::remove_dir_all(&dir).unwrap();
}
