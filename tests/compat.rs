//! The syscall-compatibility suite: every program under `tests/compat/` is
//! built statically (glibc and musl), run natively and under `rvisor do`,
//! and the two runs must print the same lines and end the same way.
//! Differences allowed on purpose are listed in `tests/compat/EXCLUDED`,
//! each with its reason.

use std::collections::HashSet;

use rvisor_tests::{build_c, is_root, run_native, run_native_namespaced, run_rvisor, shell_code, Libc};

struct Case {
    prog: &'static str,
    args: Vec<String>,
    /// Natively, run as pid 1 of a throwaway pid/UTS namespace with this
    /// hostname.
    namespaced: Option<&'static str>,
}

fn case(prog: &'static str, args: &[&str]) -> Case {
    Case { prog, args: args.iter().map(|s| (*s).to_string()).collect(), namespaced: None }
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case("argv_env", &["first", "second arg", ""]),
        case("write", &[]),
        case("brk", &[]),
        case("mmap", &[]),
        case("efault", &[]),
        case("enosys", &[]),
        case("clock", &[]),
        case("rlimit", &[]),
        case("misc", &[]),
        case("fd", &[]),
    ];
    for code in [&["0"][..], &["7"], &["255"], &["256"], &["9", "exit"], &["3", "return"]] {
        v.push(case("exit", code));
    }
    for s in [
        "prot_none_read",
        "read_only_write",
        "unmapped_read",
        "null_read",
        "non_canonical",
        "exec_data",
        "int3",
        "ud2",
        "div0",
        "abort",
        "raise_term",
        "kill_self_kill",
    ] {
        v.push(case("segv", &[s]));
    }
    let host_pid = std::process::id().to_string();
    v.push(Case { prog: "identity", args: vec![host_pid, "rvisor".into()], namespaced: Some("rvisor") });
    v
}

/// `program case-name` pairs whose result may differ, from EXCLUDED.
fn excluded() -> HashSet<(String, String)> {
    let text = std::fs::read_to_string(rvisor_tests::compat_src().join("EXCLUDED")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, reason) = l.split_once(" -- ")?;
            assert!(!reason.trim().is_empty(), "exclusion without a reason: {l}");
            let (p, c) = key.trim().split_once(' ')?;
            Some((p.to_string(), c.trim().to_string()))
        })
        .collect()
}

fn keep_line(prog: &str, line: &str, ex: &HashSet<(String, String)>) -> bool {
    let name = line
        .strip_prefix("ok ")
        .or_else(|| line.strip_prefix("fail "))
        .or_else(|| line.strip_prefix("skip "))
        .map(|r| r.split(':').next().unwrap_or(r).trim());
    !name.is_some_and(|n| ex.contains(&(prog.to_string(), n.to_string())))
}

#[test]
fn compat_suite_native_vs_rvisor() {
    let ex = excluded();
    let mut failures = Vec::new();
    let mut ran = 0;
    for libc in [Libc::Glibc, Libc::GlibcPie, Libc::Musl] {
        if !libc.available() {
            println!("skip {}: compiler not installed", libc.name());
            continue;
        }
        for c in cases() {
            let label = format!("{} {} [{}]", c.prog, c.args.join(" "), libc.name());
            let bin = build_c(c.prog, libc);
            let native = match c.namespaced {
                Some(host) if is_root() => run_native_namespaced(&bin, &c.args, host),
                Some(_) => {
                    println!("skip {label}: native run needs root (namespaces)");
                    continue;
                }
                None => run_native(&bin, &c.args),
            };
            let sandboxed = run_rvisor(&bin, &c.args, &[]);
            ran += 1;
            let n_out = String::from_utf8_lossy(&native.stdout);
            let s_out = String::from_utf8_lossy(&sandboxed.stdout);
            let n_lines: Vec<&str> = n_out.lines().filter(|l| keep_line(c.prog, l, &ex)).collect();
            let s_lines: Vec<&str> = s_out.lines().filter(|l| keep_line(c.prog, l, &ex)).collect();
            if let Some(l) = n_lines.iter().find(|l| l.starts_with("fail ")) {
                failures.push(format!("{label}: fails natively (the test is wrong): {l}"));
                continue;
            }
            let (nc, sc) = (shell_code(&native), shell_code(&sandboxed));
            if n_lines != s_lines || nc != sc || !sandboxed.stderr.is_empty() && native.stderr.is_empty() {
                let mut msg = format!("{label}: differs\n  native exit {nc}, rvisor exit {sc}\n");
                for (i, (a, b)) in n_lines.iter().zip(s_lines.iter()).enumerate() {
                    if a != b {
                        msg.push_str(&format!("  line {i}: native `{a}`, rvisor `{b}`\n"));
                    }
                }
                if n_lines.len() != s_lines.len() {
                    msg.push_str(&format!(
                        "  native printed {} lines, rvisor {}; rvisor's last: {:?}\n",
                        n_lines.len(),
                        s_lines.len(),
                        s_lines.last()
                    ));
                }
                let err = String::from_utf8_lossy(&sandboxed.stderr);
                if !err.is_empty() {
                    msg.push_str(&format!("  rvisor stderr: {}\n", err.trim()));
                }
                failures.push(msg);
            } else {
                println!("ok {label} ({} lines, exit {nc})", n_lines.len());
            }
        }
    }
    assert!(ran > 0, "nothing ran");
    assert!(failures.is_empty(), "{} of {ran} runs differ:\n{}", failures.len(), failures.join("\n"));
}
