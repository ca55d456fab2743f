//! Filesystem operations for the file modules: reading the current state without following
//! symlinks, and performing file [`Change`](crate::resource::Change)s safely.
//!
//! Rules kept everywhere here:
//! - The last component of a managed path is never followed when it is a symlink, unless the
//!   module resolved the link itself because the task asked for it (`follow`). Parent
//!   directories are resolved normally (`/var/run -> /run` is ordinary), but each operation
//!   opens the parent once and works relative to that descriptor (`*at` calls), so the parent
//!   cannot be swapped in the middle of a write.
//! - A file is written atomically: a temporary file is created next to it with `O_EXCL`, given
//!   its final owner and mode before the first byte, written, fsynced and renamed over the old
//!   path. A failure (validation included) leaves the old file untouched.
//!
//! The system calls go through `rustix` (safe wrappers); user and group names through `nix`.

mod apply;
mod owners;
mod stat;
mod validate;
mod write;

pub use crate::shlex::{split as shlex_split, SplitError};
pub use apply::{
    apply, apply_all, attr_changes, create_dirs, hard_link, remove, set_mode, set_owner, symlink,
    touch,
};
pub use owners::{path_facts, path_facts_at, IdCache, IdSource};
pub use stat::{lstat, read_current, stat, Current, Kind, Stat};
pub use validate::run_validate;
pub use write::{backup_name, write_file, Applied};
