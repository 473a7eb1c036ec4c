//! Every integration test of the server, in one test binary: one link of the whole server
//! instead of eleven (see docs/benchmarks.md, "CI diet"). `cargo nextest` (make test) still
//! runs each test in a process of its own, so no global state crosses between tests; a test
//! is named by its module, e.g. `foundation::sqlite::healthz_and_readyz_answer`.
//!
//! Add a suite as a module here (a file beside this one), not as a new file in `tests/`:
//! each file there would be a binary of its own, linked separately.

#[macro_use]
mod common;

mod amount_codec;
mod cli;
mod cluster;
mod foundation;
mod interop;
mod layout;
mod merchant;
mod orders;
mod payments;
mod provider_http;
mod provider_vectors;
mod sandbox;
