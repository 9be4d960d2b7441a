//! kiln-cli's integration tests: the `kiln` binary end to end, and the repository's tidiness.

mod cli;
mod faults;
mod fleet;
mod mount;
mod multinode;
mod processes;
mod reheat_outage;
mod secure;
mod serve;
mod support;
mod tidy;
mod unservable;
