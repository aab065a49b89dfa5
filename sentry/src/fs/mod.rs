//! File systems and file kinds served by the sentry.

pub mod dev;
pub mod epoll;
pub mod eventfd;
pub mod gofer;
pub mod host;
pub mod inotify;
pub mod memfd;
pub mod overlay;
pub mod pipe;
pub mod proc;
pub mod procinfo;
pub mod reopen;
pub mod signalfd;
pub mod synth;
pub mod sys;
pub mod timerfd;
pub mod tmpfs;
pub mod tty;
pub mod unix;
