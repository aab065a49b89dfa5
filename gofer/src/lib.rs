//! The gofer: the only process that touches the container's files. It
//! serves them to the sentry over a narrow, typed, descriptor-based
//! protocol ([`protocol`]), from inside its own mount namespace where it is
//! `pivot_root`ed into exactly the tree it serves ([`setup`]).
#![deny(unsafe_code)]

pub mod channel;
pub mod protocol;
pub mod server;
pub mod setup;

pub use server::{AttachPoint, Server};
