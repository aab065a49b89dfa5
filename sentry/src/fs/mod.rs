//! File systems and file kinds served by the sentry.

pub mod gofer;
pub mod host;
