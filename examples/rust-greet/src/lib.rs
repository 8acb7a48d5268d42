//! Says hello.

pub mod hello;
