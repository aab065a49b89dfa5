//! `docs/COMPATIBILITY.md` must list every implemented system call.

#[test]
fn compatibility_doc_lists_every_implemented_call() {
    let doc = include_str!("../../../docs/COMPATIBILITY.md");
    let listed = doc.split("## Missing").next().unwrap_or("");
    let missing: Vec<&str> = (0..512)
        .filter(|&nr| super::implemented(nr))
        .filter_map(rvisor_syscalls::syscall_name)
        .filter(|name| !listed.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/COMPATIBILITY.md: {missing:?}");
}
