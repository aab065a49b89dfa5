//! Path walk: the one routine that turns a path into a location.
//!
//! Absolute and relative paths (from the working directory or a directory
//! descriptor), `.` and `..` (which stay at the walker's root and cross
//! mounts upwards), symbolic links (at most 40 per walk: `ELOOP`),
//! `ENOTDIR`, `ENAMETOOLONG` (255 per component, 4095 per path), trailing
//! slashes (the result must be a directory), search permission on every
//! directory walked through.

use std::collections::VecDeque;

use rvisor_syscalls::Errno;

use super::perm::{self, MAY_EXEC};
use super::{MountNamespace, Path};
use crate::kernel::creds::Credentials;

/// Longest path (without its NUL).
pub const PATH_MAX: usize = 4096;
/// Longest component.
pub const NAME_MAX: usize = 255;
/// Most symbolic links one walk follows.
pub const MAX_SYMLINKS: u32 = 40;

/// What a walk needs from its task.
pub struct Walker<'a> {
    /// The mount namespace.
    pub ns: &'a MountNamespace,
    /// The task's root.
    pub root: Path,
    /// The task's credentials.
    pub creds: &'a Credentials,
    /// `RESOLVE_NO_SYMLINKS`: any link is `ELOOP`.
    pub no_symlinks: bool,
    /// `RESOLVE_BENEATH`: never above this place (`EXDEV`).
    pub beneath: Option<Path>,
}

/// A walk that stopped before the last component (to create, remove or
/// rename it).
#[derive(Debug)]
pub struct Parent {
    /// The directory.
    pub dir: Path,
    /// The last component (may be `.` or `..`).
    pub name: Vec<u8>,
    /// The path ended with `/`.
    pub trailing_slash: bool,
}

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty()).map(<[u8]>::to_vec).collect()
}

impl Walker<'_> {
    /// The parent of `p`, staying at the walker's root and crossing mounts
    /// upwards.
    fn dotdot(&self, p: &Path) -> Path {
        let mut cur = p.clone();
        loop {
            if cur.same(&self.root) {
                return cur;
            }
            if std::sync::Arc::ptr_eq(&cur.dentry, &cur.mount.root) {
                match &cur.mount.parent {
                    Some((m, d)) => {
                        cur = Path { mount: m.clone(), dentry: d.clone() };
                        continue;
                    }
                    None => return cur,
                }
            }
            return match cur.dentry.parent() {
                Some(d) => Path { mount: cur.mount.clone(), dentry: d },
                None => cur,
            };
        }
    }

    fn search(&self, dir: &Path) -> Result<(), Errno> {
        let a = dir.attr()?;
        if !a.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        perm::check(&a, self.creds, MAY_EXEC)
    }

    /// The child `name` of directory `dir` (searchable), mounts crossed.
    pub fn child(&self, dir: &Path, name: &[u8]) -> Result<Path, Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let d = dir.dentry.lookup(name)?;
        Ok(self.ns.cross(Path { mount: dir.mount.clone(), dentry: d }))
    }

    fn check_path(path: &[u8]) -> Result<(), Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }

    fn walk_inner(
        &self,
        start: Path,
        path: &[u8],
        follow_last: bool,
        stop_before_last: bool,
    ) -> Result<(Path, Option<Vec<u8>>), Errno> {
        Self::check_path(path)?;
        let trailing = path.ends_with(b"/");
        let mut cur = if path.starts_with(b"/") { self.root.clone() } else { start };
        let mut comps = components(path);
        let mut links = 0;
        while let Some(name) = comps.pop_front() {
            let last = comps.is_empty();
            self.search(&cur)?;
            if last && stop_before_last {
                return Ok((cur, Some(name)));
            }
            if name == b"." {
                continue;
            }
            if name == b".." {
                if self.beneath.as_ref().is_some_and(|b| cur.same(b)) {
                    return Err(Errno::EXDEV);
                }
                cur = self.dotdot(&cur);
                continue;
            }
            let child = self.child(&cur, &name)?;
            let is_link = child.attr()?.is_symlink();
            if is_link && (!last || follow_last || trailing) {
                if self.no_symlinks {
                    return Err(Errno::ELOOP);
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                if let Some(j) = child.inode().jump() {
                    // A magic link: to the file itself.
                    if self.beneath.is_some() {
                        return Err(Errno::EXDEV);
                    }
                    cur = j?.into_path(&child)?;
                    continue;
                }
                let target = child.inode().readlink()?;
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                let mut expanded = components(&target);
                if target.ends_with(b"/") && last && stop_before_last {
                    // A link to "dir/" as the last component of a parent
                    // walk: the parent is the link's target.
                    expanded.push_back(b".".to_vec());
                }
                expanded.extend(comps.drain(..));
                comps = expanded;
                if target.starts_with(b"/") {
                    if self.beneath.is_some() {
                        return Err(Errno::EXDEV);
                    }
                    cur = self.root.clone();
                }
                if comps.is_empty() {
                    // The link pointed at "/".
                    continue;
                }
                continue;
            }
            cur = child;
        }
        if stop_before_last {
            // The path was "/" or only dots: no last component to act on.
            return Ok((cur, None));
        }
        if trailing && !cur.attr()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok((cur, None))
    }

    /// Walks `path` from `start` (used when it is relative), following a
    /// final symbolic link when `follow_last`.
    pub fn walk(&self, start: Path, path: &[u8], follow_last: bool) -> Result<Path, Errno> {
        self.walk_inner(start, path, follow_last, false).map(|(p, _)| p)
    }

    /// Walks all of `path` but its last component, which must be a name
    /// (not `/` alone).
    pub fn walk_parent(&self, start: Path, path: &[u8]) -> Result<Parent, Errno> {
        let trailing_slash = path.ends_with(b"/");
        let (dir, name) = self.walk_inner(start, path, false, true)?;
        match name {
            Some(name) => Ok(Parent { dir, name, trailing_slash }),
            None => Err(Errno::EEXIST),
        }
    }
}
