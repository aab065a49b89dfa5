//! The gofer: the only process that touches the container's files, serving
//! them to the sentry over a narrow, typed channel. Not built yet: see the
//! "Files I" issue. The sentry currently serves no files at all.
#![deny(unsafe_code)]
